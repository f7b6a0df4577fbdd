//! The failure predictor sidecar's client, as the controller uses it.
//!
//! Why not `shardlet-predictor`'s own client: a workspace build unifies that crate's
//! features, so depending on it would link libtorch into the `shardlet` binary that
//! every node and gateway runs. The wire format is small and versioned
//! (`schema_version`), so it is spoken here directly: `GET /health` tells the window
//! length, `POST /v1/score` takes one window of 18-feature rows per node (`null` where
//! a feature is unknown; see docs/predictor.md for the schema).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shardlet_core::NodeId;
use shardlet_node::health::HealthReport;

/// The schema version this client speaks.
const SCHEMA_VERSION: u32 = 1;
const FEATURE_COUNT: usize = 18;
/// Longest window accepted from the sidecar's `/health` (bounds our memory).
const WINDOW_INTERVALS_MAX: usize = 1_000;
/// Largest response read.
const RESPONSE_BYTES_MAX: usize = 1 << 20;

/// Feature positions (the predictor's `schema::index`).
mod index {
    pub const CPU_UTILIZATION: usize = 0;
    pub const MEMORY_UTILIZATION: usize = 1;
    pub const DISK_IO_UTILIZATION: usize = 2;
    pub const DISK_READ_LATENCY_MS: usize = 3;
    pub const DISK_WRITE_LATENCY_MS: usize = 4;
    pub const READ_ERRORS: usize = 5;
    pub const WRITE_ERRORS: usize = 6;
    pub const CHECKSUM_FAILURES: usize = 7;
    pub const FSYNC_FAILURES: usize = 8;
}

pub type Row = [Option<f64>; FEATURE_COUNT];

#[derive(Serialize)]
struct ScoreRequest<'a> {
    schema_version: u32,
    windows: Vec<Window<'a>>,
}

#[derive(Serialize)]
struct Window<'a> {
    node_id: NodeId,
    intervals: &'a [Row],
}

#[derive(Deserialize)]
struct ScoreResponse {
    scores: Vec<Score>,
}

#[derive(Deserialize)]
struct Score {
    node_id: NodeId,
    failure_probability: f64,
}

#[derive(Deserialize)]
struct SidecarHealth {
    schema_version: u32,
    window_intervals: usize,
}

pub struct Predictor {
    http: reqwest::Client,
    base_url: String,
    window_intervals: Option<usize>,
}

impl Predictor {
    pub fn new(base_url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(200))
            .timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            window_intervals: None,
        })
    }

    /// Probabilities of failure per node, or an error when the sidecar cannot answer
    /// (the caller then uses the heuristic). Windows shorter than the model's are
    /// padded at the old end with unknown rows.
    pub async fn score(
        &mut self,
        history: &BTreeMap<NodeId, VecDeque<Row>>,
    ) -> anyhow::Result<BTreeMap<NodeId, f64>> {
        let intervals = match self.window_intervals {
            Some(intervals) => intervals,
            None => {
                let health: SidecarHealth = self.get_json("/health").await?;
                anyhow::ensure!(
                    health.schema_version == SCHEMA_VERSION,
                    "predictor speaks schema {}, we speak {SCHEMA_VERSION}",
                    health.schema_version
                );
                anyhow::ensure!(
                    (1..=WINDOW_INTERVALS_MAX).contains(&health.window_intervals),
                    "predictor window of {} intervals is out of range",
                    health.window_intervals
                );
                self.window_intervals = Some(health.window_intervals);
                health.window_intervals
            }
        };
        let windows: Vec<(NodeId, Vec<Row>)> = history
            .iter()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(node, rows)| {
                let mut window: Vec<Row> =
                    vec![[None; FEATURE_COUNT]; intervals.saturating_sub(rows.len())];
                window.extend(rows.iter().skip(rows.len().saturating_sub(intervals)));
                (*node, window)
            })
            .collect();
        if windows.is_empty() {
            return Ok(BTreeMap::new());
        }
        let request = ScoreRequest {
            schema_version: SCHEMA_VERSION,
            windows: windows
                .iter()
                .map(|(node, rows)| Window {
                    node_id: *node,
                    intervals: rows,
                })
                .collect(),
        };
        let response = self
            .http
            .post(format!("{}/v1/score", self.base_url))
            .json(&request)
            .send()
            .await?;
        if !response.status().is_success() {
            // A rejected window shape means the model changed: ask again next time.
            self.window_intervals = None;
            anyhow::bail!("predictor answered {}", response.status());
        }
        let bytes = read_limited(response).await?;
        let scores: ScoreResponse = serde_json::from_slice(&bytes)?;
        Ok(scores
            .scores
            .into_iter()
            .filter(|score| score.failure_probability.is_finite())
            .map(|score| (score.node_id, score.failure_probability.clamp(0.0, 1.0)))
            .collect())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "predictor answered {}",
            response.status()
        );
        Ok(serde_json::from_slice(&read_limited(response).await?)?)
    }
}

async fn read_limited(response: reqwest::Response) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        response.content_length().unwrap_or(0) <= RESPONSE_BYTES_MAX as u64,
        "predictor response too large"
    );
    let bytes = response.bytes().await?;
    anyhow::ensure!(
        bytes.len() <= RESPONSE_BYTES_MAX,
        "predictor response too large"
    );
    Ok(bytes.to_vec())
}

/// One row of the window from a node's `/health` sample (and the previous one, for
/// error counts per interval; a restart makes the totals the interval's count).
pub fn row_of(previous: Option<&HealthReport>, current: &HealthReport) -> Row {
    let mut row: Row = [None; FEATURE_COUNT];
    let unit = |value: f64| (value.is_finite() && (0.0..=1.0).contains(&value)).then_some(value);
    let non_negative = |value: f64| (value.is_finite() && value >= 0.0).then_some(value);
    row[index::CPU_UTILIZATION] = unit(current.cpu_utilization);
    if current.memory_total_bytes > 0 {
        row[index::MEMORY_UTILIZATION] =
            unit(current.memory_used_bytes as f64 / current.memory_total_bytes as f64);
    }
    row[index::DISK_IO_UTILIZATION] = unit(current.disk.io_utilization);
    row[index::DISK_READ_LATENCY_MS] = non_negative(current.disk.read_latency_ms);
    row[index::DISK_WRITE_LATENCY_MS] = non_negative(current.disk.write_latency_ms);
    if let Some(previous) = previous {
        let (now, before) = (&current.errors, &previous.errors);
        let restarted = current.uptime_seconds < previous.uptime_seconds
            || now.read_errors < before.read_errors
            || now.write_errors < before.write_errors
            || now.checksum_failures < before.checksum_failures
            || now.fsync_failures < before.fsync_failures;
        let delta = |now: u64, before: u64| Some(if restarted { now } else { now - before } as f64);
        row[index::READ_ERRORS] = delta(now.read_errors, before.read_errors);
        row[index::WRITE_ERRORS] = delta(now.write_errors, before.write_errors);
        row[index::CHECKSUM_FAILURES] = delta(now.checksum_failures, before.checksum_failures);
        row[index::FSYNC_FAILURES] = delta(now.fsync_failures, before.fsync_failures);
    }
    row
}
