//! The controller's HTTP endpoint: `/health`, `/metrics`, and `/v1/status` (lease,
//! node states and risk, for operators and tests).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::detection::state_label;
use super::ServiceShared;

#[derive(Serialize)]
struct Status {
    holder: String,
    active: bool,
    term: Option<u64>,
    risk_source: Option<&'static str>,
    nodes: Vec<NodeStatus>,
}

#[derive(Serialize)]
struct NodeStatus {
    id: u32,
    address: String,
    state: &'static str,
    last_heartbeat_unix_ms: Option<u64>,
    risk: Option<f64>,
}

pub fn router(shared: Arc<ServiceShared>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .with_state(shared)
}

async fn metrics(State(shared): State<Arc<ServiceShared>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
}

async fn status(State(shared): State<Arc<ServiceShared>>) -> impl IntoResponse {
    let records = match shared.cluster.node_records(&shared.meta).await {
        Ok(records) => records,
        Err(error) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("metadata unavailable: {error}\n"),
            )
                .into_response()
        }
    };
    let (risk, source, heartbeats) = match shared.health_view.lock() {
        Ok(view) => (
            view.risk.clone(),
            view.source.map(|source| source.label()),
            view.last_heartbeat_unix_ms.clone(),
        ),
        Err(_) => Default::default(),
    };
    let nodes = shared
        .cluster
        .topology()
        .nodes()
        .iter()
        .map(|node| NodeStatus {
            id: node.id.0,
            address: node.address.clone(),
            state: records
                .get(&node.id)
                .map_or("unregistered", |r| state_label(r.record.state)),
            last_heartbeat_unix_ms: heartbeats.get(&node.id).copied(),
            risk: risk.get(&node.id).copied(),
        })
        .collect();
    let fence = shared.lease.fence();
    Json(Status {
        holder: shared.lease.holder().to_string(),
        active: fence.is_some(),
        term: fence.map(|fence| fence.term),
        risk_source: source,
        nodes,
    })
    .into_response()
}
