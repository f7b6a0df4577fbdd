//! The controller's Prometheus metrics (`shardlet_controller_*`), one registry per
//! process, served on `/metrics`.

use prometheus::{
    Encoder, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
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
    pub node_transitions_total: IntCounterVec,
    pub probes_failed_total: IntCounter,
    pub repairs_queued: IntGauge,
    pub repairs_done_total: IntCounter,
    pub repairs_failed_total: IntCounter,
    /// Shardlets whose committed layout has a lost fragment, at the last repair pass.
    pub shardlets_below_target: IntGauge,
    pub unrecoverable_shardlets: IntGauge,
    pub repair_bytes_moved_total: IntCounter,
    pub evacuations_done_total: IntCounter,
    pub scrub_passes_total: IntCounter,
    pub scrub_fragments_verified_total: IntCounter,
    pub scrub_bytes_verified_total: IntCounter,
    /// Findings of the scrub by kind (`missing`, `corrupt`, `stale`, `orphan`).
    pub scrub_findings_total: IntCounterVec,
    pub fragments_deleted_total: IntCounter,
    pub transitions_done_total: IntCounterVec,
    pub transitions_failed_total: IntCounter,
    pub transition_bytes_moved_total: IntCounter,
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
    pub rebalance_bytes_moved: IntGauge,
    /// What the last rebalance pass planned and had not moved yet.
    pub rebalance_shardlets_remaining: IntGauge,
    pub rebalance_bytes_remaining: IntGauge,
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
        Ok(Self {
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
            repair_bytes_moved_total: counter(
                "repair_bytes_moved_total",
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
            scrub_bytes_verified_total: counter(
                "scrub_bytes_verified_total",
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
            transitions_done_total: counter_vec(
                "transitions_done_total",
                "Layout transitions committed, by new scheme kind",
                &["to"],
            )?,
            transitions_failed_total: counter(
                "transitions_failed_total",
                "Layout transitions that failed",
            )?,
            transition_bytes_moved_total: counter(
                "transition_bytes_moved_total",
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
            rebalance_bytes_moved: gauge(
                "rebalance_bytes_moved",
                "Bytes copied since the rebalance towards the current layout started",
            )?,
            rebalance_shardlets_remaining: gauge(
                "rebalance_shardlets_remaining",
                "Shardlets the last rebalance pass planned to move and has not moved",
            )?,
            rebalance_bytes_remaining: gauge(
                "rebalance_bytes_remaining",
                "Bytes the last rebalance pass planned to move and has not moved",
            )?,
            rebalance_moves_total: counter_vec(
                "rebalance_moves_total",
                "Rebalance moves by outcome (committed, conflict, failed)",
                &["outcome"],
            )?,
            registry,
        })
    }

    /// Where other parts of the daemon register their metrics (the HTTP port's).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "cannot encode metrics");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }
}
