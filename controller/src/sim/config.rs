//! Simulator parameters, with the defaults documented in `docs/controller.md`.

use crate::detector::DetectorConfig;
use crate::policy::PolicyConfig;
use crate::scheduler::SchedulerConfig;

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: u32,
    pub regions: u32,
    pub zones_per_region: u32,
    pub days: u32,
    /// Shardlets simulated one by one; each stands for `scale` real ones.
    pub sample_shardlets: u32,
    pub shardlet_bytes: u64,
    pub node_capacity_bytes: u64,
    /// Share of raw capacity in use (sets the real data volume, hence `scale`).
    pub fill: f64,
    /// Per-node bandwidth is uniform in this range (bytes/s).
    pub node_bytes_per_second_min: f64,
    pub node_bytes_per_second_max: f64,
    /// Annual failure rate of each disk model; nodes are assigned models evenly.
    pub disk_model_afr: Vec<f64>,
    /// Share of disk failures that destroy data (the rest are a dead controller,
    /// PSU, kernel panic: the node comes back with its data).
    pub permanent_share: f64,
    /// Days until a dead disk is replaced by an empty one.
    pub replace_days: f64,
    /// Reboots and other transient outages per node per year.
    pub transient_per_node_year: f64,
    /// Share of transient outages that outlast the grace period (20 min – 12 h).
    pub long_transient_share: f64,
    /// Whole-zone outages per year across the cluster (5 – 90 min each).
    pub zone_outages_per_year: f64,
    /// Share of permanent failures the predictor flags ahead of time, and lead time.
    pub predictor_recall: f64,
    pub predictor_lead_days_max: f64,
    /// False alarms per node per year (each drains a healthy node for nothing).
    pub predictor_false_alarms_per_node_year: f64,
    /// Popularity changes per shardlet per year (heat churn).
    pub popularity_changes_per_year: f64,
    /// Zipf exponent and peak rate (accesses/hour at rank 1) of shardlet heat.
    pub zipf_exponent: f64,
    pub zipf_peak_per_hour: f64,
    pub zipf_ranks: f64,
    /// Level mix: shares of low and high (medium is the rest).
    pub low_share: f64,
    pub high_share: f64,
    /// Background I/O budget, share of cluster bandwidth.
    pub budget_share: f64,
    /// Per-node repair throughput (the scheduler's per-node limit times a stream).
    pub repair_bytes_per_second_per_node: f64,
    /// Concurrent repairs per node and in total among the sampled plans: the daemon's
    /// scheduler decides which queued plans start.
    pub scheduler: SchedulerConfig,
    pub detector: DetectorConfig,
    pub policy: PolicyConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            nodes: 10_000,
            regions: 3,
            zones_per_region: 3,
            days: 365,
            sample_shardlets: 100_000,
            shardlet_bytes: 2 << 20,
            node_capacity_bytes: 16_000_000_000_000,
            fill: 0.6,
            node_bytes_per_second_min: 150e6,
            node_bytes_per_second_max: 350e6,
            disk_model_afr: vec![0.005, 0.01, 0.02, 0.05],
            permanent_share: 0.5,
            replace_days: 3.0,
            transient_per_node_year: 1.0,
            long_transient_share: 0.15,
            zone_outages_per_year: 2.0,
            predictor_recall: 0.5,
            predictor_lead_days_max: 14.0,
            predictor_false_alarms_per_node_year: 0.005,
            popularity_changes_per_year: 12.0,
            zipf_exponent: 1.2,
            zipf_peak_per_hour: 2e4,
            zipf_ranks: 1e5,
            low_share: 0.2,
            high_share: 0.2,
            budget_share: 0.05,
            repair_bytes_per_second_per_node: 25e6,
            scheduler: SchedulerConfig::default(),
            detector: DetectorConfig::production(),
            policy: PolicyConfig::default(),
        }
    }
}

impl SimConfig {
    /// A small, fast run for tests: 300 nodes, 60 days, a busier failure model.
    pub fn small(seed: u64) -> Self {
        Self {
            seed,
            nodes: 300,
            days: 60,
            sample_shardlets: 3_000,
            transient_per_node_year: 4.0,
            ..Self::default()
        }
    }
}
