//! Prometheus metrics of one storage node, in a registry of its own (so several nodes
//! can live in one test process). Names follow Prometheus conventions: `_total` for
//! counters, base units (`_seconds`, `_bytes`) last.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct NodeMetrics {
    registry: Registry,
    /// Requests by operation (`put`, `get`, `head`, `delete`, `list`, …) and status code.
    pub requests_total: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub received_bytes_total: IntCounter,
    pub sent_bytes_total: IntCounter,
    /// fsync latency by kind: `file` (fdatasync of a fragment) or `directory`.
    pub fsync_seconds: HistogramVec,
    pub fsync_failures_total: IntCounter,
    /// 1 once a failed fsync made the node refuse writes (until it restarts).
    pub writes_refused: IntGauge,
    pub checksum_failures_total: IntCounter,
    pub read_errors_total: IntCounter,
    pub write_errors_total: IntCounter,
    /// How many writes one directory fsync acknowledged.
    pub group_commit_batch_size: Histogram,
    pub stored_fragments: IntGauge,
    pub stored_fragment_bytes: IntGauge,
    pub disk_capacity_bytes: IntGauge,
    pub disk_free_bytes: IntGauge,
    pub insufficient_storage_total: IntCounter,
    /// The port's connections (`shardlet_node_connections_…`, see `shardlet-net`).
    pub server: shardlet_net::ServerMetrics,
    /// Requests refused by authentication, by reason (`AuthError::reason`).
    pub auth_refused_total: IntCounterVec,
    /// Nonces remembered for replay refusal (capped by `replay_cache_entries_max`).
    pub replay_cache_entries: IntGauge,
    /// `shardlet_node_info{node,zone,region}` = 1, set once the node knows its
    /// configuration ([`NodeMetrics::set_info`]).
    pub node_info: IntGaugeVec,
    /// `shardlet_build_info` and the `process_*` metrics.
    process: shardlet_net::ProcessMetrics,
}

fn latency_buckets() -> Vec<f64> {
    // 50 µs .. ~13 s: fsyncs are 1–3 ms here, loopback requests tens of µs.
    prometheus::exponential_buckets(0.000_05, 2.0, 19).unwrap_or_default()
}

impl NodeMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests_total = IntCounterVec::new(
            Opts::new(
                "shardlet_node_requests_total",
                "HTTP requests by operation and status",
            ),
            &["operation", "status"],
        )?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "shardlet_node_request_duration_seconds",
                "Time from request to response headers, by operation",
            )
            .buckets(latency_buckets()),
            &["operation"],
        )?;
        let received_bytes_total = IntCounter::new(
            "shardlet_node_received_bytes_total",
            "Fragment payload bytes received by PUT",
        )?;
        let sent_bytes_total = IntCounter::new(
            "shardlet_node_sent_bytes_total",
            "Fragment payload bytes sent by GET",
        )?;
        let fsync_seconds = HistogramVec::new(
            HistogramOpts::new(
                "shardlet_node_fsync_duration_seconds",
                "fsync latency by kind",
            )
            .buckets(latency_buckets()),
            &["kind"],
        )?;
        let fsync_failures_total =
            IntCounter::new("shardlet_node_fsync_failures_total", "Failed fsyncs")?;
        let writes_refused = IntGauge::new(
            "shardlet_node_writes_refused",
            "1 once a failed fsync made this node refuse writes (until it restarts)",
        )?;
        let checksum_failures_total = IntCounter::new(
            "shardlet_node_checksum_failures_total",
            "Stored fragments that failed checksum verification on read",
        )?;
        let read_errors_total = IntCounter::new(
            "shardlet_node_read_errors_total",
            "I/O errors while reading",
        )?;
        let write_errors_total = IntCounter::new(
            "shardlet_node_write_errors_total",
            "I/O errors while writing",
        )?;
        let group_commit_batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "shardlet_node_group_commit_batch_size",
                "Writes acknowledged by one directory fsync",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )?;
        let stored_fragments =
            IntGauge::new("shardlet_node_stored_fragments", "Fragments on this node")?;
        let stored_fragment_bytes = IntGauge::new(
            "shardlet_node_stored_fragment_bytes",
            "Payload bytes of the fragments on this node",
        )?;
        let disk_capacity_bytes = IntGauge::new(
            "shardlet_node_disk_capacity_bytes",
            "Size of the data directory's filesystem",
        )?;
        let disk_free_bytes = IntGauge::new(
            "shardlet_node_disk_free_bytes",
            "Bytes available to the node on the data directory's filesystem",
        )?;
        let insufficient_storage_total = IntCounter::new(
            "shardlet_node_insufficient_storage_total",
            "PUTs refused because free space would fall below the reserve",
        )?;
        let auth_refused_total = IntCounterVec::new(
            Opts::new(
                "shardlet_node_auth_refused_total",
                "Requests refused by signature verification, by reason",
            ),
            &["reason"],
        )?;
        let replay_cache_entries = IntGauge::new(
            "shardlet_node_replay_cache_entries",
            "Nonces of accepted requests remembered to refuse replays",
        )?;
        registry.register(Box::new(auth_refused_total.clone()))?;
        registry.register(Box::new(replay_cache_entries.clone()))?;
        registry.register(Box::new(requests_total.clone()))?;
        registry.register(Box::new(request_seconds.clone()))?;
        registry.register(Box::new(received_bytes_total.clone()))?;
        registry.register(Box::new(sent_bytes_total.clone()))?;
        registry.register(Box::new(fsync_seconds.clone()))?;
        registry.register(Box::new(fsync_failures_total.clone()))?;
        registry.register(Box::new(writes_refused.clone()))?;
        registry.register(Box::new(checksum_failures_total.clone()))?;
        registry.register(Box::new(read_errors_total.clone()))?;
        registry.register(Box::new(write_errors_total.clone()))?;
        registry.register(Box::new(group_commit_batch_size.clone()))?;
        registry.register(Box::new(stored_fragments.clone()))?;
        registry.register(Box::new(stored_fragment_bytes.clone()))?;
        let node_info = IntGaugeVec::new(
            Opts::new(
                "shardlet_node_info",
                "1 for this node's name, zone and region (empty when the node was not told them: they are in the cluster layout)",
            ),
            &["node", "zone", "region"],
        )?;
        registry.register(Box::new(node_info.clone()))?;
        registry.register(Box::new(disk_capacity_bytes.clone()))?;
        registry.register(Box::new(disk_free_bytes.clone()))?;
        registry.register(Box::new(insufficient_storage_total.clone()))?;
        let server = shardlet_net::ServerMetrics::register(&registry, "shardlet_node")?;
        Ok(Self {
            server,
            registry,
            requests_total,
            request_seconds,
            received_bytes_total,
            sent_bytes_total,
            fsync_seconds,
            fsync_failures_total,
            writes_refused,
            checksum_failures_total,
            read_errors_total,
            write_errors_total,
            group_commit_batch_size,
            stored_fragments,
            stored_fragment_bytes,
            disk_capacity_bytes,
            disk_free_bytes,
            insufficient_storage_total,
            auth_refused_total,
            replay_cache_entries,
            node_info,
            process: shardlet_net::ProcessMetrics::new("node")?,
        })
    }

    /// Sets `shardlet_node_info` (once, when the node starts).
    pub fn set_info(&self, node: &str, zone: &str, region: &str) {
        self.node_info.reset();
        self.node_info
            .with_label_values(&[node, zone, region])
            .set(1);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::with_capacity(16 * 1024);
        let families = shardlet_net::process_metrics::gather(&self.registry, &self.process);
        TextEncoder::new().encode(&families, &mut buffer)?;
        String::from_utf8(buffer).map_err(|error| prometheus::Error::Msg(error.to_string()))
    }
}
