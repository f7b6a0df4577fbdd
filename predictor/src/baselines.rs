//! The two baselines every LSTM number is compared with, on the same split:
//! - the SMART rule operators use: alarm when any of raw 5, 187, 188, 197, 198 > 0;
//! - a logistic regression on the last interval's encoded features (values and masks),
//!   trained on the same training windows with the same class weighting.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use shardlet_predictor_api::heuristic::smart_rule;

use crate::dataset::Fleet;
use crate::features::{Normalizer, Window, INPUT_WIDTH};

pub fn smart_rule_scores(fleet: &Fleet, windows: &[Window]) -> Vec<f32> {
    windows
        .iter()
        .map(|window| {
            fleet.nodes[window.node as usize]
                .values_on(window.day)
                .map_or(0.0, smart_rule)
        })
        .collect()
}

/// Logistic regression over one encoded interval.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogisticRegression {
    pub weights: Vec<f32>,
    pub bias: f32,
}

#[derive(Clone, Debug)]
pub struct LogisticConfig {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
    pub batch_size: usize,
    pub seed: u64,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            learning_rate: 0.01,
            l2: 1e-4,
            batch_size: 256,
            seed: 7,
        }
    }
}

fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit).exp())
}

impl LogisticRegression {
    /// Trains with Adam on weighted log loss; `positive_weight` balances the classes.
    pub fn train(
        inputs: &[f32],
        labels: &[bool],
        positive_weight: f32,
        config: &LogisticConfig,
    ) -> Self {
        let count = labels.len();
        assert_eq!(
            inputs.len(),
            count * INPUT_WIDTH,
            "inputs and labels disagree"
        );
        let mut model = Self {
            weights: vec![0.0; INPUT_WIDTH],
            bias: 0.0,
        };
        let mut first_moment = [0.0f32; INPUT_WIDTH + 1];
        let mut second_moment = [0.0f32; INPUT_WIDTH + 1];
        let mut step = 0i32;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut order: Vec<usize> = (0..count).collect();
        let mut gradient = [0.0f32; INPUT_WIDTH + 1];
        for _ in 0..config.epochs {
            order.shuffle(&mut rng);
            for batch in order.chunks(config.batch_size.max(1)) {
                gradient.fill(0.0);
                let mut total_weight = 0.0;
                for &item in batch {
                    let row = &inputs[item * INPUT_WIDTH..(item + 1) * INPUT_WIDTH];
                    let weight = if labels[item] { positive_weight } else { 1.0 };
                    let error =
                        (sigmoid(model.logit(row)) - f32::from(u8::from(labels[item]))) * weight;
                    for (slot, value) in gradient.iter_mut().zip(row) {
                        *slot += error * value;
                    }
                    gradient[INPUT_WIDTH] += error;
                    total_weight += weight;
                }
                step += 1;
                let (beta1, beta2) = (0.9f32, 0.999f32);
                for parameter in 0..=INPUT_WIDTH {
                    let value = if parameter < INPUT_WIDTH {
                        model.weights[parameter]
                    } else {
                        model.bias
                    };
                    let regularised = gradient[parameter] / total_weight
                        + if parameter < INPUT_WIDTH {
                            config.l2 * value
                        } else {
                            0.0
                        };
                    first_moment[parameter] =
                        beta1 * first_moment[parameter] + (1.0 - beta1) * regularised;
                    second_moment[parameter] = beta2 * second_moment[parameter]
                        + (1.0 - beta2) * regularised * regularised;
                    let corrected_first = first_moment[parameter] / (1.0 - beta1.powi(step));
                    let corrected_second = second_moment[parameter] / (1.0 - beta2.powi(step));
                    let update =
                        config.learning_rate * corrected_first / (corrected_second.sqrt() + 1e-8);
                    if parameter < INPUT_WIDTH {
                        model.weights[parameter] -= update;
                    } else {
                        model.bias -= update;
                    }
                }
            }
        }
        model
    }

    fn logit(&self, row: &[f32]) -> f32 {
        self.bias
            + self
                .weights
                .iter()
                .zip(row)
                .map(|(weight, value)| weight * value)
                .sum::<f32>()
    }

    pub fn score(&self, row: &[f32]) -> f32 {
        sigmoid(self.logit(row))
    }

    /// Scores the last interval of each window.
    pub fn score_windows(
        &self,
        fleet: &Fleet,
        normalizer: &Normalizer,
        windows: &[Window],
    ) -> Vec<f32> {
        let inputs = normalizer.encode_windows(fleet, windows, 1);
        inputs
            .chunks(INPUT_WIDTH)
            .map(|row| self.score(row))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_regression_learns_a_separable_problem() {
        let mut inputs = Vec::new();
        let mut labels = Vec::new();
        for item in 0..400 {
            let positive = item % 4 == 0;
            let mut row = vec![0.0f32; INPUT_WIDTH];
            row[3] = if positive { 1.5 } else { -0.5 } + (item % 7) as f32 * 0.05;
            inputs.extend(row);
            labels.push(positive);
        }
        let model = LogisticRegression::train(&inputs, &labels, 3.0, &LogisticConfig::default());
        let scores: Vec<f32> = inputs
            .chunks(INPUT_WIDTH)
            .map(|row| model.score(row))
            .collect();
        assert!(crate::metrics::pr_auc(&scores, &labels) > 0.99);
    }
}
