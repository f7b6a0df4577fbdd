//! Prometheus metrics of one member. Each member owns its registry (tests run several
//! members in one process), exported at `GET /metrics`.

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
};

pub struct MetaMetrics {
    pub registry: Registry,
    pub log_append_calls_total: IntCounter,
    pub log_entries_appended_total: IntCounter,
    pub log_append_sync_seconds: Histogram,
    pub log_wal_syncs_total: IntCounter,
    pub applied_batches_total: IntCounterVec,
    pub group_commit_batches_per_entry: Histogram,
    pub group_commit_queue_depth: IntGauge,
    pub http_requests_total: IntCounterVec,
    pub snapshots_built_total: IntCounter,
    pub snapshots_installed_total: IntCounter,
    /// Requests refused by authentication or authorisation, by reason.
    pub auth_refused_total: IntCounterVec,
    /// Nonces of accepted requests remembered to refuse replays.
    pub replay_cache_entries: IntGauge,
}

impl MetaMetrics {
    pub fn new(member_id: crate::types::MemberId) -> anyhow::Result<Self> {
        let labels = std::iter::once(("member".to_string(), member_id.to_string())).collect();
        let registry = Registry::new_custom(Some("shardlet_meta".to_string()), Some(labels))?;
        let metrics = MetaMetrics {
            log_append_calls_total: IntCounter::new(
                "log_append_calls_total",
                "raft log append calls; each is one RocksDB write batch, made durable by the next WAL sync",
            )?,
            log_entries_appended_total: IntCounter::new(
                "log_entries_appended_total",
                "raft log entries appended",
            )?,
            log_append_sync_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "log_append_sync_seconds",
                    "time of one raft log WAL fsync (covering every append queued before it)",
                )
                .buckets(exponential_buckets(0.000_1, 2.0, 16)?),
            )?,
            log_wal_syncs_total: IntCounter::new(
                "log_wal_syncs_total",
                "raft log WAL fsyncs; appends per sync = log_append_calls_total / this",
            )?,
            applied_batches_total: IntCounterVec::new(
                Opts::new(
                    "applied_batches_total",
                    "client batches applied, by outcome (applied, condition_failed)",
                ),
                &["outcome"],
            )?,
            group_commit_batches_per_entry: Histogram::with_opts(
                HistogramOpts::new(
                    "group_commit_batches_per_entry",
                    "client batches folded into one raft entry",
                )
                .buckets(exponential_buckets(1.0, 2.0, 10)?),
            )?,
            group_commit_queue_depth: IntGauge::new(
                "group_commit_queue_depth",
                "client batches waiting for the group-commit batcher",
            )?,
            http_requests_total: IntCounterVec::new(
                Opts::new("http_requests_total", "HTTP requests by route and status"),
                &["route", "status"],
            )?,
            snapshots_built_total: IntCounter::new(
                "snapshots_built_total",
                "state machine snapshots built",
            )?,
            snapshots_installed_total: IntCounter::new(
                "snapshots_installed_total",
                "snapshots received from a leader and installed",
            )?,
            auth_refused_total: IntCounterVec::new(
                Opts::new(
                    "auth_refused_total",
                    "requests refused by signature verification (by reason) or by route (forbidden)",
                ),
                &["reason"],
            )?,
            replay_cache_entries: IntGauge::new(
                "replay_cache_entries",
                "nonces of accepted requests remembered to refuse replays",
            )?,
            registry,
        };
        metrics.register()?;
        Ok(metrics)
    }

    fn register(&self) -> anyhow::Result<()> {
        let registry = &self.registry;
        registry.register(Box::new(self.log_append_calls_total.clone()))?;
        registry.register(Box::new(self.log_entries_appended_total.clone()))?;
        registry.register(Box::new(self.log_append_sync_seconds.clone()))?;
        registry.register(Box::new(self.log_wal_syncs_total.clone()))?;
        registry.register(Box::new(self.applied_batches_total.clone()))?;
        registry.register(Box::new(self.group_commit_batches_per_entry.clone()))?;
        registry.register(Box::new(self.group_commit_queue_depth.clone()))?;
        registry.register(Box::new(self.http_requests_total.clone()))?;
        registry.register(Box::new(self.snapshots_built_total.clone()))?;
        registry.register(Box::new(self.snapshots_installed_total.clone()))?;
        registry.register(Box::new(self.auth_refused_total.clone()))?;
        registry.register(Box::new(self.replay_cache_entries.clone()))?;
        Ok(())
    }

    /// The text exposition format Prometheus scrapes.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|error| format!("# metrics encoding failed: {error}\n"))
    }
}
