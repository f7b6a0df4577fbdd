//! The controller daemon: the thin I/O shell around the pure decision modules.
//!
//! | file | its one job |
//! |---|---|
//! | [`lease`] | one active controller: a compare-and-set lease with a fencing token |
//! | [`detection`] | probes every node's `/health`, feeds the detector, writes node states, node risk |
//! | [`repair_worker`] | down and draining nodes → plans → parallel execution |
//! | [`scrub_worker`] | listings and checksums against metadata → repair and deletions |
//! | [`transition_worker`] | access heat → policy → replication ↔ erasure coding |
//! | [`executor`] | runs [`crate::Action`]s against nodes and meta-raft |
//! | [`cluster`], [`records`] | node states and clients; records ↔ [`crate::ShardletState`] |
//! | [`http`], [`metrics`] | `/health`, `/metrics`, `/v1/status` |
//!
//! Every worker acts only while the lease is held, re-derives its work from meta-raft
//! each pass, and commits with compare-and-set: a controller killed at any point is
//! replaced by one that neither loses nor duplicates work.

pub mod cluster;
pub mod detection;
pub mod executor;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod predictor;
pub mod records;
pub mod repair_worker;
pub mod scrub_worker;
pub mod transition_worker;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardlet_auth::ClusterSecret;
use shardlet_core::{NodeId, ShardletId, Topology};
use shardlet_meta::client::ClientOptions;
use shardlet_meta::MetaClient;
use tokio::sync::Notify;

use crate::detector::{Detector, DetectorConfig};
use crate::heat::HeatConfig;
use crate::policy::PolicyConfig;
use crate::scheduler::SchedulerConfig;
use crate::view::FragmentLocation;

/// How long busy workers get to finish after a stop signal before they are aborted.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Scrub findings waiting for the repair worker, at most this many.
const SCRUB_LOST_MAX: usize = 1_000_000;

pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[derive(Clone)]
pub struct ServiceConfig {
    pub meta_addresses: Vec<String>,
    pub secret: ClusterSecret,
    pub topology: Topology,
    pub listen: SocketAddr,
    /// This controller's name in the lease (unique per process).
    pub holder: String,
    pub lease_duration: Duration,
    pub detector: DetectorConfig,
    pub probe_interval: Duration,
    pub repair_interval: Duration,
    pub scheduler: SchedulerConfig,
    /// Pause between scrub passes; `None` disables the scrub.
    pub scrub_interval: Option<Duration>,
    pub scrub_bytes_per_second: u64,
    pub orphan_grace: Duration,
    /// Pause between transition passes; `None` disables transitions.
    pub transition_interval: Option<Duration>,
    pub policy: PolicyConfig,
    pub heat: HeatConfig,
    /// Background I/O budget in bytes per second (a share of cluster bandwidth).
    pub budget_bytes_per_second: f64,
    pub predictor_url: Option<String>,
    /// Drain a node whose risk reaches this (predictive evacuation); `None`: never.
    pub evacuate_risk: Option<f64>,
}

/// What every worker shares.
pub struct ServiceShared {
    pub cluster: Arc<cluster::Cluster>,
    pub meta: Arc<MetaClient>,
    pub lease: Arc<lease::Lease>,
    pub metrics: Arc<metrics::Metrics>,
    pub health_view: Arc<Mutex<detection::NodeHealthView>>,
    scrub_lost: Mutex<BTreeSet<(ShardletId, FragmentLocation)>>,
}

impl ServiceShared {
    pub fn node_risk(&self) -> BTreeMap<NodeId, f64> {
        self.health_view
            .lock()
            .map(|view| view.risk.clone())
            .unwrap_or_default()
    }

    pub fn add_scrub_lost(&self, lost: BTreeSet<(ShardletId, FragmentLocation)>) {
        let mut pending = self.scrub_lost.lock().unwrap_or_else(|p| p.into_inner());
        for entry in lost {
            if pending.len() >= SCRUB_LOST_MAX {
                break;
            }
            pending.insert(entry);
        }
    }

    pub fn take_scrub_lost(&self) -> BTreeSet<(ShardletId, FragmentLocation)> {
        std::mem::take(&mut *self.scrub_lost.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A started controller: its bound address and a way to stop it.
pub struct RunningController {
    pub address: SocketAddr,
    pub shared: Arc<ServiceShared>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl RunningController {
    /// Starts every worker and the HTTP endpoint.
    pub async fn start(config: ServiceConfig) -> anyhow::Result<Self> {
        let metrics = Arc::new(metrics::Metrics::new()?);
        let meta = Arc::new(MetaClient::new(
            config.meta_addresses.clone(),
            config.secret.expose(),
            ClientOptions {
                // Fail fast: every worker retries at its next pass anyway, and the lease
                // must notice a lost metadata service before it expires.
                attempts_max: 5,
                request_timeout: (config.lease_duration / 4).max(Duration::from_secs(2)),
                ..ClientOptions::default()
            },
        )?);
        let cluster = Arc::new(cluster::Cluster::new(
            config.topology.clone(),
            &config.secret,
        )?);
        let lease = Arc::new(lease::Lease::new(
            config.holder.clone(),
            config.lease_duration,
        ));
        let detection = Arc::new(detection::Detection::new(
            cluster.clone(),
            meta.clone(),
            lease.clone(),
            metrics.clone(),
            detection::DetectionSettings {
                detector: Detector::new(config.detector),
                probe_interval: config.probe_interval,
                predictor_url: config.predictor_url.clone(),
                evacuate_risk: config.evacuate_risk,
            },
        )?);
        let shared = Arc::new(ServiceShared {
            cluster: cluster.clone(),
            meta: meta.clone(),
            lease: lease.clone(),
            metrics: metrics.clone(),
            health_view: detection.view.clone(),
            scrub_lost: Mutex::new(BTreeSet::new()),
        });
        let executor = Arc::new(executor::Executor {
            cluster,
            meta: meta.clone(),
            lease: lease.clone(),
            metrics: metrics.clone(),
        });
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        let (shutdown, receiver) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(lease::run(lease, meta, metrics, receiver.clone()));
        tasks.spawn(detection.run(receiver.clone()));
        let repair_wake = Arc::new(Notify::new());
        let repair = Arc::new(repair_worker::RepairWorker {
            shared: shared.clone(),
            executor: executor.clone(),
            scheduler: config.scheduler,
            interval: config.repair_interval,
            wake: repair_wake.clone(),
        });
        tasks.spawn(repair.run(receiver.clone()));
        if let Some(interval) = config.scrub_interval {
            let scrub = Arc::new(scrub_worker::ScrubWorker::new(
                shared.clone(),
                executor.clone(),
                interval,
                config.scrub_bytes_per_second,
                config.orphan_grace,
                repair_wake,
            ));
            tasks.spawn(scrub.run(receiver.clone()));
        }
        if let Some(interval) = config.transition_interval {
            let transitions = Arc::new(transition_worker::TransitionWorker::new(
                shared.clone(),
                executor,
                interval,
                config.policy.clone(),
                config.heat,
                config.budget_bytes_per_second,
            ));
            tasks.spawn(transitions.run(receiver.clone()));
        }
        let router = http::router(shared.clone());
        let mut http_shutdown = receiver;
        tasks.spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = http_shutdown.changed().await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "controller HTTP server failed");
            }
        });
        Ok(Self {
            address,
            shared,
            shutdown,
            tasks,
        })
    }

    /// Runs until `signal` resolves, then stops every worker: idle ones at once, busy
    /// ones after [`STOP_GRACE`]. Stopping mid-pass is safe by construction (every step
    /// of a plan survives a crash), and a controller that lingers would only delay
    /// whoever is stopping the cluster around it (the metadata service may already be
    /// gone, so a pass in progress would just wait out its retries).
    pub async fn serve_until(mut self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        let _ = self.shutdown.send(true);
        let stop = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_GRACE, stop).await.is_err() {
            self.tasks.abort_all();
        }
    }
}

#[cfg(test)]
mod tests;
