//! The gateway's admin port: `GET /metrics` (Prometheus), `GET /health` and `GET /ready`
//! ([`crate::readiness`]), away from
//! the public S3 port, so scraping needs no S3 credentials and strangers on the S3
//! network see no metrics. Bound to loopback by default (`--admin-listen
//! 127.0.0.1:9090`); with `--metrics-token-file`, `/metrics` also needs that bearer
//! token (checked by the shared server, `shardlet-net`).

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use shardlet_net::ServerLimits;

use crate::metrics::Metrics;
use crate::readiness::GatewayReadiness;

/// Connections the admin port holds at once: a few scrapers and probes.
pub const ADMIN_CONNECTIONS_MAX: usize = 64;

/// The admin port's bounds: the shared defaults with a smaller connection limit.
pub fn admin_port_limits() -> ServerLimits {
    ServerLimits {
        connections_max: ADMIN_CONNECTIONS_MAX,
        ..ServerLimits::default()
    }
}

/// Answers one admin request.
pub async fn handle(
    metrics: Arc<Metrics>,
    readiness: Arc<GatewayReadiness>,
    request: http::Request<Incoming>,
) -> Result<http::Response<s3s::Body>, Infallible> {
    let method = request.method();
    if method != http::Method::GET && method != http::Method::HEAD {
        return Ok(text(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "the admin port answers GET /metrics, GET /health and GET /ready only\n",
        ));
    }
    let response = match request.uri().path() {
        "/metrics" => http::Response::builder()
            .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(s3s::Body::from(bytes::Bytes::from(metrics.render())))
            .unwrap_or_default(),
        "/health" => http::Response::builder()
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(s3s::Body::from(r#"{"status":"ok"}"#.to_string()))
            .unwrap_or_default(),
        shardlet_net::READY_PATH => readiness.check().response(),
        _ => text(
            http::StatusCode::NOT_FOUND,
            "the admin port answers GET /metrics, GET /health and GET /ready only\n",
        ),
    };
    Ok(response)
}

fn text(status: http::StatusCode, body: &'static str) -> http::Response<s3s::Body> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(s3s::Body::from(body.to_string()))
        .unwrap_or_default()
}
