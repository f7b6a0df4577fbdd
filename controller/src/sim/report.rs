//! What a run measured, and its machine-readable last line.

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub seed: u64,
    pub nodes: u32,
    pub days: u32,
    pub sample_shardlets: u32,
    /// Real shardlets each simulated one stands for.
    pub scale: f64,
    /// Time-averaged bytes stored per byte of user data.
    pub storage_overhead: f64,
    pub data_loss_events: u64,
    /// Share of shardlet-time spent with at least one fragment unreadable.
    pub degraded_time_share: f64,
    /// Background (transition and evacuation) bytes per hour over cluster bandwidth.
    pub max_transition_io_share: f64,
    pub mean_transition_io_share: f64,
    pub repair_hours: Vec<f64>,
    pub node_failures_permanent: u64,
    pub node_failures_transient: u64,
    pub nodes_declared_down: u64,
    pub transitions: u64,
    pub evacuations: u64,
    pub repairs_cancelled: u64,
    /// Most planned repairs ever waiting for the scheduler's per-node or total slots.
    pub repairs_waiting_max: u64,
    /// Plans whose replay found a moment below the committed layout (must be 0).
    pub durability_violations: u64,
    pub placement_failures: u64,
    pub events: u64,
}

impl Report {
    pub fn repair_hours_percentile(&self, percentile: f64) -> f64 {
        if self.repair_hours.is_empty() {
            return 0.0;
        }
        let mut sorted = self.repair_hours.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((percentile / 100.0) * (sorted.len() - 1) as f64).round() as usize;
        sorted[rank.min(sorted.len() - 1)]
    }

    /// Human-readable summary lines (everything but the last line).
    pub fn summary(&self) -> String {
        format!(
            "simulated {} nodes for {} days; {} sample shardlets, each standing for {:.0} real ones\n\
             storage overhead {:.3}x user bytes ({:.3} of 3 replicas, {:.3} of RS(8,4))\n\
             node failures: {} permanent, {} transient, {} declared down\n\
             data-loss events (sampled shardlets): {}\n\
             time degraded (any fragment unreadable): {:.5} of shardlet-time\n\
             repairs: {} committed, {} cancelled (node came back); hours p50 {:.2} p99 {:.2} max {:.2}\n\
             transitions {}, evacuations {}; background I/O share of bandwidth: max hour {:.4}, mean {:.5}\n\
             plans replayed below their committed layout: {}; placement failures: {}; events: {}",
            self.nodes,
            self.days,
            self.sample_shardlets,
            self.scale,
            self.storage_overhead,
            self.storage_overhead / 3.0,
            self.storage_overhead / 1.5,
            self.node_failures_permanent,
            self.node_failures_transient,
            self.nodes_declared_down,
            self.data_loss_events,
            self.degraded_time_share,
            self.repair_hours.len(),
            self.repairs_cancelled,
            self.repair_hours_percentile(50.0),
            self.repair_hours_percentile(99.0),
            self.repair_hours_percentile(100.0),
            self.transitions,
            self.evacuations,
            self.max_transition_io_share,
            self.mean_transition_io_share,
            self.durability_violations,
            self.placement_failures,
            self.events,
        )
    }

    /// `key=value` pairs; deterministic for a seed (no wall-clock values).
    pub fn last_line(&self) -> String {
        format!(
            "seed={} nodes={} days={} sample_shardlets={} storage_overhead={:.4} \
             storage_overhead_vs_3x={:.4} storage_overhead_vs_rs_8_4={:.4} data_loss_events={} \
             degraded_time_share={:.6} max_transition_io_share={:.4} repairs={} \
             p50_repair_hours={:.3} p99_repair_hours={:.3} node_failures_permanent={} \
             nodes_declared_down={} transitions={} evacuations={} durability_violations={}",
            self.seed,
            self.nodes,
            self.days,
            self.sample_shardlets,
            self.storage_overhead,
            self.storage_overhead / 3.0,
            self.storage_overhead / 1.5,
            self.data_loss_events,
            self.degraded_time_share,
            self.max_transition_io_share,
            self.repair_hours.len(),
            self.repair_hours_percentile(50.0),
            self.repair_hours_percentile(99.0),
            self.node_failures_permanent,
            self.nodes_declared_down,
            self.transitions,
            self.evacuations,
            self.durability_violations,
        )
    }
}
