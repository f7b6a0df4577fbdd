//! The server against raw sockets on loopback: what strangers can do to a port, and
//! that it keeps serving requests meanwhile.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};

use super::*;

mod tls;

/// The token the test servers' `/metrics` require.
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// Every wait in these tests gives up after this; none measures time.
const DEADLINE: Duration = Duration::from_secs(20);

struct Running {
    address: SocketAddr,
    metrics: ServerMetrics,
    /// Releases every request waiting in `/slow`.
    release: Arc<Notify>,
    /// Requests that have reached `/slow`'s handler.
    slow_started: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(limits: ServerLimits) -> Self {
        Self::start_with_tls(limits, None).await
    }

    async fn start_with_tls(limits: ServerLimits, tls: Option<ServerTls>) -> Self {
        let release = Arc::new(Notify::new());
        let waiting = release.clone();
        let slow_started = Arc::new(AtomicUsize::new(0));
        let started = slow_started.clone();
        let router = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/metrics", get(|| async { "metrics" }))
            .route(
                "/slow",
                get(move || {
                    let waiting = waiting.clone();
                    let started = started.clone();
                    async move {
                        let released = waiting.notified();
                        started.fetch_add(1, Ordering::SeqCst);
                        released.await;
                        "slow"
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let metrics = ServerMetrics::unregistered("test").unwrap();
        let options = ServerOptions {
            name: "test",
            port: PortConfig {
                limits,
                metrics_token: MetricsToken::new(TOKEN),
                tls,
            },
            metrics: metrics.clone(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, options, async {
            let _ = stopped.await;
        }));
        Self {
            address,
            metrics,
            release,
            slow_started,
            stop: Some(stop),
            server,
        }
    }

    fn slow_requests(&self) -> usize {
        self.slow_started.load(Ordering::SeqCst)
    }

    fn closed(&self, reason: CloseReason) -> u64 {
        self.metrics
            .connections_closed_total
            .with_label_values(&[reason.label()])
            .get()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEADLINE, &mut self.server)
            .await
            .expect("the server stopped within the deadline")
            .unwrap();
    }
}

/// Waits (bounded) until `condition` holds.
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads until the server closes the connection; panics if it does not within the
/// deadline.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Err(_) => panic!("the server kept the connection open past the deadline"),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Sends one request on a fresh connection and returns the whole answer.
async fn request(address: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let text = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    read_until_closed(&mut stream).await
}

/// Limits for these tests: any idle connection may be evicted at once (the minimum
/// idle age is checked in `connections`' own tests).
fn limits(connections_max: usize, header_read_timeout: Duration) -> ServerLimits {
    ServerLimits {
        connections_max,
        header_read_timeout,
        eviction_idle_min: Duration::ZERO,
        ..ServerLimits::default()
    }
}

#[tokio::test]
async fn an_idle_connection_is_closed_by_the_server() {
    let server = Running::start(limits(16, Duration::from_millis(200))).await;
    let mut idle = TcpStream::connect(server.address).await.unwrap();
    assert_eq!(read_until_closed(&mut idle).await, "");
    wait_until("the close is counted", || {
        server.closed(CloseReason::HeaderReadTimeout) == 1
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_once_idle() {
    let server = Running::start(limits(16, Duration::from_millis(200))).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"GET /ok HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_trickled_head_is_closed_by_the_server() {
    let server = Running::start(limits(16, Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(b"GET /ok HTTP/1.1\r\n").await.unwrap();
    // One header byte at a time, never finishing the head, until the server hangs up.
    let give_up = tokio::time::Instant::now() + DEADLINE;
    let mut buffer = [0u8; 64];
    loop {
        assert!(tokio::time::Instant::now() < give_up, "still open");
        if stream.write_all(b"X").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => panic!("the server answered an incomplete head"),
            Err(_) => {}
        }
    }
    wait_until("the close is counted", || {
        server.closed(CloseReason::HeaderReadTimeout) == 1
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn at_the_limit_an_idle_stranger_makes_room_for_a_request() {
    let server = Running::start(limits(4, Duration::from_secs(600))).await;
    let mut strangers = Vec::new();
    for _ in 0..4 {
        strangers.push(TcpStream::connect(server.address).await.unwrap());
    }
    wait_until("four connections open", || {
        server.metrics.connections_open.get() == 4
    })
    .await;
    let answer = request(server.address, "/ok").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(server.closed(CloseReason::EvictedAtLimit), 1);
    // The evicted stranger finds its socket closed by the server; the others do not.
    let closed = || {
        strangers
            .iter()
            .filter(|stranger| matches!(stranger.try_read(&mut [0u8; 1]), Ok(0)))
            .count()
    };
    wait_until("a stranger's socket is closed", || closed() >= 1).await;
    assert_eq!(closed(), 1, "exactly one stranger made room");
    server.stop().await;
}

#[tokio::test]
async fn a_busy_connection_is_never_evicted() {
    let server = Running::start(limits(2, Duration::from_secs(600))).await;
    let mut busy = TcpStream::connect(server.address).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    wait_until("the slow request is in progress", || {
        server.slow_requests() == 1
    })
    .await;
    let _idle = TcpStream::connect(server.address).await.unwrap();
    wait_until("two connections open", || {
        server.metrics.connections_open.get() == 2
    })
    .await;
    // Both slots are held: one by a request in progress, one by an idle stranger.
    let answer = request(server.address, "/ok").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(server.closed(CloseReason::EvictedAtLimit), 1);
    server.release.notify_waiters();
    let answer = read_until_closed(&mut busy).await;
    assert!(
        answer.ends_with("slow"),
        "the busy request finished: {answer}"
    );
    server.stop().await;
}

#[tokio::test]
async fn when_every_connection_is_busy_a_new_client_waits_for_a_slot() {
    let server = Running::start(limits(1, Duration::from_secs(600))).await;
    let mut busy = TcpStream::connect(server.address).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    wait_until("the slow request is in progress", || {
        server.slow_requests() == 1
    })
    .await;
    let address = server.address;
    let waiting = tokio::spawn(async move { request(address, "/ok").await });
    wait_until("the new client waits at the limit", || {
        server.metrics.connections_waited_at_limit_total.get() >= 1
    })
    .await;
    assert!(!waiting.is_finished());
    server.release.notify_waiters();
    assert!(read_until_closed(&mut busy).await.ends_with("slow"));
    let answer = waiting.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(server.closed(CloseReason::EvictedAtLimit), 0);
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_head_is_refused_with_431() {
    let server = Running::start(limits(16, Duration::from_secs(600))).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let filler = "a".repeat(ServerLimits::default().header_bytes_max + 1);
    let text = format!("GET /ok HTTP/1.1\r\nHost: test\r\nX-Filler: {filler}\r\n\r\n");
    // The server may close before taking every byte; what it answered is what counts.
    let _ = stream.write_all(text.as_bytes()).await;
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn too_many_header_fields_are_refused_with_431() {
    let server = Running::start(limits(16, Duration::from_secs(600))).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let fields: String = (0..=ServerLimits::default().headers_max)
        .map(|index| format!("X-Field-{index}: x\r\n"))
        .collect();
    let text = format!("GET /ok HTTP/1.1\r\nHost: test\r\n{fields}\r\n");
    let _ = stream.write_all(text.as_bytes()).await;
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_finishes_requests_in_flight() {
    let server = Running::start(limits(16, Duration::from_secs(600))).await;
    let mut idle = TcpStream::connect(server.address).await.unwrap();
    let mut busy = TcpStream::connect(server.address).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    wait_until(
        "both connections open, the slow request in progress",
        || server.metrics.connections_open.get() == 2 && server.slow_requests() == 1,
    )
    .await;
    let release = server.release.clone();
    let metrics = server.metrics.clone();
    let stopping = tokio::spawn(server.stop());
    assert_eq!(read_until_closed(&mut idle).await, "");
    release.notify_waiters();
    let answer = read_until_closed(&mut busy).await;
    assert!(answer.ends_with("slow"), "{answer}");
    stopping.await.unwrap();
    assert_eq!(metrics.connections_open.get(), 0);
}

#[tokio::test]
async fn requests_in_flight_past_the_shutdown_grace_are_cut_off() {
    let server = Running::start(ServerLimits {
        shutdown_grace: Duration::from_millis(100),
        ..limits(16, Duration::from_secs(600))
    })
    .await;
    let mut busy = TcpStream::connect(server.address).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    wait_until("the request is in progress", || server.slow_requests() == 1).await;
    let metrics = server.metrics.clone();
    server.stop().await;
    assert_eq!(read_until_closed(&mut busy).await, "");
    assert_eq!(
        metrics
            .connections_closed_total
            .with_label_values(&[CloseReason::Shutdown.label()])
            .get(),
        1
    );
}

#[tokio::test]
async fn metrics_need_the_bearer_token_when_one_is_set() {
    let server = Running::start(limits(16, Duration::from_secs(600))).await;
    let answer = request(server.address, "/metrics").await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{answer}"
    );
    for wrong in ["Bearer nope", "Basic abc", TOKEN] {
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        let text = format!(
            "GET /metrics HTTP/1.1\r\nHost: test\r\nAuthorization: {wrong}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(text.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{wrong}: {answer}");
    }
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let text = format!(
        "GET /metrics HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(text.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("metrics"), "{answer}");
    // Other paths never need it.
    assert!(request(server.address, "/ok")
        .await
        .starts_with("HTTP/1.1 200"));
    server.stop().await;
}
