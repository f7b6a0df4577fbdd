//! From a fleet's series to model inputs: labelled windows, normalisation, encoding.
//!
//! A window is the `window_intervals` days ending on (and including) `day` for one
//! node. Its label is "the node fails within `horizon_days`": the failure day `f`
//! satisfies `0 <= f - day < horizon_days`. Each interval is encoded as
//! `3 * FEATURE_COUNT` numbers: normalised values (0 where missing), presence masks, and
//! the change of each normalised value since its first present value in the window
//! (0 when either is missing). The change channel spells out the trend that a
//! last-interval model cannot see: a drive with 2,000 stable reallocated sectors is not
//! a drive whose count went from 0 to 200 this week.
//! Days before a node's first report are all-missing, so young nodes still score.

use serde::{Deserialize, Serialize};
use shardlet_predictor_api::schema::{FeatureValues, Scale, FEATURES, FEATURE_COUNT};

use crate::dataset::{Fleet, NodeSeries};

/// Numbers per encoded interval: values, masks, changes since the window's start.
pub const INPUT_WIDTH: usize = 3 * FEATURE_COUNT;

/// One labelled window: node `node` (index into `Fleet::nodes`) on day `day`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub node: u32,
    pub day: i32,
    pub label: bool,
}

/// Whether `node` fails within `horizon_days` of `day`.
pub fn label(node: &NodeSeries, day: i32, horizon_days: u32) -> bool {
    node.failure_day
        .is_some_and(|failure_day| (0..horizon_days as i32).contains(&(failure_day - day)))
}

fn transform(feature: usize, value: f32) -> f32 {
    match FEATURES[feature].scale {
        Scale::Linear => value,
        Scale::Log => value.max(0.0).ln_1p(),
    }
}

/// Per-feature mean and standard deviation of the transformed values, fitted on the
/// training split only and saved with the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    pub mean: Vec<f32>,
    pub standard_deviation: Vec<f32>,
}

impl Normalizer {
    /// Fits on every reported interval of the given nodes up to `last_day` inclusive.
    pub fn fit<'a>(nodes: impl Iterator<Item = &'a NodeSeries>, last_day: i32) -> Self {
        let mut count = [0f64; FEATURE_COUNT];
        let mut sum = [0f64; FEATURE_COUNT];
        let mut sum_of_squares = [0f64; FEATURE_COUNT];
        for node in nodes {
            for (offset, values) in node.values.iter().enumerate() {
                if node.first_day + offset as i32 > last_day {
                    break;
                }
                for (feature, value) in values.iter().enumerate() {
                    if value.is_nan() {
                        continue;
                    }
                    let value = f64::from(transform(feature, *value));
                    count[feature] += 1.0;
                    sum[feature] += value;
                    sum_of_squares[feature] += value * value;
                }
            }
        }
        let mut mean = vec![0.0; FEATURE_COUNT];
        let mut standard_deviation = vec![1.0; FEATURE_COUNT];
        for feature in 0..FEATURE_COUNT {
            if count[feature] > 0.0 {
                let average = sum[feature] / count[feature];
                let variance =
                    (sum_of_squares[feature] / count[feature] - average * average).max(0.0);
                mean[feature] = average as f32;
                // A constant feature would divide by zero; 1 keeps it at 0 after centring.
                standard_deviation[feature] = if variance > 1e-12 {
                    variance.sqrt() as f32
                } else {
                    1.0
                };
            }
        }
        Self {
            mean,
            standard_deviation,
        }
    }

    /// Checks a loaded normaliser has the schema's shape and finite numbers.
    pub fn validate(&self) -> Result<(), String> {
        if self.mean.len() != FEATURE_COUNT || self.standard_deviation.len() != FEATURE_COUNT {
            return Err(format!("normalizer must have {FEATURE_COUNT} features"));
        }
        let finite = self.mean.iter().all(|value| value.is_finite())
            && self
                .standard_deviation
                .iter()
                .all(|value| value.is_finite() && *value > 0.0);
        if !finite {
            return Err("normalizer has non-finite or non-positive values".into());
        }
        Ok(())
    }

    /// Encodes one interval into `out` (`INPUT_WIDTH` numbers; changes left at 0, see
    /// `fill_changes`).
    pub fn encode_interval(&self, values: &FeatureValues, out: &mut [f32]) {
        let (normalised, rest) = out.split_at_mut(FEATURE_COUNT);
        let (masks, changes) = rest.split_at_mut(FEATURE_COUNT);
        changes.fill(0.0);
        for feature in 0..FEATURE_COUNT {
            let value = values[feature];
            if value.is_nan() {
                normalised[feature] = 0.0;
                masks[feature] = 0.0;
            } else {
                let scaled = (transform(feature, value) - self.mean[feature])
                    / self.standard_deviation[feature];
                // Clipped so one absurd counter cannot saturate the LSTM's gates.
                normalised[feature] = scaled.clamp(-10.0, 10.0);
                masks[feature] = 1.0;
            }
        }
    }

    /// Encodes the window of `node` ending on `day`: `window_intervals * INPUT_WIDTH`
    /// numbers appended to `out`, oldest interval first.
    pub fn encode_window(
        &self,
        node: &NodeSeries,
        day: i32,
        window_intervals: usize,
        out: &mut Vec<f32>,
    ) {
        let start = out.len();
        out.resize(start + window_intervals * INPUT_WIDTH, 0.0);
        for step in 0..window_intervals {
            let interval_day = day - (window_intervals - 1 - step) as i32;
            let slot = &mut out[start + step * INPUT_WIDTH..start + (step + 1) * INPUT_WIDTH];
            match node.values_on(interval_day) {
                Some(values) => self.encode_interval(values, slot),
                None => slot.fill(0.0),
            }
        }
        fill_changes(&mut out[start..]);
    }

    /// Encodes many windows of a fleet into one flat buffer.
    pub fn encode_windows(
        &self,
        fleet: &Fleet,
        windows: &[Window],
        window_intervals: usize,
    ) -> Vec<f32> {
        let mut out = Vec::with_capacity(windows.len() * window_intervals * INPUT_WIDTH);
        for window in windows {
            self.encode_window(
                &fleet.nodes[window.node as usize],
                window.day,
                window_intervals,
                &mut out,
            );
        }
        out
    }

    /// Encodes a window given as raw intervals (the sidecar's input), oldest first.
    pub fn encode_intervals(&self, intervals: &[FeatureValues], out: &mut Vec<f32>) {
        let start = out.len();
        out.resize(start + intervals.len() * INPUT_WIDTH, 0.0);
        for (step, values) in intervals.iter().enumerate() {
            self.encode_interval(
                values,
                &mut out[start + step * INPUT_WIDTH..start + (step + 1) * INPUT_WIDTH],
            );
        }
        fill_changes(&mut out[start..]);
    }
}

/// Fills the change channel of one encoded window (intervals of `INPUT_WIDTH`, values
/// and masks already set): per feature, value minus its first present value.
fn fill_changes(window: &mut [f32]) {
    for feature in 0..FEATURE_COUNT {
        let mut first: Option<f32> = None;
        for interval in window.chunks_mut(INPUT_WIDTH) {
            if interval[FEATURE_COUNT + feature] == 0.0 {
                continue;
            }
            let value = interval[feature];
            let baseline = *first.get_or_insert(value);
            interval[2 * FEATURE_COUNT + feature] = value - baseline;
        }
    }
}

/// The class-imbalance treatment shared by the LSTM and the logistic baseline: keep
/// every positive window, draw at most `negatives_per_positive` negatives per positive
/// (a fresh draw each epoch for the LSTM), and weight positives by the remaining
/// negatives-to-positives ratio so the loss sees both classes equally.
/// Returns the sampled windows (shuffled) and the positive weight.
pub fn balanced_sample(
    windows: &[Window],
    negatives_per_positive: usize,
    rng: &mut impl rand::Rng,
) -> (Vec<Window>, f32) {
    use rand::seq::{IndexedRandom, SliceRandom};
    let positives: Vec<Window> = windows
        .iter()
        .copied()
        .filter(|window| window.label)
        .collect();
    let negatives: Vec<Window> = windows
        .iter()
        .copied()
        .filter(|window| !window.label)
        .collect();
    let wanted = (positives.len() * negatives_per_positive).min(negatives.len());
    let mut sample: Vec<Window> = negatives.choose_multiple(rng, wanted).copied().collect();
    let positive_weight = if positives.is_empty() {
        1.0
    } else {
        sample.len().max(1) as f32 / positives.len() as f32
    };
    sample.extend(positives);
    sample.shuffle(rng);
    (sample, positive_weight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardlet_predictor_api::schema::{index, ALL_MISSING};

    fn node(days: usize, failure_offset: Option<i32>) -> NodeSeries {
        let mut values = vec![ALL_MISSING; days];
        for (offset, interval) in values.iter_mut().enumerate() {
            interval[index::SMART_5] = offset as f32;
        }
        NodeSeries {
            serial: "n".into(),
            model: "m".into(),
            first_day: 100,
            reported: vec![true; days],
            values,
            failure_day: failure_offset.map(|offset| 100 + offset),
        }
    }

    #[test]
    fn label_covers_exactly_the_horizon_before_failure() {
        let failing = node(30, Some(20));
        assert!(!label(&failing, 113, 7));
        assert!(label(&failing, 114, 7));
        assert!(label(&failing, 120, 7));
        assert!(!label(&node(30, None), 120, 7));
    }

    #[test]
    fn windows_pad_missing_history_and_mask_missing_values() {
        let series = node(5, None);
        let normalizer = Normalizer::fit(std::iter::once(&series), 1000);
        let mut out = Vec::new();
        normalizer.encode_window(&series, 101, 3, &mut out);
        assert_eq!(out.len(), 3 * INPUT_WIDTH);
        // Day 99 is before the first report: everything zero, masks zero.
        assert!(out[..INPUT_WIDTH].iter().all(|value| *value == 0.0));
        // Day 100 reports SMART 5 only.
        assert_eq!(out[INPUT_WIDTH + FEATURE_COUNT + index::SMART_5], 1.0);
        assert_eq!(
            out[INPUT_WIDTH + FEATURE_COUNT + index::CPU_UTILIZATION],
            0.0
        );
        // SMART 5 grows: its normalised value on day 101 is above day 100's.
        assert!(out[2 * INPUT_WIDTH + index::SMART_5] > out[INPUT_WIDTH + index::SMART_5]);
        // Its change since the first present day is that difference.
        let change = out[2 * INPUT_WIDTH + 2 * FEATURE_COUNT + index::SMART_5];
        let expected = out[2 * INPUT_WIDTH + index::SMART_5] - out[INPUT_WIDTH + index::SMART_5];
        assert!((change - expected).abs() < 1e-6 && change > 0.0);
        assert_eq!(out[INPUT_WIDTH + 2 * FEATURE_COUNT + index::SMART_5], 0.0);
    }
}
