//! Training on a tiny simulated fleet beats the SMART rule; the artifact round-trips;
//! a model from another schema version is refused with a clear error.
#![cfg(feature = "lstm")]
#![allow(clippy::unwrap_used)]

mod common;

use indicatif::ProgressBar;
use shardlet_predictor::baselines::smart_rule_scores;
use shardlet_predictor::metrics::pr_auc;
use shardlet_predictor::model::{LstmModel, ModelError, METADATA_FILE, WEIGHTS_FILE};
use shardlet_predictor::model_files::expected_tensors;
use shardlet_predictor::train::{predict_windows, train, TrainConfig};

#[test]
fn lstm_trained_on_a_tiny_fleet_beats_the_smart_rule_and_survives_save_and_load() {
    let data = tempfile::tempdir().unwrap();
    let fleet = common::tiny_fleet(data.path(), 21);
    let mut config = TrainConfig::new(7, 3);
    config.epochs_max = 12;
    let trained = train(&fleet, &config, "tiny", &ProgressBar::hidden()).unwrap();
    let test = &trained.split.test;
    let labels: Vec<bool> = test.iter().map(|window| window.label).collect();
    assert!(
        labels.iter().any(|label| *label),
        "the tiny fleet must have test failures"
    );
    let lstm_scores = predict_windows(&trained.model, &fleet, test);
    let lstm_pr_auc = pr_auc(&lstm_scores, &labels);
    let smart_pr_auc = pr_auc(&smart_rule_scores(&fleet, test), &labels);
    assert!(
        lstm_pr_auc > smart_pr_auc,
        "LSTM PR-AUC {lstm_pr_auc:.3} must beat the SMART rule's {smart_pr_auc:.3}"
    );

    let artifact = tempfile::tempdir().unwrap();
    let model_directory = artifact.path().join("model");
    trained.model.save(&model_directory).unwrap();
    // Saving again over an existing model replaces it whole.
    trained.model.save(&model_directory).unwrap();
    let loaded = LstmModel::load(&model_directory).unwrap();
    assert_eq!(loaded.metadata, trained.model.metadata);
    assert_eq!(predict_windows(&loaded, &fleet, test), lstm_scores);
}

#[test]
fn loading_a_model_of_another_schema_version_fails_clearly() {
    let artifact = tempfile::tempdir().unwrap();
    let directory = artifact.path().join("model");
    common::untrained_model(5).save(&directory).unwrap();
    let path = directory.join(METADATA_FILE);
    let mut metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    metadata["schema_version"] = serde_json::json!(999);
    std::fs::write(&path, serde_json::to_vec(&metadata).unwrap()).unwrap();
    let error = LstmModel::load(&directory).err().unwrap();
    assert!(
        matches!(error, ModelError::SchemaVersion { found: 999, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("schema version 999"), "{error}");
}

#[test]
fn corrupt_artifacts_are_errors_not_panics() {
    let artifact = tempfile::tempdir().unwrap();
    let directory = artifact.path().join("model");
    common::untrained_model(5).save(&directory).unwrap();
    std::fs::write(directory.join("weights.safetensors"), b"not a tensor file").unwrap();
    assert!(LstmModel::load(&directory).is_err());
    std::fs::write(
        directory.join(METADATA_FILE),
        b"{\"schema_version\": 1, \"oops\": true}",
    )
    .unwrap();
    assert!(matches!(
        LstmModel::load(&directory),
        Err(ModelError::Invalid { .. })
    ));
    std::fs::write(directory.join(METADATA_FILE), b"[").unwrap();
    assert!(matches!(
        LstmModel::load(&directory),
        Err(ModelError::Invalid { .. })
    ));
    assert!(matches!(
        LstmModel::load(&artifact.path().join("absent")),
        Err(ModelError::Io { .. })
    ));
}

#[test]
fn the_weights_check_expects_exactly_the_tensors_tch_creates() {
    let model = common::untrained_model(5);
    let mut created: Vec<(String, Vec<usize>)> = model
        .var_store
        .variables()
        .into_iter()
        .map(|(name, tensor)| (name, tensor.size().iter().map(|&d| d as usize).collect()))
        .collect();
    created.sort();
    let mut expected = expected_tensors(&model.metadata);
    expected.sort();
    assert_eq!(created, expected);
}

/// Writes `tensors` (name, dtype, shape; zeros) as the model's weights file.
fn write_weights(directory: &std::path::Path, tensors: &[(&str, safetensors::Dtype, Vec<usize>)]) {
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, dtype, shape)| vec![0u8; shape.iter().product::<usize>() * dtype.size()])
        .collect();
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, dtype, shape), bytes)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes);
            (*name, view.unwrap())
        })
        .collect();
    let bytes = safetensors::tensor::serialize(views, &None).unwrap();
    std::fs::write(directory.join(WEIGHTS_FILE), bytes).unwrap();
}

#[test]
fn weights_of_another_dtype_or_a_broadcastable_shape_are_refused_before_libtorch_loads_them() {
    let artifact = tempfile::tempdir().unwrap();
    let directory = artifact.path().join("model");
    let model = common::untrained_model(5);
    model.save(&directory).unwrap();
    let expected = expected_tensors(&model.metadata);
    let exact: Vec<(&str, safetensors::Dtype, Vec<usize>)> = expected
        .iter()
        .map(|(name, shape)| (name.as_str(), safetensors::Dtype::F32, shape.clone()))
        .collect();
    write_weights(&directory, &exact);
    assert!(
        LstmModel::load(&directory).is_ok(),
        "the exact tensors load"
    );

    // tch alone would broadcast a [1] tensor over the whole matrix and load it.
    let mut broadcast = exact.clone();
    broadcast[0].2 = vec![1];
    // tch alone would convert the model to 64-bit floats.
    let mut float64 = exact.clone();
    float64[1].1 = safetensors::Dtype::F64;
    let mut missing = exact.clone();
    missing.pop();
    let mut extra = exact.clone();
    extra.push(("other.weight", safetensors::Dtype::F32, vec![1]));
    for (tensors, why) in [
        (broadcast, "a broadcastable shape"),
        (float64, "another dtype"),
        (missing, "a missing tensor"),
        (extra, "an extra tensor"),
    ] {
        write_weights(&directory, &tensors);
        let error = LstmModel::load(&directory).err();
        assert!(
            matches!(error, Some(ModelError::Invalid { .. })),
            "{why}: {error:?}"
        );
    }
}
