//! Shared by the LSTM and sidecar tests: a tiny simulated fleet and a model.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;

use shardlet_predictor::backblaze::import_fleet;
use shardlet_predictor::dataset::Fleet;
use shardlet_predictor::features::Normalizer;
use shardlet_predictor::model::{LstmModel, ModelMetadata, TrainingSummary};
use shardlet_predictor::simulator::{simulate, SimulationConfig};
use shardlet_predictor::split::SplitConfig;
use shardlet_predictor_api::schema::{feature_names, SCHEMA_VERSION};

/// A small fleet with a raised failure rate, written as CSV and imported back: the
/// same data path as real data.
pub fn tiny_fleet(directory: &Path, seed: u64) -> Fleet {
    let config = SimulationConfig {
        nodes: 500,
        days: 160,
        seed,
        failure_rate_scale: 3.0,
    };
    simulate(&config, directory, |_| {}).unwrap();
    import_fleet(directory, |_, _| {}).unwrap()
}

/// An untrained model with the real shape, for API tests that need no skill.
pub fn untrained_model(window_intervals: usize) -> LstmModel {
    LstmModel::new(ModelMetadata {
        schema_version: SCHEMA_VERSION,
        model_version: "test-untrained".into(),
        feature_names: feature_names(),
        window_intervals,
        horizon_days: 7,
        hidden_size: 8,
        normalizer: Normalizer::fit(std::iter::empty(), 0),
        threshold: 0.5,
        split: SplitConfig::new(1, 7),
        training: TrainingSummary {
            epochs_run: 0,
            best_epoch: 0,
            train_windows: 0,
            train_positive_windows: 0,
            validation_windows: 0,
            validation_pr_auc: 0.0,
            positive_weight: 1.0,
            negatives_per_positive: 10,
            seconds: 0.0,
            data: "none".into(),
        },
    })
}
