//! `shardlet controller`: the daemon that detects failures, repairs, scrubs and moves
//! shardlets between replication and erasure coding (`controller/src/service/`).

use crate::output::say;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use shardlet_controller::detector::DetectorConfig;
use shardlet_controller::heat::HeatConfig;
use shardlet_controller::policy::PolicyConfig;
use shardlet_controller::scheduler::SchedulerConfig;
use shardlet_controller::service::{RunningController, ServiceConfig};

use shardlet_controller::service::config::ControllerKeys;

use crate::connect::KeyArguments;

#[derive(clap::Args)]
pub struct ControllerArguments {
    /// Metadata service members (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub meta: Vec<String>,
    /// Removed: the cluster layout lives in meta-raft; import a topology file once with
    /// `shardlet admin layout import FILE`.
    #[arg(long, hide = true)]
    pub topology: Option<PathBuf>,
    /// How often the cluster layout is re-read from meta-raft (new nodes, drains,
    /// addresses are picked up without a restart).
    #[arg(long, default_value_t = 2.0, env = "SHARDLET_LAYOUT_POLL_SECONDS")]
    pub layout_poll_seconds: f64,
    /// Apply storage nodes that announced themselves with a complete role (region, zone,
    /// capacity, address) without an operator: for `shardlet dev` and Kubernetes. An
    /// operator's staged changes still wait for `shardlet admin layout apply`.
    #[arg(long, env = "SHARDLET_AUTO_APPLY_ANNOUNCED")]
    pub auto_apply_announced: bool,
    /// Address for `/metrics`, `/health` and `/v1/status`; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9600")]
    pub listen: SocketAddr,
    /// Seconds of silence before a node is declared down and repaired (doubled for
    /// flapping nodes).
    #[arg(long, default_value_t = 600.0)]
    pub down_grace_seconds: f64,
    /// Seconds of silence before a node is suspect (nothing moves yet).
    #[arg(long, default_value_t = 15.0)]
    pub suspect_after_seconds: f64,
    /// How often every node's `/health` is probed.
    #[arg(long, default_value_t = 1.0)]
    pub probe_interval_seconds: f64,
    /// Lease duration; a replacement controller acts at most this long after one dies.
    #[arg(long, default_value_t = 10.0)]
    pub lease_seconds: f64,
    /// Pause between repair passes.
    #[arg(long, default_value_t = 5.0)]
    pub repair_interval_seconds: f64,
    /// Repairs in flight per storage node.
    #[arg(long, default_value_t = 2)]
    pub repair_per_node_max: usize,
    /// Repairs in flight in total.
    #[arg(long, default_value_t = 64)]
    pub repair_in_flight_max: usize,
    /// Pause between scrub passes; 0 disables the scrub.
    #[arg(long, default_value_t = 60.0)]
    pub scrub_interval_seconds: f64,
    /// Read-back rate of the scrub's checksum verification; 0 compares listings only.
    #[arg(long, default_value_t = 20 * 1024 * 1024)]
    pub scrub_bytes_per_second: u64,
    /// Removed: the orphan grace derives from the cluster's upload deadline (`shardlet
    /// admin cluster set upload-deadline-seconds N`), which every gateway enforces too.
    #[arg(long, hide = true)]
    pub orphan_grace_seconds: Option<f64>,
    /// Pause between transition passes; 0 disables transitions.
    #[arg(long, default_value_t = 30.0)]
    pub transition_interval_seconds: f64,
    /// Pause between rebalance passes (moving what a layout change moved); 0 disables
    /// the rebalance.
    #[arg(long, default_value_t = 5.0)]
    pub rebalance_interval_seconds: f64,
    /// A scheme change for heat alone waits this long after the previous one.
    #[arg(long, default_value_t = 86_400.0)]
    pub change_dwell_seconds: f64,
    /// Half-life of the decayed access counts.
    #[arg(long, default_value_t = 6.0 * 3600.0)]
    pub heat_half_life_seconds: f64,
    /// Share of cluster bandwidth background transitions may use.
    #[arg(long, default_value_t = 0.05)]
    pub io_budget_share: f64,
    /// Cluster bandwidth the share applies to; default: 1.2 GB/s (100 MB/s for 12 nodes).
    #[arg(long)]
    pub cluster_bandwidth_bytes_per_second: Option<f64>,
    /// The failure predictor sidecar (e.g. http://127.0.0.1:9400); without it, or when
    /// it does not answer, node risk comes from the heuristic.
    #[arg(long)]
    pub predictor_url: Option<String>,
    /// Drain a node ahead of failure when its risk (predictor or heuristic) reaches
    /// this probability; 0 turns predictive evacuation off.
    #[arg(long, default_value_t = 0.8)]
    pub evacuate_risk_above: f64,
    /// The controller's keys (`meta.controller`, `storage`, `controller`, `predictor`):
    /// `--key-file` from `shardlet admin key derive --role controller`.
    #[command(flatten)]
    pub keys: KeyArguments,
    #[command(flatten)]
    pub server: shardlet_net::arguments::ServerArguments,
}

/// The cluster bandwidth the transition budget is a share of, when not given: 100 MB/s
/// for each of 12 nodes (the node count is the layout's and changes while running; the
/// flag names the real figure).
const DEFAULT_CLUSTER_BANDWIDTH_BYTES_PER_SECOND: f64 = 12.0 * 100e6;

fn seconds(value: f64, name: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{name} must be a non-negative number of seconds, got {value}"))
}

fn optional_interval(value: f64, name: &str) -> anyhow::Result<Option<Duration>> {
    let duration = seconds(value, name)?;
    Ok((!duration.is_zero()).then_some(duration))
}

pub async fn run(
    arguments: ControllerArguments,
    tls: &shardlet_net::arguments::TlsArguments,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        arguments.orphan_grace_seconds.is_none(),
        "--orphan-grace-seconds was removed: the scrub's orphan grace derives from the \
         cluster's upload deadline, which the gateways enforce too; set it with `shardlet \
         admin cluster set upload-deadline-seconds N --meta …`"
    );
    let keyring =
        crate::connect::load_keyring(&arguments.keys, Some(shardlet_auth::Role::Controller))?;
    let keys = ControllerKeys::from_keyring(&keyring).context("the controller's keys")?;
    anyhow::ensure!(
        arguments.predictor_url.is_none() || keys.predictor.is_some(),
        "--predictor-url needs the predictor key among the controller's keys"
    );
    anyhow::ensure!(
        arguments.topology.is_none(),
        "--topology was removed: the cluster layout lives in meta-raft and the controller \
         watches it; import the file once with `shardlet admin layout import FILE --meta …`"
    );
    let layout_poll_interval = crate::connect::layout_poll_interval(arguments.layout_poll_seconds)?;
    let down_after = seconds(arguments.down_grace_seconds, "down-grace-seconds")?;
    let suspect_after = seconds(arguments.suspect_after_seconds, "suspect-after-seconds")?;
    anyhow::ensure!(
        suspect_after <= down_after,
        "--suspect-after-seconds must not exceed --down-grace-seconds"
    );
    let lease_duration = seconds(arguments.lease_seconds, "lease-seconds")?;
    anyhow::ensure!(
        lease_duration >= Duration::from_secs(1),
        "--lease-seconds must be at least 1"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&arguments.io_budget_share),
        "--io-budget-share must be between 0 and 1"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&arguments.evacuate_risk_above),
        "--evacuate-risk-above must be between 0 and 1"
    );
    anyhow::ensure!(
        arguments.repair_per_node_max >= 1 && arguments.repair_in_flight_max >= 1,
        "repair concurrency limits must be at least 1"
    );
    let detector = DetectorConfig {
        suspect_after_ms: suspect_after.as_millis() as u64,
        down_after_ms: down_after.as_millis() as u64,
        // Flapping nodes get up to 8 times the grace.
        down_after_ms_max: 8 * down_after.as_millis() as u64,
        flap_window_ms: DetectorConfig::production().flap_window_ms,
    };
    let bandwidth = arguments
        .cluster_bandwidth_bytes_per_second
        .unwrap_or(DEFAULT_CLUSTER_BANDWIDTH_BYTES_PER_SECOND);
    let policy = PolicyConfig {
        change_dwell_ms: seconds(arguments.change_dwell_seconds, "change-dwell-seconds")?
            .as_millis() as u64,
        ..PolicyConfig::default()
    };
    let heat = HeatConfig {
        half_life_ms: seconds(arguments.heat_half_life_seconds, "heat-half-life-seconds")?
            .as_millis()
            .max(1) as u64,
        ..HeatConfig::default()
    };
    let holder = format!(
        "controller-{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 4]>())
    );
    let config = ServiceConfig {
        meta_addresses: arguments.meta,
        keys,
        layout_poll_interval,
        auto_apply_announced: arguments.auto_apply_announced,
        listen: arguments.listen,
        port: arguments
            .server
            .port(shardlet_net::ServerLimits::default(), tls)?,
        transport: tls.transport()?,
        holder: holder.clone(),
        lease_duration,
        detector,
        probe_interval: seconds(arguments.probe_interval_seconds, "probe-interval-seconds")?
            .max(Duration::from_millis(50)),
        repair_interval: seconds(arguments.repair_interval_seconds, "repair-interval-seconds")?
            .max(Duration::from_millis(50)),
        scheduler: SchedulerConfig {
            per_node_max: arguments.repair_per_node_max,
            in_flight_max: arguments.repair_in_flight_max,
        },
        scrub_interval: optional_interval(
            arguments.scrub_interval_seconds,
            "scrub-interval-seconds",
        )?,
        scrub_bytes_per_second: arguments.scrub_bytes_per_second,
        transition_interval: optional_interval(
            arguments.transition_interval_seconds,
            "transition-interval-seconds",
        )?,
        rebalance_interval: optional_interval(
            arguments.rebalance_interval_seconds,
            "rebalance-interval-seconds",
        )?,
        policy,
        heat,
        budget_bytes_per_second: bandwidth * arguments.io_budget_share,
        predictor_url: arguments.predictor_url,
        evacuate_risk: (arguments.evacuate_risk_above > 0.0)
            .then_some(arguments.evacuate_risk_above),
    };
    let controller_tls = config.port.tls.is_some();
    let controller = RunningController::start(config).await?;
    // Parents (`shardlet dev`, tests) read this line to learn the bound port.
    let scheme = if controller_tls { "https" } else { "http" };
    say!(
        "shardlet controller listening on {scheme}://{}",
        controller.address
    );
    tracing::info!(address = %controller.address, %holder, "controller started");
    controller
        .serve_until(shardlet_node::shutdown_signal())
        .await;
    tracing::info!("controller stopped");
    Ok(())
}
