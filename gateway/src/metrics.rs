//! The gateway's Prometheus metrics, in one registry served at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    /// `shardlet_build_info` and the `process_*` metrics, rendered after the others.
    process: shardlet_net::ProcessMetrics,
    /// S3 requests by operation and outcome (`ok` or the S3 error code).
    pub requests_total: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub degraded_reads_total: IntCounterVec,
    pub written_bytes_total: IntCounter,
    pub read_bytes_total: IntCounter,
    pub shardlets_written_total: IntCounter,
    pub fragment_write_retries_total: IntCounter,
    pub shardlets_in_flight: IntGauge,
    pub heat_reports_dropped_total: IntCounter,
    pub heat_flushes_total: IntCounterVec,
    pub gc_collected_total: IntCounterVec,
    /// Intent collections that failed (the intent is parked and retried later).
    pub gc_failures_total: IntCounter,
    /// Intents parked after failing, waiting for their backoff to pass.
    pub gc_parked_intents: IntGauge,
    /// Sweeps, by how they ended (`page`: more intents follow, the next sweep goes on
    /// from there; `wrapped`: the last intent was reached, the next starts over).
    pub gc_sweeps_total: IntCounterVec,
    /// The upload deadline this gateway enforces (from the cluster settings).
    pub upload_deadline_seconds: IntGauge,
    /// Uploads refused for their deadline, by where (`body`: still receiving,
    /// `body_stalled`: no body bytes for the idle limit, `commit`: before the commit).
    pub upload_deadline_refusals_total: IntCounterVec,
    /// Document bodies (not object data) cut for time, by which limit (`idle`,
    /// `total`); see [`crate::request_body`].
    pub request_body_timeouts_total: IntCounterVec,
    /// Failed reads of the cluster settings (the last copy stays in force).
    pub settings_refresh_failures_total: IntCounter,
    /// The cluster layout version this gateway places under (0: none read yet).
    pub layout_version: IntGauge,
    /// Layout refreshes that failed (the last topology stays in use).
    pub layout_refresh_failures_total: IntCounter,
    pub credential_cache_total: IntCounterVec,
    /// Requests refused by authorization, by S3 operation.
    pub access_denied_total: IntCounterVec,
    /// Bucket reads the write path served from its short-lived cache (`hit`) or from
    /// metadata (`miss`).
    pub bucket_cache_total: IntCounterVec,
}

/// S3 operations whose request series exist from the start (the ones the dashboard
/// draws); other operations appear with their first request.
const DASHBOARD_OPERATIONS: [&str; 6] = [
    "PutObject",
    "GetObject",
    "HeadObject",
    "DeleteObject",
    "ListObjectsV2",
    "CompleteMultipartUpload",
];

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).unwrap_or_else(|_| unreachable_metric(name));
    let _ = registry.register(Box::new(counter.clone()));
    counter
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|_| unreachable_metric(name));
    let _ = registry.register(Box::new(counter.clone()));
    counter
}

/// Metric definitions are constants of this file; an invalid one is a programmer error
/// caught by the first unit test that builds `Metrics`.
#[allow(clippy::panic)]
fn unreachable_metric(name: &str) -> ! {
    panic!("invalid metric definition {name}")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "shardlet_gateway_request_seconds",
                "S3 request latency by operation (until the response head is sent)",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["operation"],
        )
        .unwrap_or_else(|_| unreachable_metric("shardlet_gateway_request_seconds"));
        let _ = registry.register(Box::new(request_seconds.clone()));
        let shardlets_in_flight = IntGauge::new(
            "shardlet_gateway_shardlets_in_flight",
            "Shardlets buffered for writing (bounded per upload by SHARDLETS_IN_FLIGHT_MAX)",
        )
        .unwrap_or_else(|_| unreachable_metric("shardlet_gateway_shardlets_in_flight"));
        let _ = registry.register(Box::new(shardlets_in_flight.clone()));
        let gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help).unwrap_or_else(|_| unreachable_metric(name));
            let _ = registry.register(Box::new(gauge.clone()));
            gauge
        };
        let gc_parked_intents = gauge(
            "shardlet_gateway_gc_parked_intents",
            "Intents whose collection keeps failing, retried after a capped backoff",
        );
        let upload_deadline_seconds = gauge(
            "shardlet_gateway_upload_deadline_seconds",
            "The cluster's upload deadline as this gateway enforces it",
        );
        let layout_version = gauge(
            "shardlet_gateway_layout_version",
            "The cluster layout version this gateway places new fragments under (0: none read yet)",
        );
        let metrics = Self {
            layout_version,
            layout_refresh_failures_total: counter(
                &registry,
                "shardlet_gateway_layout_refresh_failures_total",
                "Layout refreshes that failed (the last topology stays in use)",
            ),
            requests_total: counter_vec(
                &registry,
                "shardlet_gateway_requests_total",
                "S3 requests by operation and outcome",
                &["operation", "outcome"],
            ),
            request_seconds,
            degraded_reads_total: counter_vec(
                &registry,
                "shardlet_gateway_degraded_reads_total",
                "Reads that fell back to another replica or reconstruction, by reason",
                &["reason"],
            ),
            written_bytes_total: counter(
                &registry,
                "shardlet_gateway_written_bytes_total",
                "Object bytes accepted from clients",
            ),
            read_bytes_total: counter(
                &registry,
                "shardlet_gateway_read_bytes_total",
                "Object bytes sent to clients",
            ),
            shardlets_written_total: counter(
                &registry,
                "shardlet_gateway_shardlets_written_total",
                "Shardlets whose fragments are all durable",
            ),
            fragment_write_retries_total: counter(
                &registry,
                "shardlet_gateway_fragment_write_retries_total",
                "Fragment writes retried on a replacement node",
            ),
            shardlets_in_flight,
            heat_reports_dropped_total: counter(
                &registry,
                "shardlet_gateway_heat_reports_dropped_total",
                "Access reports dropped because the heat queue was full",
            ),
            heat_flushes_total: counter_vec(
                &registry,
                "shardlet_gateway_heat_flushes_total",
                "Heat flushes to the metadata service by outcome",
                &["outcome"],
            ),
            gc_collected_total: counter_vec(
                &registry,
                "shardlet_gateway_gc_collected_total",
                "Upload intents collected, by state (uploading = abandoned, garbage)",
                &["state"],
            ),
            gc_failures_total: counter(
                &registry,
                "shardlet_gateway_gc_failures_total",
                "Intent collections that failed (the intent is parked, then retried)",
            ),
            gc_parked_intents,
            gc_sweeps_total: counter_vec(
                &registry,
                "shardlet_gateway_gc_sweeps_total",
                "GC sweeps by how they ended (page: more follow; wrapped: started over)",
                &["end"],
            ),
            upload_deadline_seconds,
            upload_deadline_refusals_total: counter_vec(
                &registry,
                "shardlet_gateway_upload_deadline_refusals_total",
                "Uploads refused for the upload deadline, by where (body, body_stalled, commit)",
                &["at"],
            ),
            request_body_timeouts_total: counter_vec(
                &registry,
                "shardlet_gateway_request_body_timeouts_total",
                "Document request bodies (not object data) cut for time, by limit (idle, total)",
                &["limit"],
            ),
            settings_refresh_failures_total: counter(
                &registry,
                "shardlet_gateway_settings_refresh_failures_total",
                "Failed reads of the cluster settings (the last copy stays in force)",
            ),
            credential_cache_total: counter_vec(
                &registry,
                "shardlet_gateway_credential_cache_total",
                "Credential lookups by outcome (hit, miss, unknown)",
                &["outcome"],
            ),
            access_denied_total: counter_vec(
                &registry,
                "shardlet_gateway_access_denied_total",
                "S3 requests refused with AccessDenied, by operation",
                &["operation"],
            ),
            bucket_cache_total: counter_vec(
                &registry,
                "shardlet_gateway_bucket_cache_total",
                "Write-path bucket lookups by outcome (hit, miss)",
                &["outcome"],
            ),
            process: shardlet_net::ProcessMetrics::new("gateway")
                .unwrap_or_else(|_| unreachable_metric("shardlet_build_info")),
            registry,
        };
        metrics.export_zeros();
        metrics
    }

    /// Label values a dashboard or alert selects, present at 0 from the start: a
    /// `rate()` over a series that does not exist yet is "no data", not 0.
    fn export_zeros(&self) {
        for operation in DASHBOARD_OPERATIONS {
            self.requests_total.with_label_values(&[operation, "ok"]);
            self.request_seconds.with_label_values(&[operation]);
            self.access_denied_total.with_label_values(&[operation]);
        }
        for reason in ["missing", "checksum", "unavailable", "timeout", "error"] {
            self.degraded_reads_total.with_label_values(&[reason]);
        }
        for outcome in ["hit", "miss", "unknown"] {
            self.credential_cache_total.with_label_values(&[outcome]);
        }
        for outcome in ["hit", "miss"] {
            self.bucket_cache_total.with_label_values(&[outcome]);
        }
        for state in ["uploading", "garbage"] {
            self.gc_collected_total.with_label_values(&[state]);
        }
        for at in ["body", "body_stalled", "commit"] {
            self.upload_deadline_refusals_total.with_label_values(&[at]);
        }
        for limit in ["idle", "total"] {
            self.request_body_timeouts_total.with_label_values(&[limit]);
        }
    }

    pub fn render(&self) -> Vec<u8> {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        let families = shardlet_net::process_metrics::gather(&self.registry, &self.process);
        if let Err(error) = encoder.encode(&families, &mut buffer) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_registered_and_rendered() {
        let metrics = Metrics::new();
        metrics
            .degraded_reads_total
            .with_label_values(&["timeout"])
            .inc();
        metrics
            .requests_total
            .with_label_values(&["GetObject", "ok"])
            .inc();
        metrics
            .request_seconds
            .with_label_values(&["GetObject"])
            .observe(0.01);
        metrics.bucket_cache_total.with_label_values(&["hit"]).inc();
        let text = String::from_utf8(metrics.render()).unwrap_or_default();
        for name in [
            "shardlet_gateway_degraded_reads_total{reason=\"timeout\"} 1",
            "shardlet_gateway_requests_total",
            "shardlet_gateway_written_bytes_total 0",
            "shardlet_gateway_read_bytes_total 0",
            "shardlet_gateway_heat_reports_dropped_total",
            "shardlet_gateway_shardlets_in_flight",
            "shardlet_gateway_bucket_cache_total{outcome=\"hit\"} 1",
            "shardlet_gateway_gc_parked_intents 0",
            "shardlet_gateway_upload_deadline_seconds 0",
            "shardlet_gateway_gc_failures_total 0",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
