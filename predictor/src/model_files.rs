//! The model artifact's two files as they are checked before libtorch sees them:
//! `model.json` ([`ModelMetadata`]) parsed and range-checked, and the header of
//! `weights.safetensors` checked against the tensors that metadata implies. Pure, and
//! compiled without the `lstm` feature, so the fuzz targets reach it without libtorch.
//!
//! Why check the weights here: tch's `VarStore::load` converts each variable to the
//! file's dtype and copies with broadcasting, so a file whose tensors have another
//! dtype or a broadcastable shape (a single number for a whole matrix) would load
//! "successfully" into a different model. Only an exact match of names, dtypes and
//! shapes is accepted.

use serde::{Deserialize, Serialize};
use shardlet_predictor_api::schema::{feature_names, FEATURE_COUNT, SCHEMA_VERSION};

use crate::features::{Normalizer, INPUT_WIDTH};
use crate::split::SplitConfig;

pub const WEIGHTS_FILE: &str = "weights.safetensors";
pub const METADATA_FILE: &str = "model.json";
/// Largest `model.json` we read: it holds a few hundred numbers.
pub const METADATA_BYTES_MAX: u64 = 1024 * 1024;
/// Largest `weights.safetensors` we read: the largest model the metadata allows
/// (hidden size 1024) is about 17 MiB.
pub const WEIGHTS_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Window summaries fed to the head: mean, maximum and slope per feature.
pub const SUMMARY_WIDTH: usize = 3 * FEATURE_COUNT;
/// Bounds a loaded model's shape must respect (the hidden size bounds its weights).
pub const WINDOW_INTERVALS_MAX: usize = 365;
pub const HIDDEN_SIZE_MAX: usize = 1024;
pub const HORIZON_DAYS_MAX: u32 = 365;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainingSummary {
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub train_windows: usize,
    pub train_positive_windows: usize,
    pub validation_windows: usize,
    pub validation_pr_auc: f64,
    pub positive_weight: f64,
    pub negatives_per_positive: usize,
    pub seconds: f64,
    pub data: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelMetadata {
    pub schema_version: u32,
    pub model_version: String,
    pub feature_names: Vec<String>,
    pub window_intervals: usize,
    pub horizon_days: u32,
    pub hidden_size: usize,
    pub normalizer: Normalizer,
    /// Alarm threshold on the probability, chosen for best F1 on the validation split.
    pub threshold: f32,
    pub split: SplitConfig,
    pub training: TrainingSummary,
}

/// Why `model.json` cannot be used (the caller adds the path).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetadataError {
    #[error("{0}")]
    Invalid(String),
    #[error("model was trained on schema version {found}, this build speaks schema version {expected}; retrain the model")]
    SchemaVersion { found: u32, expected: u32 },
}

/// Parses and checks `model.json`: this build's schema version (checked first: a newer
/// schema may change other fields), its feature names, a valid normaliser, and a shape
/// inside the bounds above.
pub fn parse_metadata(text: &[u8]) -> Result<ModelMetadata, MetadataError> {
    let invalid = |reason: String| MetadataError::Invalid(reason);
    let version: serde_json::Value =
        serde_json::from_slice(text).map_err(|error| invalid(error.to_string()))?;
    let found = version
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| invalid("no schema_version".into()))?;
    if found != u64::from(SCHEMA_VERSION) {
        return Err(MetadataError::SchemaVersion {
            found: u32::try_from(found).unwrap_or(u32::MAX),
            expected: SCHEMA_VERSION,
        });
    }
    let metadata: ModelMetadata =
        serde_json::from_slice(text).map_err(|error| invalid(error.to_string()))?;
    if metadata.feature_names != feature_names() {
        return Err(invalid(
            "feature names differ from this build's schema".into(),
        ));
    }
    metadata.normalizer.validate().map_err(invalid)?;
    if !(1..=WINDOW_INTERVALS_MAX).contains(&metadata.window_intervals)
        || !(1..=HIDDEN_SIZE_MAX).contains(&metadata.hidden_size)
        || !(1..=HORIZON_DAYS_MAX).contains(&metadata.horizon_days)
        || !metadata.threshold.is_finite()
    {
        return Err(invalid(
            "window_intervals, hidden_size, horizon_days or threshold out of range".into(),
        ));
    }
    Ok(metadata)
}

/// Every tensor a model of this shape has, named as tch's `VarStore` names them, with
/// its shape: one LSTM layer (`lstm.*`, four gates) and the linear head (`head.*`) over
/// [last hidden state, last interval, window summaries]. A test of `model` holds this
/// list equal to what tch actually creates.
pub fn expected_tensors(metadata: &ModelMetadata) -> Vec<(String, Vec<usize>)> {
    let hidden = metadata.hidden_size;
    let gates = 4 * hidden;
    [
        ("lstm.weight_ih_l0", vec![gates, INPUT_WIDTH]),
        ("lstm.weight_hh_l0", vec![gates, hidden]),
        ("lstm.bias_ih_l0", vec![gates]),
        ("lstm.bias_hh_l0", vec![gates]),
        ("head.weight", vec![1, hidden + INPUT_WIDTH + SUMMARY_WIDTH]),
        ("head.bias", vec![1]),
    ]
    .into_iter()
    .map(|(name, shape)| (name.to_string(), shape))
    .collect()
}

/// Checks a `weights.safetensors` file against the metadata: a well-formed file holding
/// exactly the [`expected_tensors`], each 32-bit float of exactly its shape.
pub fn check_weights(bytes: &[u8], metadata: &ModelMetadata) -> Result<(), String> {
    if bytes.len() as u64 > WEIGHTS_BYTES_MAX {
        return Err(format!(
            "{} bytes; at most {WEIGHTS_BYTES_MAX}",
            bytes.len()
        ));
    }
    let file = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|error| format!("not a safetensors file: {error:?}"))?;
    let expected = expected_tensors(metadata);
    if file.len() != expected.len() {
        return Err(format!(
            "{} tensors; a model of hidden size {} has {}",
            file.len(),
            metadata.hidden_size,
            expected.len()
        ));
    }
    for (name, shape) in &expected {
        let tensor = file
            .tensor(name)
            .map_err(|_| format!("tensor {name} is missing"))?;
        if tensor.dtype() != safetensors::Dtype::F32 {
            return Err(format!("tensor {name} is {:?}, not F32", tensor.dtype()));
        }
        if tensor.shape() != shape.as_slice() {
            return Err(format!(
                "tensor {name} has shape {:?}, the model needs {shape:?}",
                tensor.shape()
            ));
        }
    }
    Ok(())
}
