//! The HTTP API of a member: raft RPC (`/raft/*`), key-value (`/kv/*`), cluster
//! management (`/cluster/*`), `/metrics`, `/health` (liveness: the process answers) and
//! `/ready` (readiness: it knows a leader and has caught up, `crate::readiness`).
//!
//! Every route but `/metrics`, `/health` and `/ready` is authenticated (`crate::auth`: the
//! caller's key, nonce, host) and authorised for the caller's role before its body is
//! read. Bodies are bounded by
//! `request_body_bytes_max` (413 beyond it). Writes and linearizable reads that reach a
//! follower are forwarded to the leader once (one hop, never a loop).

mod cluster_routes;
mod error;
mod incoming;
mod kv_routes;
mod raft_routes;
mod roles;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub use error::ApiError;
use incoming::Shared;

use crate::network::{PATH_APPEND, PATH_SNAPSHOT, PATH_VOTE};
use crate::node::MetaNode;
use crate::wire;

pub fn router(node: Arc<MetaNode>) -> Router {
    let body_limit = node.config.request_body_bytes_max;
    Router::new()
        .route(PATH_APPEND, post(raft_routes::append))
        .route(PATH_VOTE, post(raft_routes::vote))
        .route(PATH_SNAPSHOT, post(raft_routes::snapshot))
        .route(wire::PATH_GET, post(kv_routes::get))
        .route(wire::PATH_SCAN, post(kv_routes::scan))
        .route(wire::PATH_PUT, post(kv_routes::put))
        .route(wire::PATH_DELETE, post(kv_routes::delete))
        .route(wire::PATH_BATCH, post(kv_routes::batch))
        .route(wire::PATH_ADD_LEARNER, post(cluster_routes::add_learner))
        .route(
            wire::PATH_CHANGE_MEMBERSHIP,
            post(cluster_routes::change_membership),
        )
        .route(wire::PATH_PROMOTE, post(cluster_routes::promote))
        .route(wire::PATH_REMOVE, post(cluster_routes::remove))
        .route(wire::PATH_STATUS, get(cluster_routes::status))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .route(shardlet_net::READY_PATH, get(ready))
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            count_requests,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(node)
}

async fn metrics(State(node): Shared) -> String {
    node.refresh_metrics().await;
    node.metrics.render()
}

async fn ready(State(node): Shared) -> Response<axum::body::Body> {
    node.readiness().await.response()
}

async fn count_requests(State(node): Shared, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    node.metrics
        .http_requests_total
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}
