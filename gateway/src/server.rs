//! The HTTP server: S3 (through s3s) plus `GET /health` and `GET /metrics`.
//!
//! `/health` and `/metrics` are served only to unsigned requests: a signed `GET /health`
//! is S3's ListObjects on a bucket named `health`, and unsigned S3 requests are refused
//! anyway, so the two never collide.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use s3s::service::{S3Service, S3ServiceBuilder};
use shardlet_core::SizingPolicy;
use tokio::net::TcpListener;
use tokio::sync::watch;

use shardlet_model::settings::SettingsCache;
use shardlet_model::MetadataStore;

use crate::metrics::Metrics;
use crate::object::catalog::Catalog;
use crate::object::commit::Commit;
use crate::object::fragments::FragmentStore;
use crate::object::gc::{Collector, CollectorConfig};
use crate::object::heat::{run_flusher, HeatReporter};
use crate::object::read_path::ReadPath;
use crate::object::topology_source::TopologySource;
use crate::object::upload_deadline::{refresh_once, refresh_settings};
use crate::object::write_path::WritePath;
use crate::s3::access::BucketAccess;
use crate::s3::auth::{Authenticator, CredentialCache};
use crate::s3::limits::{HEADER_BYTES_MAX, XML_BODY_BYTES_MAX};
use crate::s3::Gateway;

/// Connections served at once; further clients wait in the listen backlog.
pub const CONNECTIONS_MAX: usize = 1024;
/// How long in-flight requests may finish after shutdown is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// The region reported to clients (GetBucketLocation) and expected in signatures.
    pub region: String,
    pub sizing: SizingPolicy,
    pub collector: CollectorConfig,
}

pub struct BoundGateway {
    listener: TcpListener,
    service: S3Service,
    metrics: Arc<Metrics>,
    collector: Arc<Collector>,
    catalog: Catalog,
    settings: Arc<SettingsCache>,
    heat_receiver: tokio::sync::mpsc::Receiver<shardlet_core::ShardletId>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("accept failed: {0}")]
    Accept(std::io::Error),
}

impl BoundGateway {
    pub async fn bind(
        config: GatewayConfig,
        metadata: Arc<dyn MetadataStore>,
        fragments: Arc<dyn FragmentStore>,
        topology: Arc<TopologySource>,
    ) -> Result<Self, ServerError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    address: config.listen,
                    source,
                })?;
        let metrics = Arc::new(Metrics::new());
        let catalog =
            Catalog::new(metadata).counting_bucket_cache(metrics.bucket_cache_total.clone());
        // The upload deadline before the first request: a gateway that cannot read it
        // now starts with the default and keeps trying (`refresh_settings`).
        let settings = Arc::new(SettingsCache::default());
        refresh_once(&settings, catalog.metadata(), &metrics).await;
        let collector = Arc::new(Collector::new(
            catalog.clone(),
            fragments.clone(),
            topology.clone(),
            metrics.clone(),
            config.collector.clone(),
            settings.clone(),
        ));
        let (heat, heat_receiver) = HeatReporter::new(metrics.clone());
        let commit = Arc::new(Commit::new(catalog.clone(), collector.clone()));
        let writer = Arc::new(WritePath {
            commit: commit.clone(),
            fragments: fragments.clone(),
            topology,
            sizing: config.sizing,
            metrics: metrics.clone(),
        });
        let reader = ReadPath {
            catalog: catalog.clone(),
            fragments,
            metrics: metrics.clone(),
            heat,
        };
        let credentials = Arc::new(CredentialCache::new(catalog.clone(), metrics.clone()));
        let gateway = Gateway {
            catalog: catalog.clone(),
            commit,
            writer,
            reader,
            metrics: metrics.clone(),
            credentials: credentials.clone(),
            region: config.region.clone(),
        };
        let mut builder = S3ServiceBuilder::new(gateway);
        builder.set_auth(Authenticator(credentials.clone()));
        builder.set_access(BucketAccess {
            catalog: catalog.clone(),
            credentials,
            metrics: metrics.clone(),
        });
        let mut s3_config = s3s::config::S3Config::default();
        s3_config.xml_max_body_size = XML_BODY_BYTES_MAX;
        builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
            s3_config,
        ))));
        Ok(Self {
            listener,
            service: builder.build(),
            metrics,
            collector,
            catalog,
            settings,
            heat_receiver,
        })
    }

    pub fn local_address(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish (up to
    /// [`SHUTDOWN_GRACE`]) and flushes pending heat.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let (stop_sender, stop) = watch::channel(false);
        let collector_task = tokio::spawn(self.collector.clone().run(stop.clone()));
        let settings_task = tokio::spawn(refresh_settings(
            self.settings.clone(),
            self.catalog.metadata().clone(),
            self.metrics.clone(),
            stop.clone(),
        ));
        let heat_task = tokio::spawn(run_flusher(
            self.catalog.clone(),
            self.metrics.clone(),
            self.heat_receiver,
            stop.clone(),
        ));
        let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
        let mut connections = tokio::task::JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: log, keep serving.
                        tracing::warn!(%error, "accept failed");
                        continue;
                    }
                },
            };
            // Small responses must not wait ~40 ms for delayed ACKs.
            let _ = stream.set_nodelay(true);
            let service = self.service.clone();
            let metrics = self.metrics.clone();
            let mut stop = stop.clone();
            connections.spawn(async move {
                let _permit = permit;
                let handler =
                    service_fn(move |request| handle(service.clone(), metrics.clone(), request));
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder.max_buf_size(HEADER_BYTES_MAX).keep_alive(true);
                let connection = builder.serve_connection(TokioIo::new(stream), handler);
                let mut connection = std::pin::pin!(connection);
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(%peer, %error, "connection ended with an error");
                        }
                    }
                    _ = stop.changed() => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
            });
            while connections.try_join_next().is_some() {}
        }
        tracing::info!("gateway stopping: finishing requests in flight");
        let _ = stop_sender.send(true);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        let _ = collector_task.await;
        let _ = settings_task.await;
        let _ = heat_task.await;
        Ok(())
    }
}

fn is_signed(request: &http::Request<Incoming>) -> bool {
    request.headers().contains_key(http::header::AUTHORIZATION)
        || request.uri().query().is_some_and(|query| {
            query.contains("X-Amz-Signature")
                || query.contains("Signature=")
                || query.contains("X-Amz-Credential")
        })
}

async fn handle(
    service: S3Service,
    metrics: Arc<Metrics>,
    request: http::Request<Incoming>,
) -> Result<http::Response<s3s::Body>, s3s::HttpError> {
    if request.method() == http::Method::GET && !is_signed(&request) {
        match request.uri().path() {
            "/health" => {
                return Ok(http::Response::builder()
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(s3s::Body::from(r#"{"status":"ok"}"#.to_string()))
                    .unwrap_or_default())
            }
            "/metrics" => {
                return Ok(http::Response::builder()
                    .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
                    .body(s3s::Body::from(metrics.render()))
                    .unwrap_or_default())
            }
            _ => {}
        }
    }
    let expects_continue = request
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut response = service.call(request.map(s3s::Body::from)).await?;
    if !response.status().is_success() {
        fill_missing_message(&mut response);
        if expects_continue {
            close_after(&mut response);
        }
    }
    Ok(response)
}

/// Gives an error answered without a `<Message>` (a few of s3s's own refusals) the
/// standard text for its code; see [`crate::s3::errors::with_missing_message`].
fn fill_missing_message(response: &mut http::Response<s3s::Body>) {
    let filled = response
        .body()
        .bytes()
        .and_then(|document| crate::s3::errors::with_missing_message(&document));
    if let Some(filled) = filled {
        *response.body_mut() = s3s::Body::from(bytes::Bytes::from(filled));
    }
}

/// Ends the connection after an error answered to an `Expect: 100-continue` request.
///
/// Such an error may be sent before the body was read (a refused signature, a missing
/// upload), and the client then does not send the body at all (botocore skips it on a
/// final status). If the connection stayed open, hyper would take the first bytes of
/// the client's NEXT request as the rest of this body — `POST` arrives as `OST` and
/// fails its signature (the intermittent `SignatureDoesNotMatch` after an UploadPart to
/// a missing upload). Closing is the HTTP/1.1 way out (RFC 9110 §10.1.1).
fn close_after(response: &mut http::Response<s3s::Body>) {
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::object::fragments::InMemoryFragments;
    use shardlet_core::Topology;
    use shardlet_model::memory::InMemoryMetadata;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads until the peer closes (or `limit` bytes), bounded by a deadline.
    async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: usize) -> Vec<u8> {
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while received.len() < limit {
            match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
                Err(_) => panic!("the gateway neither answered nor closed within 10 s"),
            }
        }
        received
    }

    #[tokio::test]
    async fn an_error_to_an_expect_continue_request_closes_the_connection() {
        let topology = Topology::from_toml_str(
            include_str!("../../examples/topology.toml"),
            "topology.toml",
        )
        .unwrap();
        let config = GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            region: "us-east-1".into(),
            sizing: SizingPolicy::default(),
            collector: CollectorConfig::default(),
        };
        let gateway = BoundGateway::bind(
            config,
            Arc::new(InMemoryMetadata::default()),
            Arc::new(InMemoryFragments::default()),
            Arc::new(TopologySource::new(topology)),
        )
        .await
        .unwrap();
        let address = gateway.local_address().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(gateway.serve(async {
            let _ = stopped.await;
        }));

        // An unsigned upload is refused before its body is read; like botocore after a
        // final status, the client never sends the body and reuses the connection.
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let refused = "PUT /bucket/key HTTP/1.1\r\nHost: gateway\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n";
        stream.write_all(refused.as_bytes()).await.unwrap();
        let next = "GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n";
        // Whatever arrives after the refusal must not be read as the refused body.
        let _ = stream.write_all(next.as_bytes()).await;
        let received = String::from_utf8_lossy(&read_until_closed(&mut stream, 64 * 1024).await)
            .to_ascii_lowercase();

        assert!(received.starts_with("http/1.1 403"), "{received}");
        assert!(received.contains("connection: close"), "{received}");
        assert_eq!(
            received.matches("http/1.1 ").count(),
            1,
            "the connection carried a second answer (to a request with a byte eaten): {received}"
        );
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
