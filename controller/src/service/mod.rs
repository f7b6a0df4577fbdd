//! The controller daemon: the thin I/O shell around the pure decision modules.
//!
//! | file | its one job |
//! |---|---|
//! | [`lease`] | one active controller: a compare-and-set lease with a fencing token |
//! | [`layout_worker`] | the cluster layout, re-read and installed when newer; auto-apply of announced nodes |
//! | [`announce`] | `/v1/announce`: a storage node's signed announcement stages its role or returns its id |
//! | [`detection`] | probes every node's `/health`, feeds the detector, writes node states, node risk |
//! | [`repair_worker`] | down and draining nodes → plans → parallel execution |
//! | [`scrub_worker`] | listings and checksums against metadata → repair and deletions |
//! | [`settings_worker`] | the cluster settings (upload deadline → orphan grace), kept fresh |
//! | [`transition_worker`] | access heat → policy → replication ↔ erasure coding |
//! | [`rebalance_worker`] | records placed under an older layout → moves towards nodes short of data, under the shared budget; progress in `g/rebalance` |
//! | [`leader`] | the one shape of repair, scrub and transitions: a pass every interval, only while the lease is held |
//! | [`executor`] | runs [`crate::Action`]s against nodes and meta-raft |
//! | [`cluster`], [`records`] | node states and clients; records ↔ [`crate::ShardletState`] |
//! | [`http`], [`metrics`], [`stock_metrics`] | `/health`, `/metrics`, `/v1/status`; the stock gauges the transition pass sets |
//! | [`worker`] | the [`worker::Worker`] trait every loop above implements, and the one [`worker::Runner`] that starts, names, measures and stops them |
//! | [`shared`], [`config`], [`clock`] | what the workers share; the daemon's settings; wall-clock time |
//!
//! Workers import [`shared`] and each other's types, never this file: it only declares
//! the modules, wires the workers and starts them.
//!
//! Every worker acts only while the lease is held, re-derives its work from meta-raft
//! each pass, and commits with compare-and-set: a controller killed at any point is
//! replaced by one that neither loses nor duplicates work.

pub mod announce;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod detection;
pub mod executor;
pub mod http;
pub mod layout_worker;
pub mod leader;
pub mod lease;
pub mod metrics;
pub mod predictor;
pub mod rebalance_worker;
pub mod records;
pub mod repair_worker;
pub mod scrub_worker;
pub mod settings_worker;
pub mod shared;
pub mod stock_metrics;
pub mod transition_worker;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shardlet_meta::client::ClientOptions;
use shardlet_meta::MetaClient;
use tokio::sync::Notify;

pub use clock::unix_ms_now;
pub use config::ServiceConfig;
pub use shared::ServiceShared;

use leader::LeaderWorker;

use crate::detector::Detector;

/// How long busy workers get to finish after a stop signal before they are aborted.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// A started controller: its bound address and a way to stop it.
pub struct RunningController {
    pub address: SocketAddr,
    pub shared: Arc<ServiceShared>,
    runner: worker::Runner,
}

impl RunningController {
    /// Starts every worker and the HTTP endpoint.
    pub async fn start(config: ServiceConfig) -> anyhow::Result<Self> {
        config.port.validate()?;
        let metrics = Arc::new(metrics::Metrics::new()?);
        metrics.stocks.publish_targets(&config.policy);
        metrics
            .evacuate_risk_threshold
            .set(config.evacuate_risk.unwrap_or(0.0));
        metrics
            .io_budget_bytes_per_second
            .set(config.budget_bytes_per_second);
        let meta = Arc::new(MetaClient::new(
            config.meta_addresses.clone(),
            config.keys.meta.clone(),
            ClientOptions {
                // Fail fast: every worker retries at its next pass anyway, and the lease
                // must notice a lost metadata service before it expires.
                attempts_max: 5,
                request_timeout: (config.lease_duration / 4).max(Duration::from_secs(2)),
                transport: config.transport.clone(),
                ..ClientOptions::default()
            },
        )?);
        let cluster = Arc::new(cluster::Cluster::new(
            config.keys.storage.clone(),
            config.transport.clone(),
        ));
        // The layout before any worker starts, so the first passes see the nodes; a
        // failure here only delays that to the layout worker's first pass.
        match cluster
            .refresh_layout(&shardlet_model::Metadata::new(meta.clone()))
            .await
        {
            Ok(_) => {
                let version = cluster.members().version();
                metrics
                    .layout_version
                    .set(i64::try_from(version).unwrap_or(i64::MAX));
                if version == 0 {
                    tracing::warn!("no cluster layout in meta-raft yet: import one with `shardlet admin layout import FILE`, or let nodes announce themselves");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the cluster layout at start; retrying")
            }
        }
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
                predictor: match (&config.predictor_url, &config.keys.predictor) {
                    (Some(url), Some(key)) => Some((url.clone(), key.clone())),
                    (Some(_), None) => anyhow::bail!(
                        "a predictor URL is set but the controller holds no predictor key"
                    ),
                    (None, _) => None,
                },
                transport: config.transport.clone(),
                evacuate_risk: config.evacuate_risk,
            },
        )?);
        let board = Arc::new(worker::WorkerBoard::default());
        let shared = Arc::new(ServiceShared::new(
            cluster.clone(),
            meta.clone(),
            lease.clone(),
            metrics.clone(),
            detection.view.clone(),
            board.clone(),
        ));
        let executor = Arc::new(executor::Executor {
            cluster,
            meta: meta.clone(),
            metadata: shared.metadata.clone(),
            lease: lease.clone(),
            metrics: metrics.clone(),
        });
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        let mut runner = worker::Runner::new(metrics.clone(), board);
        runner.spawn(Arc::new(lease::LeaseWorker {
            lease: lease.clone(),
            meta,
            metrics,
        }));
        runner.spawn(detection);
        runner.spawn(Arc::new(settings_worker::SettingsWorker {
            shared: shared.clone(),
        }));
        runner.spawn(Arc::new(layout_worker::LayoutWorker {
            shared: shared.clone(),
            poll_interval: config.layout_poll_interval,
            auto_apply_announced: config.auto_apply_announced,
        }));
        let repair_wake = Arc::new(Notify::new());
        let repair = repair_worker::RepairWorker {
            shared: shared.clone(),
            executor: executor.clone(),
            scheduler: config.scheduler,
            wake: repair_wake.clone(),
            backlog: Default::default(),
        };
        runner.spawn(Arc::new(LeaderWorker::new(
            lease.clone(),
            config.repair_interval,
            repair,
        )));
        if let Some(interval) = config.scrub_interval {
            let scrub = scrub_worker::ScrubWorker::new(
                shared.clone(),
                executor.clone(),
                config.scrub_bytes_per_second,
                repair_wake,
            );
            runner.spawn(Arc::new(LeaderWorker::new(lease.clone(), interval, scrub)));
        }
        // Transitions and the rebalance spend one background budget.
        let budget = Arc::new(std::sync::Mutex::new(crate::budget::IoBudget::new(
            config.budget_bytes_per_second,
            clock::unix_ms_now(),
        )));
        if let Some(interval) = config.rebalance_interval {
            let rebalance = rebalance_worker::RebalanceWorker::new(
                shared.clone(),
                executor.clone(),
                budget.clone(),
            );
            runner.spawn(Arc::new(LeaderWorker::new(
                lease.clone(),
                interval,
                rebalance,
            )));
        }
        if let Some(interval) = config.transition_interval {
            let transitions = transition_worker::TransitionWorker::new(
                shared.clone(),
                executor,
                config.policy.clone(),
                config.heat,
                budget,
            );
            runner.spawn(Arc::new(LeaderWorker::new(
                lease.clone(),
                interval,
                transitions,
            )));
        }
        let server = shardlet_net::ServerOptions {
            name: "controller",
            port: config.port.clone(),
            // The registry adds the `shardlet_controller_` prefix.
            metrics: shardlet_net::ServerMetrics::register(shared.metrics.registry(), "")?,
        };
        runner.spawn(Arc::new(http::HttpWorker::new(
            shared.clone(),
            listener,
            server,
            config.keys.status.clone(),
            config.keys.storage.clone(),
        )));
        Ok(Self {
            address,
            shared,
            runner,
        })
    }

    /// Runs until `signal` resolves, then stops every worker: idle ones at once, busy
    /// ones after [`STOP_GRACE`]. Stopping mid-pass is safe by construction (every step
    /// of a plan survives a crash), and a controller that lingers would only delay
    /// whoever is stopping the cluster around it (the metadata service may already be
    /// gone, so a pass in progress would just wait out its retries).
    pub async fn serve_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        self.runner.stop(STOP_GRACE).await;
    }
}

#[cfg(test)]
mod tests;
