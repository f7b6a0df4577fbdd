//! The S3 port: S3 (through s3s) plus an unsigned `GET /health` (liveness) and
//! `GET /ready` (readiness, [`crate::readiness`]), on the shared hardened server
//! (`shardlet-net`); and the admin port beside it ([`crate::admin`]).
//!
//! `/health` stays on the S3 port because whatever balances S3 traffic (a load
//! balancer, a Kubernetes readiness probe on the service port) checks the port it
//! sends traffic to; it says "ok" and nothing else. Both are served only to unsigned
//! requests: a signed `GET /health` is S3's ListObjects on a bucket named `health`
//! (`ready` likewise),
//! and unsigned S3 requests are refused anyway, so the two never collide. `/metrics`
//! is not on this port: an unsigned `GET /metrics` here is an unsigned S3 request
//! (AccessDenied), a signed one ListObjects on the bucket `metrics`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use s3s::service::{S3Service, S3ServiceBuilder};
use shardlet_core::SizingPolicy;
use shardlet_net::{PortConfig, ServerLimits, ServerMetrics, ServerOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;

use shardlet_model::layout::LayoutWatch;
use shardlet_model::settings::SettingsCache;
use shardlet_model::MetadataStore;

use crate::metrics::Metrics;
use crate::object::catalog::Catalog;
use crate::object::commit::Commit;
use crate::object::fragments::FragmentStore;
use crate::object::gc::{Collector, CollectorConfig};
use crate::object::heat::{run_flusher, HeatReporter};
use crate::object::layout_refresh::LayoutRefresh;
use crate::object::read_path::ReadPath;
use crate::object::topology_source::TopologySource;
use crate::object::upload_deadline::{refresh_once, refresh_settings};
use crate::object::write_path::WritePath;
use crate::readiness::GatewayReadiness;
use crate::request_body::{body_kind, document_limits, BodyKind, BodyTimeout, BodyTimer};
use crate::s3::access::BucketAccess;
use crate::s3::auth::{Authenticator, CredentialCache};
use crate::s3::host::{SharedVirtualHosts, VirtualHosts};
use crate::s3::limits::{HEADER_BYTES_MAX, XML_BODY_BYTES_MAX};
use crate::s3::Gateway;

/// The S3 port's bounds: the shared defaults, with S3's own head limit.
pub fn s3_port_limits() -> ServerLimits {
    ServerLimits {
        header_bytes_max: HEADER_BYTES_MAX,
        ..ServerLimits::default()
    }
}

/// The admin port: where it listens and how it is configured.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Limits ([`crate::admin::admin_port_limits`]) and the `/metrics` token.
    pub port: PortConfig,
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// The region reported to clients (GetBucketLocation) and expected in signatures.
    pub region: String,
    pub sizing: SizingPolicy,
    pub collector: CollectorConfig,
    /// The S3 port: connection limit, header-read timeout and the other bounds, and its
    /// certificate (its metrics token is never used: `/metrics` is on the admin port).
    pub port: PortConfig,
    /// The admin port (`/metrics`, `/health`); `None`: no admin port (metrics are then
    /// not served at all).
    pub admin: Option<AdminConfig>,
    /// How often the cluster layout and node liveness are re-read from meta-raft
    /// (`--layout-poll-seconds`); `None`: the topology given to `bind` stays (unit
    /// tests).
    pub layout_poll_interval: Option<Duration>,
    /// The base domains of virtual-hosted–style requests (`--domain`): `Host:
    /// BUCKET.DOMAIN` addresses `BUCKET`. `None`: path style only.
    pub virtual_hosts: Option<Arc<VirtualHosts>>,
}

pub struct BoundGateway {
    listener: TcpListener,
    admin: Option<(TcpListener, PortConfig, ServerMetrics)>,
    service: S3Service,
    metrics: Arc<Metrics>,
    server_metrics: ServerMetrics,
    port: PortConfig,
    collector: Arc<Collector>,
    catalog: Catalog,
    settings: Arc<SettingsCache>,
    readiness: Arc<GatewayReadiness>,
    layout: Option<(Arc<LayoutRefresh>, Duration)>,
    heat_receiver: tokio::sync::mpsc::Receiver<shardlet_core::ShardletId>,
    virtual_hosts: Option<Arc<VirtualHosts>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid server limits: {0}")]
    Limits(#[from] shardlet_net::limits::LimitError),
    #[error("cannot register the connection metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl BoundGateway {
    pub async fn bind(
        config: GatewayConfig,
        metadata: Arc<dyn MetadataStore>,
        fragments: Arc<dyn FragmentStore>,
        topology: Arc<TopologySource>,
    ) -> Result<Self, ServerError> {
        config.port.validate()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    address: config.listen,
                    source,
                })?;
        let metrics = Arc::new(Metrics::new());
        let server_metrics = ServerMetrics::register(&metrics.registry, "shardlet_gateway")?;
        let admin = match &config.admin {
            Some(admin) => {
                admin.port.validate()?;
                let listener =
                    TcpListener::bind(admin.listen)
                        .await
                        .map_err(|source| ServerError::Bind {
                            address: admin.listen,
                            source,
                        })?;
                let admin_metrics =
                    ServerMetrics::register(&metrics.registry, "shardlet_gateway_admin")?;
                Some((listener, admin.port.clone(), admin_metrics))
            }
            None => None,
        };
        let catalog =
            Catalog::new(metadata).counting_bucket_cache(metrics.bucket_cache_total.clone());
        // The upload deadline before the first request: a gateway that cannot read it
        // now starts with the default and keeps trying (`refresh_settings`).
        let settings = Arc::new(SettingsCache::default());
        refresh_once(&settings, catalog.metadata(), &metrics).await;
        // The layout before the first request too: a gateway that cannot read it starts
        // with no nodes (every write refused, naming them) and keeps trying.
        let layout = match config.layout_poll_interval {
            Some(interval) => {
                let refresh = Arc::new(LayoutRefresh {
                    topology: topology.clone(),
                    watch: LayoutWatch::new(),
                    metadata: catalog.metadata().clone(),
                    metrics: metrics.clone(),
                });
                refresh.once().await;
                Some((refresh, interval))
            }
            None => None,
        };
        let collector = Arc::new(Collector::new(
            catalog.clone(),
            fragments.clone(),
            topology.clone(),
            metrics.clone(),
            config.collector.clone(),
            settings.clone(),
        ));
        let readiness = Arc::new(GatewayReadiness {
            settings: settings.clone(),
            topology: topology.clone(),
        });
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
        if let Some(virtual_hosts) = &config.virtual_hosts {
            builder.set_host(SharedVirtualHosts(virtual_hosts.clone()));
        }
        let mut s3_config = s3s::config::S3Config::default();
        s3_config.xml_max_body_size = XML_BODY_BYTES_MAX;
        builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
            s3_config,
        ))));
        Ok(Self {
            listener,
            admin,
            service: builder.build(),
            metrics,
            server_metrics,
            port: config.port,
            collector,
            catalog,
            settings,
            readiness,
            layout,
            heat_receiver,
            virtual_hosts: config.virtual_hosts,
        })
    }

    pub fn local_address(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where the admin port listens, if there is one.
    pub fn admin_address(&self) -> Option<std::io::Result<SocketAddr>> {
        self.admin
            .as_ref()
            .map(|(listener, _, _)| listener.local_addr())
    }

    /// Serves the S3 port and the admin port until `shutdown` completes, then lets
    /// requests in flight finish (up to the shutdown grace) and flushes pending
    /// heat.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let (stop_sender, stop) = watch::channel(false);
        let collector_task = tokio::spawn(self.collector.clone().run(stop.clone()));
        let settings_task = tokio::spawn(refresh_settings(
            self.settings.clone(),
            self.catalog.metadata().clone(),
            self.metrics.clone(),
            stop.clone(),
        ));
        let layout_task = self
            .layout
            .map(|(refresh, interval)| tokio::spawn(refresh.run(interval, stop.clone())));
        let heat_task = tokio::spawn(run_flusher(
            self.catalog.clone(),
            self.metrics.clone(),
            self.heat_receiver,
            stop.clone(),
        ));
        // One shutdown signal for both ports.
        let (shutdown_sender, shutdown_receiver) = watch::channel(false);
        let stopping = |mut receiver: watch::Receiver<bool>| async move {
            let _ = receiver.wait_for(|stopping| *stopping).await.map(|_| ());
        };
        let admin_task = self.admin.map(|(listener, port, server_metrics)| {
            let metrics = self.metrics.clone();
            let readiness = self.readiness.clone();
            let handler = tower::service_fn(move |request| {
                crate::admin::handle(metrics.clone(), readiness.clone(), request)
            });
            let options = ServerOptions {
                name: "gateway-admin",
                port,
                metrics: server_metrics,
            };
            tokio::spawn(shardlet_net::serve(
                listener,
                handler,
                options,
                stopping(shutdown_receiver.clone()),
            ))
        });
        let service = self.service;
        let settings = self.settings.clone();
        let metrics = self.metrics.clone();
        let readiness = self.readiness.clone();
        let virtual_hosts = self.virtual_hosts.clone();
        let handler = tower::service_fn(move |request| {
            handle(
                service.clone(),
                settings.clone(),
                metrics.clone(),
                readiness.clone(),
                virtual_hosts.clone(),
                request,
            )
        });
        let options = ServerOptions {
            name: "gateway",
            // No metrics token here: `/metrics` is not served on the S3 port, and a
            // signed `GET /metrics` is S3 (ListObjects on the bucket `metrics`).
            port: PortConfig {
                metrics_token: None,
                ..self.port
            },
            metrics: self.server_metrics,
        };
        let s3_port =
            shardlet_net::serve(self.listener, handler, options, stopping(shutdown_receiver));
        let signal = async move {
            shutdown.await;
            let _ = shutdown_sender.send(true);
        };
        tokio::join!(s3_port, signal);
        if let Some(admin_task) = admin_task {
            let _ = admin_task.await;
        }
        // Requests are finished: the collector and the heat flusher get the last word.
        let _ = stop_sender.send(true);
        let _ = collector_task.await;
        let _ = settings_task.await;
        if let Some(layout_task) = layout_task {
            let _ = layout_task.await;
        }
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

/// Whether the request's `Host` (HTTP/2: `:authority`, as s3s reads it) names a bucket
/// under one of the `--domain`s.
fn bucket_in_host(virtual_hosts: &VirtualHosts, request: &http::Request<Incoming>) -> bool {
    let host = match request.headers().get(http::header::HOST) {
        Some(value) => value.to_str().ok(),
        None => request
            .uri()
            .authority()
            .map(|authority| authority.as_str()),
    };
    host.is_some_and(|host| virtual_hosts.bucket_of(host).is_some())
}

async fn handle(
    service: S3Service,
    settings: Arc<SettingsCache>,
    metrics: Arc<Metrics>,
    readiness: Arc<GatewayReadiness>,
    virtual_hosts: Option<Arc<VirtualHosts>>,
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
            shardlet_net::READY_PATH => return Ok(readiness.check().response()),
            _ => {}
        }
    }
    let expects_continue = request
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let timer = BodyTimer::default();
    let bucket_in_host =
        virtual_hosts.is_some_and(|virtual_hosts| bucket_in_host(&virtual_hosts, &request));
    let request = match body_kind(request.method(), request.uri(), bucket_in_host) {
        BodyKind::ObjectData => request.map(s3s::Body::from),
        BodyKind::Document => {
            let (idle, total) = document_limits(settings.upload_deadline());
            request.map(|body| s3s::Body::http_body_unsync(timer.wrap(body, idle, total)))
        }
    };
    let mut response = service.call(request).await?;
    if let Some(timeout) = timer.expired() {
        metrics
            .request_body_timeouts_total
            .with_label_values(&[timeout.reason()])
            .inc();
        return Ok(body_timeout_response(timeout));
    }
    if !response.status().is_success() {
        fill_missing_message(&mut response);
        if expects_continue {
            close_after(&mut response);
        }
    }
    Ok(response)
}

/// S3's `RequestTimeout` for a document body cut for time (s3s answered the failed
/// read with `InternalError`, which would tell the client to retry the same way). The
/// connection closes: the rest of the body is never read.
fn body_timeout_response(timeout: BodyTimeout) -> http::Response<s3s::Body> {
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>RequestTimeout</Code><Message>Your socket connection to the server was not read from or written to within the timeout period: {timeout}</Message></Error>"
    );
    let mut response = http::Response::builder()
        .status(http::StatusCode::BAD_REQUEST)
        .header(http::header::CONTENT_TYPE, "application/xml")
        .body(s3s::Body::from(document))
        .unwrap_or_default();
    close_after(&mut response);
    response
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
    use std::time::Duration;
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
            port: PortConfig::with_limits(s3_port_limits()),
            admin: None,
            layout_poll_interval: None,
            virtual_hosts: None,
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

    /// One request on a fresh connection; the whole answer, lower-cased.
    async fn get(address: SocketAddr, path: &str, authorization: Option<&str>) -> String {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let authorization = authorization
            .map(|value| format!("Authorization: {value}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: gateway\r\n{authorization}Connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&read_until_closed(&mut stream, 1 << 20).await).to_ascii_lowercase()
    }

    #[tokio::test]
    async fn metrics_are_served_on_the_admin_port_only_and_need_the_token() {
        const TOKEN: &str = "0123456789abcdef0123456789abcdef";
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
            port: PortConfig::with_limits(s3_port_limits()),
            admin: Some(AdminConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                port: PortConfig {
                    limits: crate::admin::admin_port_limits(),
                    metrics_token: shardlet_net::MetricsToken::new(TOKEN),
                    tls: None,
                },
            }),
            layout_poll_interval: None,
            virtual_hosts: None,
        };
        let gateway = BoundGateway::bind(
            config,
            Arc::new(InMemoryMetadata::default()),
            Arc::new(InMemoryFragments::default()),
            Arc::new(TopologySource::new(topology)),
        )
        .await
        .unwrap();
        let s3 = gateway.local_address().unwrap();
        let admin = gateway.admin_address().unwrap().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(gateway.serve(async {
            let _ = stopped.await;
        }));

        // The S3 port: no metrics for anyone unsigned, but probes still get /health.
        let answer = get(s3, "/metrics", None).await;
        assert!(answer.starts_with("http/1.1 403"), "{answer}");
        assert!(
            !answer.contains("shardlet_gateway_requests_total"),
            "{answer}"
        );
        assert!(get(s3, "/health", None).await.starts_with("http/1.1 200"));

        // The admin port: metrics with the token only; /health without.
        let bearer = format!("Bearer {TOKEN}");
        let answer = get(admin, "/metrics", Some(&bearer)).await;
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        assert!(
            answer.contains("shardlet_gateway_connections_open"),
            "{answer}"
        );
        assert!(get(admin, "/metrics", None)
            .await
            .starts_with("http/1.1 401"));
        assert!(get(admin, "/metrics", Some("Bearer wrong"))
            .await
            .starts_with("http/1.1 401"));
        assert!(get(admin, "/health", None)
            .await
            .starts_with("http/1.1 200"));
        assert!(get(admin, "/anything", None)
            .await
            .starts_with("http/1.1 404"));

        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
