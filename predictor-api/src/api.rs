//! The sidecar's wire types and their validation, shared by the server (which links
//! libtorch) and the client (which does not).
//!
//! `POST /v1/score` takes a batch of node windows. Each window is `window_intervals`
//! intervals, oldest first; each interval is `FEATURE_COUNT` numbers in schema order,
//! `null` where missing. `GET /health` reports the model's version and shape.

use serde::{Deserialize, Serialize};
use shardlet_core::NodeId;

use crate::schema::{
    check_value, FeatureValues, ALL_MISSING, FEATURES, FEATURE_COUNT, SCHEMA_VERSION,
};

/// Most nodes in one scoring request: bounds the server's work and memory per request.
pub const BATCH_NODES_MAX: usize = 1_000;
/// Largest request body the server reads (a full batch of 1,000 × 30 × 18 values fits).
pub const REQUEST_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Largest response body the client reads (a full batch of 1,000 scores is ~100 KiB):
/// a broken sidecar cannot make its callers buffer without bound.
pub const RESPONSE_BODY_BYTES_MAX: usize = 1024 * 1024;
/// Longest window a client accepts from the sidecar's `GET /health`: callers keep that
/// many intervals per node, so this bounds their memory.
pub const WINDOW_INTERVALS_MAX: usize = 1_000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeWindow {
    pub node_id: NodeId,
    pub intervals: Vec<Vec<Option<f64>>>,
}

impl NodeWindow {
    /// Builds a window from schema rows (`NaN` becomes `null`).
    pub fn from_rows(node_id: NodeId, rows: &[FeatureValues]) -> Self {
        let intervals = rows
            .iter()
            .map(|values| {
                values
                    .iter()
                    .map(|value| (!value.is_nan()).then_some(f64::from(*value)))
                    .collect()
            })
            .collect();
        Self { node_id, intervals }
    }

    /// The intervals as schema rows, without validation (`null` becomes `NaN`).
    pub fn rows_unchecked(&self) -> Vec<FeatureValues> {
        self.intervals
            .iter()
            .map(|interval| {
                let mut values = ALL_MISSING;
                for (slot, value) in values.iter_mut().zip(interval) {
                    *slot = value.map_or(f32::NAN, |value| value as f32);
                }
                values
            })
            .collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScoreRequest {
    pub schema_version: u32,
    pub windows: Vec<NodeWindow>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeScore {
    pub node_id: NodeId,
    /// Probability that the node fails within the model's horizon.
    pub failure_probability: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScoreResponse {
    pub model_version: String,
    pub horizon_days: u32,
    pub scores: Vec<NodeScore>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HealthResponse {
    pub status: String,
    pub model_version: String,
    pub schema_version: u32,
    pub window_intervals: usize,
    pub horizon_days: u32,
    pub feature_names: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorResponse {
    pub error: String,
}

impl HealthResponse {
    /// Checks that a sidecar's `/health` describes a model this client can feed: the
    /// same schema, a window of 1 to `WINDOW_INTERVALS_MAX` intervals.
    pub fn check(&self) -> Result<(), String> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "the sidecar speaks schema {}, this client speaks {SCHEMA_VERSION}",
                self.schema_version
            ));
        }
        if !(1..=WINDOW_INTERVALS_MAX).contains(&self.window_intervals) {
            return Err(format!(
                "the sidecar's window of {} intervals is outside 1 to {WINDOW_INTERVALS_MAX}",
                self.window_intervals
            ));
        }
        Ok(())
    }
}

/// Checks a request against the model's shape and the schema's ranges and returns the
/// windows as schema rows, or the reason it is invalid (sent back with a 400).
pub fn validate(
    request: &ScoreRequest,
    window_intervals: usize,
) -> Result<Vec<Vec<FeatureValues>>, String> {
    if request.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "schema_version {} is not supported: this sidecar speaks schema {SCHEMA_VERSION}",
            request.schema_version
        ));
    }
    if request.windows.is_empty() {
        return Err("windows must not be empty".into());
    }
    if request.windows.len() > BATCH_NODES_MAX {
        return Err(format!(
            "{} windows in one request; at most {BATCH_NODES_MAX}",
            request.windows.len()
        ));
    }
    let mut rows = Vec::with_capacity(request.windows.len());
    for (position, window) in request.windows.iter().enumerate() {
        let node = window.node_id;
        if window.intervals.len() != window_intervals {
            return Err(format!(
                "windows[{position}] (node {node}): {} intervals, the model needs exactly {window_intervals}",
                window.intervals.len()
            ));
        }
        for (step, interval) in window.intervals.iter().enumerate() {
            if interval.len() != FEATURE_COUNT {
                return Err(format!(
                    "windows[{position}].intervals[{step}] (node {node}): {} values, expected {FEATURE_COUNT} ({})",
                    interval.len(),
                    FEATURES.iter().map(|spec| spec.name).collect::<Vec<_>>().join(", ")
                ));
            }
            for (feature, value) in interval.iter().enumerate() {
                if let Some(value) = value {
                    // f64 → f32 may overflow to infinity, which the range check rejects.
                    check_value(feature, *value as f32).map_err(|reason| {
                        format!("windows[{position}].intervals[{step}] (node {node}): {reason}")
                    })?;
                }
            }
        }
        rows.push(window.rows_unchecked());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(intervals: usize, values: usize) -> ScoreRequest {
        ScoreRequest {
            schema_version: SCHEMA_VERSION,
            windows: vec![NodeWindow {
                node_id: NodeId(7),
                intervals: vec![vec![Some(0.5); values]; intervals],
            }],
        }
    }

    #[test]
    fn accepts_a_well_formed_window_and_rejects_each_bad_shape() {
        assert!(validate(&request(3, FEATURE_COUNT), 3).is_ok());
        assert!(validate(&request(2, FEATURE_COUNT), 3)
            .unwrap_err()
            .contains("exactly 3"));
        assert!(validate(&request(3, 5), 3)
            .unwrap_err()
            .contains("expected 18"));
        let mut wrong_schema = request(3, FEATURE_COUNT);
        wrong_schema.schema_version = 99;
        assert!(validate(&wrong_schema, 3)
            .unwrap_err()
            .contains("schema_version"));
        let mut out_of_range = request(3, FEATURE_COUNT);
        out_of_range.windows[0].intervals[1][0] = Some(7.0);
        assert!(validate(&out_of_range, 3)
            .unwrap_err()
            .contains("cpu_utilization"));
        let empty = ScoreRequest {
            schema_version: SCHEMA_VERSION,
            windows: vec![],
        };
        assert!(validate(&empty, 3).is_err());
    }

    fn health(schema_version: u32, window_intervals: usize) -> HealthResponse {
        HealthResponse {
            status: "ok".into(),
            model_version: "m1".into(),
            schema_version,
            window_intervals,
            horizon_days: 30,
            feature_names: vec![],
        }
    }

    #[test]
    fn a_sidecar_health_with_another_schema_or_an_unbounded_window_is_refused() {
        assert!(health(SCHEMA_VERSION, 30).check().is_ok());
        assert!(health(SCHEMA_VERSION + 1, 30)
            .check()
            .unwrap_err()
            .contains("schema"));
        assert!(health(SCHEMA_VERSION, 0).check().is_err());
        assert!(health(SCHEMA_VERSION, WINDOW_INTERVALS_MAX + 1)
            .check()
            .is_err());
    }

    #[test]
    fn rows_and_wire_intervals_round_trip_with_missing_as_null() {
        let mut row = ALL_MISSING;
        row[0] = 0.5;
        let window = NodeWindow::from_rows(NodeId(2), &[row]);
        assert_eq!(window.intervals[0][0], Some(0.5));
        assert_eq!(window.intervals[0][1], None);
        let wire = serde_json::to_value(&window).unwrap();
        assert_eq!(wire["node_id"], 2);
        assert_eq!(wire["intervals"][0][0], 0.5);
        assert!(
            wire["intervals"][0][1].is_null(),
            "missing is null on the wire"
        );
        let back = window.rows_unchecked();
        assert_eq!(back[0][0], 0.5);
        assert!(back[0][1].is_nan());
    }
}
