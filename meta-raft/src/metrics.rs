//! Prometheus metrics of one member. Each member owns its registry (tests run several
//! members in one process), exported at `GET /metrics`.

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use crate::types::MemberId;

/// What raft reports about one member at one instant, for the gauges below.
#[derive(Debug, Clone, Default)]
pub struct RaftGauges {
    pub is_leader: bool,
    pub term: u64,
    pub last_log_index: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub voters: usize,
    pub learners: usize,
    /// On the leader: per other member, entries of the leader's log not yet matched.
    pub follower_lag_entries: Vec<(MemberId, u64)>,
    pub ready: bool,
    /// This member knows a current leader (itself or another).
    pub has_leader: bool,
}

/// Gauges hold `i64`; raft indexes are `u64` and never come near `i64::MAX`.
fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

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
    pub raft_is_leader: IntGauge,
    pub raft_term: IntGauge,
    pub raft_last_log_index: IntGauge,
    pub raft_committed_index: IntGauge,
    pub raft_applied_index: IntGauge,
    pub raft_members: IntGaugeVec,
    pub raft_follower_lag_entries: IntGaugeVec,
    /// 1 while this member knows a current leader; 0 on every member: quorum lost.
    pub raft_has_leader: IntGauge,
    /// Leaders this member has seen take office ([`crate::leader_watch`]).
    pub raft_leader_changes_total: IntCounter,
    pub ready: IntGauge,
    /// `shardlet_build_info` and the `process_*` metrics: outside `registry`, whose
    /// prefix and `member` label would rename them.
    process: shardlet_net::ProcessMetrics,
}

impl MetaMetrics {
    pub fn new(member_id: MemberId) -> anyhow::Result<Self> {
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
            raft_is_leader: IntGauge::new("raft_is_leader", "1 while this member is the leader")?,
            raft_term: IntGauge::new("raft_term", "the raft term this member is in")?,
            raft_last_log_index: IntGauge::new(
                "raft_last_log_index",
                "the last index of this member's raft log",
            )?,
            raft_committed_index: IntGauge::new(
                "raft_committed_index",
                "the highest log index this member knows to be committed",
            )?,
            raft_applied_index: IntGauge::new(
                "raft_applied_index",
                "the highest log index applied to this member's state machine",
            )?,
            raft_members: IntGaugeVec::new(
                Opts::new(
                    "raft_members",
                    "members of the configuration this member holds, by role (voter, learner)",
                ),
                &["role"],
            )?,
            raft_follower_lag_entries: IntGaugeVec::new(
                Opts::new(
                    "raft_follower_lag_entries",
                    "on the leader: entries of its log each other member has not matched yet",
                ),
                &["follower"],
            )?,
            raft_has_leader: IntGauge::new(
                "raft_has_leader",
                "1 while this member knows a current leader (0 on every member: quorum lost)",
            )?,
            raft_leader_changes_total: IntCounter::new(
                "raft_leader_changes_total",
                "leaders this member has seen take office (a new leader, or the same one in a new term)",
            )?,
            ready: IntGauge::new("ready", "1 while /ready answers 200 (leader known, caught up)")?,
            process: shardlet_net::ProcessMetrics::new("meta")?,
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
        registry.register(Box::new(self.raft_is_leader.clone()))?;
        registry.register(Box::new(self.raft_term.clone()))?;
        registry.register(Box::new(self.raft_last_log_index.clone()))?;
        registry.register(Box::new(self.raft_committed_index.clone()))?;
        registry.register(Box::new(self.raft_applied_index.clone()))?;
        registry.register(Box::new(self.raft_members.clone()))?;
        registry.register(Box::new(self.raft_follower_lag_entries.clone()))?;
        registry.register(Box::new(self.raft_has_leader.clone()))?;
        registry.register(Box::new(self.raft_leader_changes_total.clone()))?;
        registry.register(Box::new(self.ready.clone()))?;
        Ok(())
    }

    /// Sets the raft gauges. Lag series of members that are no longer followed (this
    /// member lost the leadership, or they were removed) disappear.
    pub fn record_raft(&self, gauges: &RaftGauges) {
        self.raft_is_leader.set(i64::from(gauges.is_leader));
        self.raft_term.set(gauge_value(gauges.term));
        self.raft_last_log_index
            .set(gauge_value(gauges.last_log_index));
        self.raft_committed_index
            .set(gauge_value(gauges.committed_index));
        self.raft_applied_index
            .set(gauge_value(gauges.applied_index));
        self.raft_members
            .with_label_values(&["voter"])
            .set(gauge_value(gauges.voters as u64));
        self.raft_members
            .with_label_values(&["learner"])
            .set(gauge_value(gauges.learners as u64));
        self.raft_follower_lag_entries.reset();
        for (follower, lag) in &gauges.follower_lag_entries {
            self.raft_follower_lag_entries
                .with_label_values(&[&follower.to_string()])
                .set(gauge_value(*lag));
        }
        self.raft_has_leader.set(i64::from(gauges.has_leader));
        self.ready.set(i64::from(gauges.ready));
    }

    /// The text exposition format Prometheus scrapes.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&shardlet_net::process_metrics::gather(
                &self.registry,
                &self.process,
            ))
            .unwrap_or_else(|error| format!("# metrics encoding failed: {error}\n"))
    }
}
