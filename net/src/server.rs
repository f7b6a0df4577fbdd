//! The accept loop every Shardlet port runs: [`serve`].
//!
//! What a stranger can do to a port, and what bounds it:
//! - open sockets and send nothing, or trickle a request head: hyper's
//!   `header_read_timeout` (with a tokio timer) closes the connection when no complete
//!   head arrived in time, which also ends idle keep-alive connections;
//! - open many connections: at `connections_max`, a new connection evicts an idle one
//!   (`crate::connections`), so the port keeps serving whoever sends requests;
//! - send a huge head: `header_bytes_max` and `headers_max` (hyper answers 431);
//! - trickle a body: the handler's job (it knows how big a body may be and how long it
//!   may take: the storage node's `body_idle_timeout`, the gateway's write path); the
//!   connection stays busy, so it is never evicted mid-request.
//!
//! Small responses must not wait ~40 ms for delayed ACKs: every socket gets
//! TCP_NODELAY. Only HTTP/1.1 is served; no Shardlet client needs HTTP/2.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::connections::{Connections, Entry, Eviction, RequestGuard, Slot, Start};
use crate::limits::ServerLimits;
use crate::metrics::{CloseReason, ServerMetrics};
use crate::metrics_token::MetricsToken;
use crate::port::PortConfig;
use crate::tls::ServerTls;

/// Pause after a failed `accept` (out of file descriptors and the like), so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How one port serves: its configuration and its metrics.
#[derive(Clone)]
pub struct ServerOptions {
    /// Names the port in log lines (`gateway`, `node`, `meta`, …).
    pub name: &'static str,
    /// Limits, and the metrics token: when set, `GET /metrics` needs
    /// `Authorization: Bearer <token>` (401 otherwise), checked here before the service
    /// sees the request.
    pub port: PortConfig,
    pub metrics: ServerMetrics,
}

/// Serves `service` on `listener` until `shutdown` completes; then stops accepting,
/// closes idle connections, lets requests in flight finish for up to
/// `limits.shutdown_grace`, and drops whatever is left.
///
/// `service` is any tower service over hyper's request type: an axum `Router`, or a
/// `tower::service_fn`.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let ServerOptions {
        name,
        port,
        metrics,
    } = options;
    let PortConfig {
        limits,
        metrics_token,
        tls,
    } = port;
    let connections = Arc::new(Connections::new(
        limits.connections_max,
        limits.eviction_idle_min,
    ));
    let (stop_sender, stop) = watch::channel(false);
    let settings = ConnectionSettings {
        limits: limits.clone(),
        metrics: metrics.clone(),
        metrics_token,
        tls,
        stop,
    };
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(server = name, %error, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        metrics.connections_accepted_total.inc();
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = admit(&connections, &metrics) => slot,
        };
        tasks.spawn(connection(
            stream,
            peer,
            slot,
            service.clone(),
            settings.clone(),
        ));
        while tasks.try_join_next().is_some() {}
    }
    // New clients are refused from here on; idle connections close at once.
    drop(listener);
    let _ = stop_sender.send(true);
    tracing::info!(
        server = name,
        open = connections.len(),
        "stopping: finishing requests in flight"
    );
    let finished = tokio::time::timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            server = name,
            grace = ?limits.shutdown_grace,
            "requests still in flight at the shutdown deadline; closing them"
        );
    }
    tasks.shutdown().await;
}

/// A slot for a new connection: free room, else an evicted idle connection's, else the
/// next one to be freed or to become evictable.
async fn admit(connections: &Arc<Connections>, metrics: &ServerMetrics) -> Slot {
    let mut waited = false;
    loop {
        let freed = connections.slot_freed();
        let mut freed = std::pin::pin!(freed);
        freed.as_mut().enable();
        if let Some(slot) = connections.try_admit() {
            return slot;
        }
        let evictable_at = match connections.evict_one() {
            Eviction::Evicted => continue,
            Eviction::NotBefore(at) => Some(at),
            Eviction::NoneIdle => None,
        };
        if !waited {
            metrics.connections_waited_at_limit_total.inc();
            waited = true;
        }
        match evictable_at {
            Some(at) => {
                tokio::select! {
                    () = freed => {}
                    () = tokio::time::sleep_until(at.into()) => {}
                }
            }
            None => freed.await,
        }
    }
}

/// Counts a connection open while it lives, and why it closed when it ends (a task
/// aborted at the end of the shutdown grace ends as [`CloseReason::Shutdown`]).
struct OpenConnection {
    metrics: ServerMetrics,
    reason: Option<CloseReason>,
}

impl OpenConnection {
    fn new(metrics: ServerMetrics) -> Self {
        metrics.connections_open.inc();
        Self {
            metrics,
            reason: None,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connections_open.dec();
        self.metrics
            .closed(self.reason.unwrap_or(CloseReason::Shutdown));
    }
}

/// What every connection of one port shares.
#[derive(Clone)]
struct ConnectionSettings {
    limits: ServerLimits,
    metrics: ServerMetrics,
    metrics_token: Option<MetricsToken>,
    tls: Option<ServerTls>,
    stop: watch::Receiver<bool>,
}

async fn connection<S, B>(
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    service: S,
    settings: ConnectionSettings,
) where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut open = OpenConnection::new(settings.metrics.clone());
    let entry = slot.entry();
    let reason = tokio::select! {
        biased;
        () = entry.evicted() => CloseReason::EvictedAtLimit,
        reason = serve_stream(stream, service, entry.clone(), &settings) => reason,
    };
    tracing::debug!(%peer, reason = reason.label(), "connection closed");
    open.reason = Some(reason);
    drop(slot);
}

/// What a plaintext HTTP client gets from a TLS port, instead of a failed handshake it
/// cannot read.
const PLAINTEXT_REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 60\r\n\r\nthis port speaks HTTPS only: use https:// and a trusted CA\r\n";

/// One accepted socket: TLS first when the port has a certificate, then HTTP.
async fn serve_stream<S, B>(
    mut stream: TcpStream,
    service: S,
    entry: Arc<Entry>,
    settings: &ConnectionSettings,
) -> CloseReason
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    let Some(tls) = &settings.tls else {
        return serve_http(TokioIo::new(stream), service, entry, settings).await;
    };
    // The whole handshake, plaintext detection included, within one deadline.
    let deadline = tokio::time::Instant::now() + settings.limits.tls_handshake_timeout;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Err(_) => return CloseReason::TlsHandshakeTimeout,
        Ok(Ok(0)) => return CloseReason::Finished,
        Ok(Err(_)) => return CloseReason::Error,
        Ok(Ok(_)) => {}
    }
    // A TLS client opens with a handshake record (content type 22).
    if first[0] != 0x16 {
        refuse_plaintext(&mut stream, deadline).await;
        return CloseReason::PlaintextOnTls;
    }
    match tokio::time::timeout_at(deadline, tls.acceptor.accept(stream)).await {
        Err(_) => CloseReason::TlsHandshakeTimeout,
        Ok(Err(error)) => {
            tracing::debug!(%error, "TLS handshake failed");
            CloseReason::TlsHandshakeFailed
        }
        Ok(Ok(tls_stream)) => serve_http(TokioIo::new(tls_stream), service, entry, settings).await,
    }
}

/// Answers a plaintext request on a TLS port with a readable 400 and closes: reads what
/// the client sent first (closing with unread data would reset the connection and the
/// client would never see the answer), all before `deadline`.
async fn refuse_plaintext(stream: &mut TcpStream, deadline: tokio::time::Instant) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout_at(deadline, async {
        let _ = stream.read(&mut buffer).await;
        stream.write_all(PLAINTEXT_REFUSAL).await?;
        stream.shutdown().await?;
        // Drain until the client closes, so the answer is not lost to a reset.
        while stream.read(&mut buffer).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

async fn serve_http<I, S, B>(
    io: I,
    service: S,
    entry: Arc<Entry>,
    settings: &ConnectionSettings,
) -> CloseReason
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.limits.header_read_timeout)
        .max_header_size(settings.limits.header_bytes_max)
        .max_headers(settings.limits.headers_max)
        .keep_alive(true);
    let tracked = Tracked {
        inner: service,
        entry,
        metrics_token: settings.metrics_token.clone(),
    };
    let connection = builder.serve_connection(io, tracked);
    let mut connection = std::pin::pin!(connection);
    let mut stop = settings.stop.clone();
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopping(&mut stop) => {
            // Idle: closes now; busy: after the response in progress.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    match result {
        Ok(()) => CloseReason::Finished,
        Err(error) if error.is_timeout() => CloseReason::HeaderReadTimeout,
        Err(error) if error.is_parse() || error.is_parse_too_large() => CloseReason::BadRequestHead,
        Err(error) => {
            tracing::debug!(%error, "connection ended with an error");
            CloseReason::Error
        }
    }
}

/// Completes when the server is stopping (or gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: dropped here, not held across the
    // select in the caller.
    let _ = stop.wait_for(|stopping| *stopping).await.map(|_| ());
}

/// The service as hyper calls it: marks the connection busy for each request, and
/// checks the metrics token.
struct Tracked<S> {
    inner: S,
    entry: Arc<Entry>,
    metrics_token: Option<MetricsToken>,
}

type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<TrackedBody<B>>, E>> + Send>>;

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = ResponseFuture<B, S::Error>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let guard = match self.entry.start_request() {
            Start::Started(guard) => guard,
            // This connection is being closed to make room; the request is not
            // processed, so the client may retry it anywhere.
            Start::Evicted => {
                return Box::pin(async {
                    Ok(refusal(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the server is at its connection limit and closed this idle connection; retry\n",
                        true,
                    ))
                })
            }
        };
        if let Some(token) = &self.metrics_token {
            let authorization = request.headers().get(http::header::AUTHORIZATION);
            if request.uri().path() == "/metrics"
                && !token.admits(authorization.map(|value| value.as_bytes()))
            {
                drop(guard);
                let mut response = refusal(
                    StatusCode::UNAUTHORIZED,
                    "/metrics needs the metrics token: Authorization: Bearer <token>\n",
                    false,
                );
                response.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer realm=\"metrics\""),
                );
                return Box::pin(async { Ok(response) });
            }
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            let response = inner.oneshot(request).await?;
            Ok(response.map(|body| TrackedBody::serving(body, guard)))
        })
    }
}

/// A plain-text answer the server gives itself, without calling the service.
fn refusal<B>(status: StatusCode, text: &'static str, close: bool) -> Response<TrackedBody<B>> {
    let mut response = Response::new(TrackedBody::refusal(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if close {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    response
}

pin_project_lite::pin_project! {
    /// A response body that keeps its connection marked busy until it is finished or
    /// dropped.
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: Option<B>,
        refusal: Option<Bytes>,
        guard: Option<RequestGuard>,
    }
}

impl<B> TrackedBody<B> {
    fn serving(body: B, guard: RequestGuard) -> Self {
        Self {
            inner: Some(body),
            refusal: None,
            guard: Some(guard),
        }
    }

    fn refusal(text: Bytes) -> Self {
        Self {
            inner: None,
            refusal: Some(text),
            guard: None,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll_frame(context),
            None => Poll::Ready(this.refusal.take().map(|text| Ok(Frame::data(text)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(inner) => inner.is_end_stream(),
            None => self.refusal.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => SizeHint::with_exact(self.refusal.as_ref().map_or(0, |text| text.len() as u64)),
        }
    }
}
