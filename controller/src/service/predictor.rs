//! The controller's glue to the failure predictor: per-node windows of schema rows
//! built from the `/health` probes, and one scoring round against the sidecar.
//!
//! Everything the predictor defines (the schema, the `/health` → row mapping, the wire
//! types, the client and its limits) comes from `shardlet-predictor-api`, which never
//! links libtorch; what is here is only what the controller adds: which samples become
//! rows, how much history is kept, and padding windows to the model's length.
//!
//! One row per predictor round, not per probe: a row's interval is then the round's
//! (`PREDICTOR_INTERVAL` in detection), whatever the probe rate, and the window always
//! covers the time since the previous risk assessment, so no error counted by a node
//! between two assessments goes unseen by the heuristic.

use std::collections::{BTreeMap, VecDeque};

use shardlet_core::health_report::HealthReport;
use shardlet_core::NodeId;
use shardlet_net::Transport;
use shardlet_predictor_api::api::NodeWindow;
use shardlet_predictor_api::client::{ClientConfig, ClientError, PredictorClient};
use shardlet_predictor_api::health::to_schema_row;
use shardlet_predictor_api::schema::{FeatureValues, ALL_MISSING};

/// Rows of history kept per node (one per predictor round): bounds memory per node.
pub const HISTORY_ROWS_MAX: usize = 30;

#[derive(Debug, Default)]
struct NodeHistory {
    /// The node's latest `/health` answer since the last row, if it answered.
    latest: Option<HealthReport>,
    /// The answer the last row was built from: the start of the next row's interval,
    /// for error counts per interval.
    interval_start: Option<HealthReport>,
    rows: VecDeque<FeatureValues>,
}

/// Every node's recent health as schema rows, oldest first.
#[derive(Debug, Default)]
pub struct NodeWindows {
    nodes: BTreeMap<NodeId, NodeHistory>,
}

impl NodeWindows {
    /// Records a node's `/health` answer (at every probe; only the latest counts).
    pub fn observe(&mut self, node: NodeId, report: HealthReport) {
        let history = self.nodes.entry(node).or_default();
        history.latest = Some(report);
    }

    /// Ends an interval: every node that answered since the last one gets one row.
    /// A sample the mapping refuses (a node reporting nonsense, such as a CPU
    /// utilisation above 1) becomes an all-unknown row, never a wrong one.
    pub fn close_interval(&mut self) {
        for (node, history) in &mut self.nodes {
            let Some(current) = history.latest.take() else {
                continue;
            };
            let row = match to_schema_row(history.interval_start.as_ref(), &current, None) {
                Ok(row) => row,
                Err(error) => {
                    tracing::warn!(%node, %error, "health sample not usable for risk; interval unknown");
                    ALL_MISSING
                }
            };
            if history.rows.len() == HISTORY_ROWS_MAX {
                history.rows.pop_front();
            }
            history.rows.push_back(row);
            history.interval_start = Some(current);
        }
    }

    /// The node's rows, oldest first (empty when it never answered).
    pub fn window(&self, node: NodeId) -> Vec<FeatureValues> {
        self.nodes
            .get(&node)
            .map(|history| history.rows.iter().copied().collect())
            .unwrap_or_default()
    }

    /// One request window per node with rows, of exactly `intervals` rows: the latest
    /// ones, padded at the old end with unknown rows when the node is younger.
    pub fn request_windows(&self, intervals: usize) -> Vec<NodeWindow> {
        self.nodes
            .iter()
            .filter(|(_, history)| !history.rows.is_empty())
            .map(|(node, history)| {
                let rows = &history.rows;
                let mut window = vec![ALL_MISSING; intervals.saturating_sub(rows.len())];
                window.extend(rows.iter().skip(rows.len().saturating_sub(intervals)));
                NodeWindow::from_rows(*node, &window)
            })
            .collect()
    }
}

/// The sidecar, with the window length of its model (asked once, again after a failed
/// round: the sidecar may have been restarted with another model).
pub struct Predictor {
    client: PredictorClient,
    window_intervals: Option<usize>,
}

impl Predictor {
    /// The sidecar at `base_url`, signed to (and its answers verified) with `key`, over
    /// `transport`.
    pub fn new(
        base_url: &str,
        key: shardlet_auth::Key,
        transport: Transport,
    ) -> Result<Self, ClientError> {
        let config = ClientConfig {
            transport,
            ..ClientConfig::new(base_url, key)
        };
        Ok(Self {
            client: PredictorClient::new(&config)?,
            window_intervals: None,
        })
    }

    /// Probabilities of failure per node, or an error when the sidecar cannot answer
    /// (the caller then uses the heuristic). Non-finite probabilities are dropped and
    /// the rest clamped to [0, 1].
    pub async fn score(
        &mut self,
        windows: &NodeWindows,
    ) -> Result<BTreeMap<NodeId, f64>, ClientError> {
        let intervals = match self.window_intervals {
            Some(intervals) => intervals,
            None => {
                let intervals = self.client.health().await?.window_intervals;
                self.window_intervals = Some(intervals);
                intervals
            }
        };
        let request = windows.request_windows(intervals);
        if request.is_empty() {
            return Ok(BTreeMap::new());
        }
        let response = self.client.score(request).await.inspect_err(|_| {
            self.window_intervals = None;
        })?;
        Ok(response
            .scores
            .into_iter()
            .filter(|score| score.failure_probability.is_finite())
            .map(|score| (score.node_id, score.failure_probability.clamp(0.0, 1.0)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use shardlet_core::health_report::{DiskReport, ErrorReport, FragmentReport};
    use shardlet_predictor_api::schema::index;

    use super::*;

    fn health(read_errors: u64, uptime_seconds: u64, cpu: f64) -> HealthReport {
        HealthReport {
            node_id: 1,
            version: "test".into(),
            uptime_seconds,
            cpu_utilization: cpu,
            memory_used_bytes: 4,
            memory_total_bytes: 16,
            disk: DiskReport {
                capacity_bytes: 100,
                free_bytes: 40,
                io_utilization: 0.5,
                read_latency_ms: 3.5,
                write_latency_ms: 4.5,
                ..DiskReport::default()
            },
            errors: ErrorReport {
                read_errors,
                ..ErrorReport::default()
            },
            smart: None,
            fragments: FragmentReport::default(),
            writes_refused: None,
            name: String::new(),
        }
    }

    #[test]
    fn one_row_per_interval_counts_errors_per_interval_and_survives_restarts() {
        let node = NodeId(1);
        let mut windows = NodeWindows::default();
        windows.observe(node, health(5, 100, 0.25));
        windows.close_interval();
        // Two probes in one interval: only the latest makes the row.
        windows.observe(node, health(6, 100, 0.25));
        windows.observe(node, health(8, 101, 0.25));
        windows.close_interval();
        // A node that did not answer gets no row.
        windows.close_interval();
        windows.observe(node, health(2, 5, 0.25));
        windows.close_interval();
        let rows = windows.window(node);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0][index::CPU_UTILIZATION], 0.25);
        assert_eq!(rows[0][index::MEMORY_UTILIZATION], 0.25, "memory 4 of 16");
        assert!(
            rows[0][index::READ_ERRORS].is_nan(),
            "no interval yet: errors unknown"
        );
        assert_eq!(rows[1][index::READ_ERRORS], 3.0);
        assert_eq!(
            rows[2][index::READ_ERRORS],
            2.0,
            "after a restart the totals are the interval"
        );
    }

    #[test]
    fn a_nonsense_sample_is_an_unknown_interval_and_history_is_bounded() {
        let node = NodeId(2);
        let mut windows = NodeWindows::default();
        // CPU above 100 %: never a wrong value, an unknown interval.
        windows.observe(node, health(0, 1, 7.0));
        windows.close_interval();
        assert!(windows.window(node)[0].iter().all(|value| value.is_nan()));
        for uptime in 2..(HISTORY_ROWS_MAX as u64 + 10) {
            windows.observe(node, health(0, uptime, 0.5));
            windows.close_interval();
        }
        assert_eq!(windows.window(node).len(), HISTORY_ROWS_MAX);
        assert!(windows.window(NodeId(9)).is_empty());
    }

    #[test]
    fn request_windows_have_the_models_length_padded_at_the_old_end() {
        let mut windows = NodeWindows::default();
        for uptime in 1..=3 {
            windows.observe(NodeId(1), health(0, uptime, 0.5));
            windows.close_interval();
        }
        windows.observe(NodeId(3), health(0, 1, 0.5));
        let request = windows.request_windows(5);
        assert_eq!(request.len(), 1, "a node without rows is not sent");
        assert_eq!(request[0].node_id, NodeId(1));
        assert_eq!(request[0].intervals.len(), 5);
        assert!(request[0].intervals[1].iter().all(Option::is_none));
        assert_eq!(request[0].intervals[4][index::CPU_UTILIZATION], Some(0.5));
        let shorter = windows.request_windows(2);
        assert_eq!(shorter[0].intervals.len(), 2, "the latest rows only");
    }
}
