//! The controller's Prometheus metrics (`shardlet_controller_*`), one registry per
//! process, served on `/metrics`.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::stock_metrics::StockMetrics;

/// The values of the `state` label of `nodes` and `node_info`.
pub const NODE_STATES: [&str; 5] = ["up", "suspect", "down", "draining", "decommissioned"];
/// The `kind` label of `scrub_findings_total`.
pub const SCRUB_FINDINGS: [&str; 4] = ["missing", "corrupt", "stale", "orphan"];
/// The `to` label of `transitions_total`.
pub const TRANSITION_TARGETS: [&str; 2] = ["erasure", "replicated"];

pub struct Metrics {
    registry: Registry,
    /// `shardlet_build_info` and `process_*`: outside `registry`, whose prefix would
    /// rename them.
    process: shardlet_net::ProcessMetrics,
    /// The scheme mix, bytes by scheme and level, MTTDL, per-bucket stocks.
    pub stocks: StockMetrics,
    /// 1 while this process holds the lease and acts.
    pub lease_active: IntGauge,
    pub lease_term: IntGauge,
    pub lease_acquisitions_total: IntCounter,
    /// `/v1/status` and `/v1/announce` requests refused by signature verification, by
    /// reason.
    pub auth_refused_total: IntCounterVec,
    /// Predictor answers refused: unsigned, or signed for another request.
    pub predictor_answers_refused_total: IntCounter,
    /// Storage nodes per state (`up`, `suspect`, `down`, `draining`, `decommissioned`).
    pub nodes: IntGaugeVec,
    /// 1 per node of the layout: `{node, zone, region, state}`.
    pub node_info: IntGaugeVec,
    /// Failure risk 0..1 per node, `{node, source}`.
    pub node_risk: GaugeVec,
    /// `--evacuate-risk-above` (0: predictive evacuation off).
    pub evacuate_risk_threshold: Gauge,
    pub node_transitions_total: IntCounterVec,
    pub probes_failed_total: IntCounter,
    pub repairs_queued: IntGauge,
    pub repairs_done_total: IntCounter,
    pub repairs_failed_total: IntCounter,
    /// Shardlets whose committed layout has a lost fragment, at the last repair pass.
    pub shardlets_below_target: IntGauge,
    pub unrecoverable_shardlets: IntGauge,
    pub repair_moved_bytes_total: IntCounter,
    /// One repair, from its start to its commit.
    pub repair_duration_seconds: Histogram,
    /// Age of the oldest shardlet waiting for repair (0: none).
    pub repair_backlog_oldest_seconds: Gauge,
    /// The background-work I/O budget in force (transitions and rebalance).
    pub io_budget_bytes_per_second: Gauge,
    pub evacuations_done_total: IntCounter,
    pub scrub_passes_total: IntCounter,
    pub scrub_fragments_verified_total: IntCounter,
    pub scrub_verified_bytes_total: IntCounter,
    /// Findings of the scrub by kind (`missing`, `corrupt`, `stale`, `orphan`).
    pub scrub_findings_total: IntCounterVec,
    pub fragments_deleted_total: IntCounter,
    /// Transitions by new scheme kind (`erasure`, `replicated`) and outcome (`done`,
    /// `failed`).
    pub transitions_total: IntCounterVec,
    pub transition_moved_bytes_total: IntCounter,
    pub commit_conflicts_total: IntCounter,
    /// 1 for the risk source in force (`predictor` or `heuristic`), 0 for the other.
    pub risk_source: IntGaugeVec,
    /// Completed passes of each background worker (`worker` label: its name).
    pub worker_passes_total: IntCounterVec,
    /// Passes that ended in an error (the worker runs again at its next pass).
    pub worker_errors_total: IntCounterVec,
    pub worker_last_pass_seconds: GaugeVec,
    /// When the worker's last pass succeeded; `time() - x` is the time since.
    pub worker_last_success_unix_seconds: IntGaugeVec,
    /// Shardlet records a pass could not decode (`worker` label), counted per pass.
    pub undecodable_records_total: IntCounterVec,
    /// Scrub passes whose deletions were withheld because the record scan was
    /// incomplete (truncated, or with undecodable records).
    pub scrub_deletions_withheld_total: IntCounter,
    /// The cluster's upload deadline as this controller last read it.
    pub upload_deadline_seconds: IntGauge,
    /// The orphan grace the scrub applies (derived from the deadline; 0 while the
    /// settings are not fresh enough to delete orphans at all).
    pub orphan_grace_seconds: IntGauge,
    /// Nodes whose `/health` says they stopped acknowledging writes (a failed fsync).
    pub nodes_refusing_writes: IntGauge,
    /// The cluster layout version this controller uses (0: none read yet).
    pub layout_version: IntGauge,
    /// Versions applied by `--auto-apply-announced`.
    pub layout_auto_applies_total: IntCounter,
    /// Announcements of storage nodes by outcome (`assigned`, `pending`, or the
    /// refusal's code: `unauthenticated`, `forbidden`, `malformed_body`, …).
    pub announcements_total: IntCounterVec,
    /// The layout version the rebalance moves data towards (0: none yet).
    pub rebalance_layout_version: IntGauge,
    /// Shardlets and bytes moved since the rebalance towards that version started.
    pub rebalance_shardlets_moved: IntGauge,
    pub rebalance_moved_bytes: IntGauge,
    /// Bytes moved by rebalance commits, ever (beside repair's and transitions').
    pub rebalance_moved_bytes_total: IntCounter,
    /// What the last rebalance pass planned and had not moved yet.
    pub rebalance_shardlets_remaining: IntGauge,
    pub rebalance_remaining_bytes: IntGauge,
    /// Moves by outcome (`committed`, `conflict`, `failed`).
    pub rebalance_moves_total: IntCounterVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("shardlet_controller".into()), None)?;
        let gauge = |name: &str, help: &str| -> prometheus::Result<IntGauge> {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let gauge = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok::<_, prometheus::Error>(gauge)
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let counter = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(counter.clone()))?;
            Ok::<_, prometheus::Error>(counter)
        };
        let float_gauge = |name: &str, help: &str| -> prometheus::Result<Gauge> {
            let gauge = Gauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let metrics = Self {
            process: shardlet_net::ProcessMetrics::new("controller")?,
            stocks: StockMetrics::register(&registry)?,
            node_info: gauge_vec(
                "node_info",
                "1 per storage node of the layout, with its zone, region and state",
                &["node", "zone", "region", "state"],
            )?,
            node_risk: {
                let gauge = GaugeVec::new(
                    Opts::new(
                        "node_risk",
                        "Failure risk 0..1 of each node and where it came from (predictor, heuristic)",
                    ),
                    &["node", "source"],
                )?;
                registry.register(Box::new(gauge.clone()))?;
                gauge
            },
            evacuate_risk_threshold: float_gauge(
                "evacuate_risk_threshold",
                "Risk at which a node is drained ahead of failure (--evacuate-risk-above; 0: off)",
            )?,
            repair_duration_seconds: {
                // 10 ms (a small fragment on loopback) to an hour (a large one behind a
                // saturated budget).
                let mut buckets = prometheus::exponential_buckets(0.01, 2.0, 19)?;
                buckets.push(3600.0);
                let histogram = Histogram::with_opts(
                    HistogramOpts::new(
                        "repair_duration_seconds",
                        "One shardlet repair or evacuation, from its start to its commit",
                    )
                    .buckets(buckets),
                )?;
                registry.register(Box::new(histogram.clone()))?;
                histogram
            },
            repair_backlog_oldest_seconds: float_gauge(
                "repair_backlog_oldest_seconds",
                "Age of the oldest shardlet waiting for repair, since this controller first found it (0: none)",
            )?,
            io_budget_bytes_per_second: float_gauge(
                "io_budget_bytes_per_second",
                "The I/O budget of background work (transitions, rebalance) in force",
            )?,
            rebalance_moved_bytes_total: counter(
                "rebalance_moved_bytes_total",
                "Bytes read plus written by committed rebalance moves",
            )?,
            layout_version: gauge(
                "layout_version",
                "The cluster layout version this controller uses (0: none read yet)",
            )?,
            layout_auto_applies_total: counter(
                "layout_auto_applies_total",
                "Layout versions applied by --auto-apply-announced",
            )?,
            announcements_total: counter_vec(
                "announcements_total",
                "Storage node announcements by outcome",
                &["outcome"],
            )?,
            lease_active: gauge("lease_active", "1 while this controller holds the lease")?,
            lease_term: gauge("lease_term", "Term of the lease this controller last held")?,
            lease_acquisitions_total: counter(
                "lease_acquisitions_total",
                "Times this controller took the lease",
            )?,
            auth_refused_total: counter_vec(
                "auth_refused_total",
                "Requests to /v1/status and /v1/announce refused by signature verification, by reason",
                &["reason"],
            )?,
            predictor_answers_refused_total: counter(
                "predictor_answers_refused_total",
                "Predictor answers whose response signature did not verify (the heuristic was used)",
            )?,
            nodes: gauge_vec("nodes", "Storage nodes by state", &["state"])?,
            node_transitions_total: counter_vec(
                "node_transitions_total",
                "Node state changes written to metadata",
                &["to"],
            )?,
            probes_failed_total: counter("probes_failed_total", "Health probes that failed")?,
            repairs_queued: gauge("repairs_queued", "Repair plans waiting or running")?,
            repairs_done_total: counter("repairs_done_total", "Shardlet repairs committed")?,
            repairs_failed_total: counter(
                "repairs_failed_total",
                "Shardlet repairs that failed (retried at the next pass)",
            )?,
            shardlets_below_target: gauge(
                "shardlets_below_target",
                "Shardlets with a lost fragment at the last repair pass",
            )?,
            unrecoverable_shardlets: gauge(
                "unrecoverable_shardlets",
                "Shardlets with fewer usable fragments than needed to read",
            )?,
            repair_moved_bytes_total: counter(
                "repair_moved_bytes_total",
                "Bytes read plus written by repairs",
            )?,
            evacuations_done_total: counter(
                "evacuations_done_total",
                "Fragments moved off draining nodes",
            )?,
            scrub_passes_total: counter("scrub_passes_total", "Completed scrub passes")?,
            scrub_fragments_verified_total: counter(
                "scrub_fragments_verified_total",
                "Fragments read back and checksummed by the scrub",
            )?,
            scrub_verified_bytes_total: counter(
                "scrub_verified_bytes_total",
                "Bytes read back and checksummed by the scrub",
            )?,
            scrub_findings_total: counter_vec(
                "scrub_findings_total",
                "Scrub findings by kind",
                &["kind"],
            )?,
            fragments_deleted_total: counter(
                "fragments_deleted_total",
                "Obsolete fragments deleted (stale, orphaned, replaced)",
            )?,
            transitions_total: counter_vec(
                "transitions_total",
                "Scheme transitions by new scheme kind (erasure, replicated) and outcome (done, failed)",
                &["to", "outcome"],
            )?,
            transition_moved_bytes_total: counter(
                "transition_moved_bytes_total",
                "Bytes read plus written by transitions",
            )?,
            commit_conflicts_total: counter(
                "commit_conflicts_total",
                "Layout commits refused because the record changed meanwhile",
            )?,
            risk_source: gauge_vec(
                "risk_source",
                "1 for the node risk source in force",
                &["source"],
            )?,
            worker_passes_total: counter_vec(
                "worker_passes_total",
                "Completed passes of each background worker",
                &["worker"],
            )?,
            worker_errors_total: counter_vec(
                "worker_errors_total",
                "Background worker passes that failed",
                &["worker"],
            )?,
            worker_last_pass_seconds: {
                let gauge = GaugeVec::new(
                    Opts::new(
                        "worker_last_pass_seconds",
                        "Duration of each worker's last pass",
                    ),
                    &["worker"],
                )?;
                registry.register(Box::new(gauge.clone()))?;
                gauge
            },
            worker_last_success_unix_seconds: gauge_vec(
                "worker_last_success_unix_seconds",
                "Unix time of each worker's last successful pass",
                &["worker"],
            )?,
            undecodable_records_total: counter_vec(
                "undecodable_records_total",
                "Metadata records a worker's pass could not decode",
                &["worker"],
            )?,
            scrub_deletions_withheld_total: counter(
                "scrub_deletions_withheld_total",
                "Scrub passes that deleted nothing because their record scan was incomplete",
            )?,
            upload_deadline_seconds: gauge(
                "upload_deadline_seconds",
                "The cluster's upload deadline as this controller last read it",
            )?,
            orphan_grace_seconds: gauge(
                "orphan_grace_seconds",
                "How long the scrub keeps an unreferenced fragment (0: settings too old to delete any)",
            )?,
            nodes_refusing_writes: gauge(
                "nodes_refusing_writes",
                "Nodes that stopped acknowledging writes after a failed fsync",
            )?,
            rebalance_layout_version: gauge(
                "rebalance_layout_version",
                "The layout version the rebalance moves data towards (0: none yet)",
            )?,
            rebalance_shardlets_moved: gauge(
                "rebalance_shardlets_moved",
                "Shardlets moved since the rebalance towards the current layout started",
            )?,
            rebalance_moved_bytes: gauge(
                "rebalance_moved_bytes",
                "Bytes copied since the rebalance towards the current layout started",
            )?,
            rebalance_shardlets_remaining: gauge(
                "rebalance_shardlets_remaining",
                "Shardlets the last rebalance pass planned to move and has not moved",
            )?,
            rebalance_remaining_bytes: gauge(
                "rebalance_remaining_bytes",
                "Bytes the last rebalance pass planned to move and has not moved",
            )?,
            rebalance_moves_total: counter_vec(
                "rebalance_moves_total",
                "Rebalance moves by outcome (committed, conflict, failed)",
                &["outcome"],
            )?,
            registry,
        };
        metrics.export_zeros();
        Ok(metrics)
    }

    /// Label values dashboards and alerts select, present from the start: a series that
    /// does not exist yet is "no data", which neither draws a 0 nor fires an alert.
    fn export_zeros(&self) {
        for state in NODE_STATES {
            self.nodes.with_label_values(&[state]);
            self.node_transitions_total.with_label_values(&[state]);
        }
        for kind in SCRUB_FINDINGS {
            self.scrub_findings_total.with_label_values(&[kind]);
        }
        for to in TRANSITION_TARGETS {
            for outcome in ["done", "failed"] {
                self.transitions_total.with_label_values(&[to, outcome]);
            }
        }
        for outcome in ["committed", "conflict", "failed"] {
            self.rebalance_moves_total.with_label_values(&[outcome]);
        }
        // Until the first risk update, no predictor has answered: the heuristic is in
        // force.
        self.risk_source.with_label_values(&["heuristic"]).set(1);
        self.risk_source.with_label_values(&["predictor"]).set(0);
    }

    /// Where other parts of the daemon register their metrics (the HTTP port's).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let families = shardlet_net::process_metrics::gather(&self.registry, &self.process);
        if let Err(error) = TextEncoder::new().encode(&families, &mut buffer) {
            tracing::error!(%error, "cannot encode metrics");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }
}
