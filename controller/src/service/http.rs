//! The controller's HTTP endpoint: `/health`, `/metrics`, `/v1/status` (lease,
//! node states and risk, every background worker's progress; for operators and tests)
//! and `/v1/announce` (storage nodes announce themselves: [`super::announce`]).
//!
//! `/v1/status` must be signed with the `controller` key (`shardlet admin nodes
//! --controller` signs; the admin role holds the key), with a nonce seen once: it lists
//! every node's address and state, which a stranger has no business reading. A refusal
//! is 401 with a JSON reason, counted by reason. `/health` (liveness) and `/ready`
//! (readiness: the metadata service answers, [`readiness`]) stay open for probes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use shardlet_auth::{Key, KeyName, ReplayCache, SigningKey, Verifier, MAX_CLOCK_SKEW};
use shardlet_net::ServerOptions;
use tokio::net::TcpListener;

use super::clock::unix_ms_now;
use super::detection::state_label;
use super::shared::ServiceShared;
use super::worker::{Pace, Pass, Stop, Worker, WorkerReport};

/// Serves [`router`] on a bound listener until the daemon stops (in-flight requests
/// finish first), on the hardened server every port shares (`shardlet-net`).
pub struct HttpWorker {
    shared: Arc<ServiceShared>,
    listener: Mutex<Option<TcpListener>>,
    server: ServerOptions,
    verifier: Arc<Verifier>,
    /// Accepts every storage node's own key (`node-NAME` from `storage`).
    announce_verifier: Arc<Verifier>,
}

/// Nonces of `/v1/status` requests remembered (an operator's tool and tests call it, a
/// few per second at most): 64 Ki entries, at most ~2.5 MiB.
pub const STATUS_REPLAY_CACHE_ENTRIES_MAX: usize = 64 * 1024;

impl HttpWorker {
    /// Serves on `listener` through the shared server (`server`); `/v1/status` verifies
    /// with `status_key` (`controller`), `/v1/announce` with each node's key derived
    /// from `storage_key`.
    pub fn new(
        shared: Arc<ServiceShared>,
        listener: TcpListener,
        server: ServerOptions,
        status_key: Key,
        storage_key: Key,
    ) -> Self {
        let verifier = Verifier::new(
            vec![SigningKey::new(KeyName::Controller, status_key)],
            ReplayCache::new(STATUS_REPLAY_CACHE_ENTRIES_MAX, MAX_CLOCK_SKEW.as_secs()),
        );
        let announce_verifier = Verifier::new(
            Vec::new(),
            ReplayCache::new(
                super::announce::ANNOUNCE_REPLAY_CACHE_ENTRIES_MAX,
                MAX_CLOCK_SKEW.as_secs(),
            ),
        )
        .with_children_of(KeyName::Storage, storage_key);
        Self {
            shared,
            listener: Mutex::new(Some(listener)),
            server,
            verifier: Arc::new(verifier),
            announce_verifier: Arc::new(announce_verifier),
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
        shardlet_net::serve(
            listener,
            router(
                self.shared.clone(),
                self.verifier.clone(),
                self.announce_verifier.clone(),
            ),
            self.server.clone(),
            async move { stop.wait().await },
        )
        .await;
        Ok(Pass::Worked)
    }
}

#[derive(Serialize)]
struct Status {
    holder: String,
    active: bool,
    term: Option<u64>,
    /// The cluster layout version this controller uses.
    layout_version: u64,
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
    name: String,
    address: String,
    /// What the operator decided (`active`, `draining`, `decommissioned`).
    layout_state: &'static str,
    state: &'static str,
    last_heartbeat_unix_ms: Option<u64>,
    risk: Option<f64>,
    /// Why the node refuses writes (a failed fsync), as its `/health` said; `None`
    /// while it accepts them.
    writes_refused: Option<String>,
}

pub fn router(
    shared: Arc<ServiceShared>,
    verifier: Arc<Verifier>,
    announce_verifier: Arc<Verifier>,
) -> Router {
    let signed = Router::new().route("/v1/status", get(status)).route_layer(
        axum::middleware::from_fn_with_state((shared.clone(), verifier), authenticate),
    );
    // Verified inside the handler: the body's signed hash is checked after the
    // signature, against a bounded read.
    let announce = Router::new()
        .route(
            shardlet_node::announce::ANNOUNCE_PATH,
            post(super::announce::handle),
        )
        .with_state((shared.clone(), announce_verifier));
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route(shardlet_net::READY_PATH, get(ready))
        .route("/metrics", get(metrics))
        .merge(signed)
        .with_state(shared)
        .merge(announce)
}

/// How old the last successful metadata read may be for the controller to be ready:
/// three refreshes of the settings worker, which every controller runs (standbys too).
pub const METADATA_ANSWERED_WITHIN: std::time::Duration =
    shardlet_model::settings::SETTINGS_REFRESH_INTERVAL.saturating_mul(3);

/// `GET /ready` (unauthenticated, like `/health`): ready while the metadata service
/// answered within [`METADATA_ANSWERED_WITHIN`] — the settings worker's last successful
/// read, so a probe costs nothing and causes no metadata traffic. 503 with the reason
/// otherwise.
pub fn readiness(shared: &ServiceShared) -> shardlet_net::Readiness {
    match shared.settings.fresh_within(METADATA_ANSWERED_WITHIN) {
        Some(_) => shardlet_net::Readiness::Ready,
        None => shardlet_net::Readiness::not_ready(format!(
            "the metadata service has not answered within {} s",
            METADATA_ANSWERED_WITHIN.as_secs()
        )),
    }
}

async fn ready(State(shared): State<Arc<ServiceShared>>) -> Response {
    readiness(&shared).response::<axum::body::Body>()
}

/// Lets a request through only when it is signed with the `controller` key, for the
/// first time; 401 (503 when the replay cache is full) with a JSON reason otherwise.
async fn authenticate(
    State((shared, verifier)): State<(Arc<ServiceShared>, Arc<Verifier>)>,
    request: Request,
    next: Next,
) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str());
    match verifier.verify(
        request.method().as_str(),
        target,
        request.headers(),
        SystemTime::now(),
    ) {
        Ok(_) => next.run(request).await,
        Err(error) => {
            shared
                .metrics
                .auth_refused_total
                .with_label_values(&[error.reason()])
                .inc();
            tracing::warn!(%error, path = request.uri().path(), "refused an unauthenticated request");
            (
                error.status(),
                Json(serde_json::json!({
                    "error": "unauthenticated",
                    "message": error.to_string(),
                })),
            )
                .into_response()
        }
    }
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
    let members = shared.cluster.members();
    let nodes = members
        .topology
        .nodes()
        .iter()
        .map(|node| NodeStatus {
            id: node.id.0,
            name: node.name.clone(),
            address: node.address.clone(),
            layout_state: members
                .layout
                .node(node.id)
                .map_or("unknown", |node| node.state.as_str()),
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
        layout_version: members.version(),
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
