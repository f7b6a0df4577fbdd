//! The controller's HTTP endpoint: `/health`, `/metrics`, and `/v1/status` (lease,
//! node states and risk, every background worker's progress; for operators and tests).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;

use super::clock::unix_ms_now;
use super::detection::state_label;
use super::shared::ServiceShared;
use super::worker::{Pace, Pass, Stop, Worker, WorkerReport};

/// Serves [`router`] on a bound listener until the daemon stops (in-flight requests
/// finish first).
pub struct HttpWorker {
    shared: Arc<ServiceShared>,
    listener: Mutex<Option<TcpListener>>,
}

impl HttpWorker {
    pub fn new(shared: Arc<ServiceShared>, listener: TcpListener) -> Self {
        Self {
            shared,
            listener: Mutex::new(Some(listener)),
        }
    }
}

#[async_trait]
impl Worker for HttpWorker {
    fn name(&self) -> &'static str {
        "http"
    }

    fn pace(&self) -> Pace {
        Pace::UntilStopped
    }

    async fn step(&self, stop: &Stop) -> anyhow::Result<Pass> {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| anyhow::anyhow!("the HTTP listener was already served"))?;
        let mut stop = stop.clone();
        axum::serve(listener, router(self.shared.clone()))
            .with_graceful_shutdown(async move { stop.wait().await })
            .await
            .map_err(|error| anyhow::anyhow!("controller HTTP server failed: {error}"))?;
        Ok(Pass::Worked)
    }
}

#[derive(Serialize)]
struct Status {
    holder: String,
    active: bool,
    term: Option<u64>,
    risk_source: Option<&'static str>,
    nodes: Vec<NodeStatus>,
    workers: BTreeMap<&'static str, WorkerStatus>,
    settings: SettingsStatus,
}

/// The cluster settings as this controller enforces them.
#[derive(Serialize)]
struct SettingsStatus {
    upload_deadline_seconds: u64,
    /// `None` while the settings were not read recently (the scrub deletes no orphan).
    orphan_grace_seconds: Option<u64>,
}

#[derive(Serialize)]
struct WorkerStatus {
    #[serde(flatten)]
    report: WorkerReport,
    seconds_since_success: Option<f64>,
}

#[derive(Serialize)]
struct NodeStatus {
    id: u32,
    address: String,
    state: &'static str,
    last_heartbeat_unix_ms: Option<u64>,
    risk: Option<f64>,
    /// Why the node refuses writes (a failed fsync), as its `/health` said; `None`
    /// while it accepts them.
    writes_refused: Option<String>,
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
    let records = match shared.cluster.node_records(&shared.metadata).await {
        Ok(records) => records,
        Err(error) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("metadata unavailable: {error}\n"),
            )
                .into_response()
        }
    };
    let (risk, source, heartbeats, refused) = match shared.health_view.lock() {
        Ok(view) => (
            view.risk.clone(),
            view.source.map(|source| source.label()),
            view.last_heartbeat_unix_ms.clone(),
            view.writes_refused.clone(),
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
            writes_refused: refused.get(&node.id).cloned(),
        })
        .collect();
    let now_ms = unix_ms_now();
    let workers = shared
        .workers
        .reports()
        .into_iter()
        .map(|(name, report)| {
            let since = report
                .last_success_unix_ms
                .map(|at| now_ms.saturating_sub(at) as f64 / 1000.0);
            (
                name,
                WorkerStatus {
                    report,
                    seconds_since_success: since,
                },
            )
        })
        .collect();
    let fence = shared.lease.fence();
    Json(Status {
        holder: shared.lease.holder().to_string(),
        active: fence.is_some(),
        term: fence.map(|fence| fence.term),
        risk_source: source,
        nodes,
        workers,
        settings: SettingsStatus {
            upload_deadline_seconds: shared.settings.upload_deadline().as_secs(),
            orphan_grace_seconds: shared.orphan_grace().map(|grace| grace.as_secs()),
        },
    })
    .into_response()
}
