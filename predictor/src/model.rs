//! The LSTM and its on-disk artifact.
//!
//! Architecture: one LSTM layer over the window (each interval encoded as values and
//! masks), then a linear head over [last hidden state, last interval's encoding, window
//! summaries]. The skip connection lets the head use the latest reading directly (what
//! the logistic baseline sees) while the LSTM contributes the trend. The summaries (per
//! feature: mean, maximum and least-squares slope of the present normalised values over
//! the window) hand the head the aggregates a few dozen failed training nodes are too
//! few to teach the LSTM: a +1 °C a day drift buried in ±1.5 °C daily noise, or error
//! bursts on some days of the window but not the last.
//!
//! Artifact: a directory with `weights.safetensors` (the `VarStore`) and `model.json`
//! (`ModelMetadata`: schema version, feature names, shape, normaliser, threshold,
//! split and training summary). Loading checks the metadata, then the weights file's
//! header against it ([`crate::model_files`]), before libtorch reads a weight.

use std::path::Path;

use shardlet_predictor_api::schema::FEATURE_COUNT;
use tch::nn::{self, Module, RNN};
use tch::{Device, Kind, Tensor};

use crate::features::INPUT_WIDTH;
use crate::model_files::{
    check_weights, parse_metadata, MetadataError, METADATA_BYTES_MAX, SUMMARY_WIDTH,
    WEIGHTS_BYTES_MAX,
};
pub use crate::model_files::{ModelMetadata, TrainingSummary, METADATA_FILE, WEIGHTS_FILE};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error(
        "{path}: model was trained on schema version {found}, this build speaks schema version {expected}; retrain the model"
    )]
    SchemaVersion {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Torch { path: String, source: tch::TchError },
}

pub struct LstmModel {
    pub var_store: nn::VarStore,
    lstm: nn::LSTM,
    head: nn::Linear,
    pub metadata: ModelMetadata,
}

/// Per feature, over the intervals where it is present: mean, maximum and
/// least-squares slope (per interval) of the normalised value; 0 where the feature is
/// present fewer than once (mean, maximum) or twice (slope). `[batch, SUMMARY_WIDTH]`.
fn window_summaries(inputs: &Tensor) -> Tensor {
    let features = FEATURE_COUNT as i64;
    let values = inputs.narrow(2, 0, features);
    let masks = inputs.narrow(2, features, features);
    let present = masks.sum_dim_intlist(1, false, Kind::Float);
    let any_present = present.clamp_max(1.0);
    let present_at_least_one = present.clamp_min(1.0);
    let mean = (&values * &masks).sum_dim_intlist(1, false, Kind::Float) / &present_at_least_one;
    // Absent intervals get a value below any normalised one (clipped at -10), so they
    // never win the maximum; a feature absent all window yields 0.
    let absent_penalty: Tensor = (masks.neg() + 1.0) * -11.0;
    let maximum = (&values * &masks + absent_penalty).amax([1i64], false) * &any_present;
    let steps = inputs.size()[1];
    let time = Tensor::arange(steps, (Kind::Float, inputs.device())).view([1, steps, 1]);
    let time_mean = (&time * &masks).sum_dim_intlist(1, false, Kind::Float) / &present_at_least_one;
    let time_centred = (&time - time_mean.unsqueeze(1)) * &masks;
    let value_centred = (&values - mean.unsqueeze(1)) * &masks;
    let covariance = (&time_centred * &value_centred).sum_dim_intlist(1, false, Kind::Float);
    let time_variance = (&time_centred * &time_centred).sum_dim_intlist(1, false, Kind::Float);
    // Zero variance (fewer than two present intervals) gives a zero slope, not a NaN.
    let slope = &covariance / time_variance.clamp_min(1e-6);
    Tensor::cat(&[mean, maximum, slope], 1)
}

impl LstmModel {
    /// A freshly initialised model (weights from torch's current seed).
    pub fn new(metadata: ModelMetadata) -> Self {
        let var_store = nn::VarStore::new(Device::Cpu);
        let root = var_store.root();
        let hidden = metadata.hidden_size as i64;
        let lstm = nn::lstm(
            &root / "lstm",
            INPUT_WIDTH as i64,
            hidden,
            nn::RNNConfig {
                batch_first: true,
                ..Default::default()
            },
        );
        let head = nn::linear(
            &root / "head",
            hidden + (INPUT_WIDTH + SUMMARY_WIDTH) as i64,
            1,
            Default::default(),
        );
        Self {
            var_store,
            lstm,
            head,
            metadata,
        }
    }

    /// Logits for a batch `[batch, window_intervals, INPUT_WIDTH]`.
    pub fn logits(&self, inputs: &Tensor) -> Tensor {
        let (output, _) = self.lstm.seq(inputs);
        let last_hidden = output.select(1, -1);
        let last_interval = inputs.select(1, -1);
        let summaries = window_summaries(inputs);
        self.head
            .forward(&Tensor::cat(&[last_hidden, last_interval, summaries], 1))
            .squeeze_dim(1)
    }

    /// Failure probabilities for encoded windows (flat, `window_intervals *
    /// INPUT_WIDTH` numbers each), in batches, without autograd.
    pub fn predict(&self, encoded: &[f32]) -> Vec<f32> {
        let window_numbers = self.metadata.window_intervals * INPUT_WIDTH;
        let mut probabilities = Vec::with_capacity(encoded.len() / window_numbers.max(1));
        const BATCH_WINDOWS: usize = 4096;
        tch::no_grad(|| {
            for chunk in encoded.chunks(BATCH_WINDOWS * window_numbers) {
                let count = (chunk.len() / window_numbers) as i64;
                let inputs = Tensor::from_slice(chunk).view([
                    count,
                    self.metadata.window_intervals as i64,
                    INPUT_WIDTH as i64,
                ]);
                let output = self.logits(&inputs).sigmoid().to_kind(Kind::Float);
                let values: Vec<f32> = Vec::try_from(&output).unwrap_or_default();
                probabilities.extend(values);
            }
        });
        probabilities
    }

    /// Writes the artifact. Crash safety: everything goes to `<dir>.tmp` first and is
    /// fsynced; then an existing `<dir>` is renamed to `<dir>.old`, `<dir>.tmp` renamed
    /// to `<dir>`, and the parent directory fsynced. A crash leaves either the old model
    /// (at `<dir>` or, between the two renames, at `<dir>.old`) or the complete new one;
    /// never a mix of old weights and new metadata.
    pub fn save(&self, directory: &Path) -> Result<(), ModelError> {
        let path_text = directory.display().to_string();
        let io = |source| ModelError::Io {
            path: path_text.clone(),
            source,
        };
        let temporary = directory.with_extension("tmp");
        let old = directory.with_extension("old");
        if temporary.exists() {
            std::fs::remove_dir_all(&temporary).map_err(io)?;
        }
        std::fs::create_dir_all(&temporary).map_err(io)?;
        let weights = temporary.join(WEIGHTS_FILE);
        self.var_store
            .save(&weights)
            .map_err(|source| ModelError::Torch {
                path: path_text.clone(),
                source,
            })?;
        let metadata = serde_json::to_vec_pretty(&self.metadata)
            .map_err(|error| io(std::io::Error::other(error)))?;
        std::fs::write(temporary.join(METADATA_FILE), metadata).map_err(io)?;
        for file in [WEIGHTS_FILE, METADATA_FILE] {
            std::fs::File::open(temporary.join(file))
                .and_then(|file| file.sync_all())
                .map_err(io)?;
        }
        if directory.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(io)?;
            }
            std::fs::rename(directory, &old).map_err(io)?;
        }
        std::fs::rename(&temporary, directory).map_err(io)?;
        if let Some(parent) = directory
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::File::open(parent)
                .and_then(|file| file.sync_all())
                .map_err(io)?;
        }
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io)?;
        }
        Ok(())
    }

    /// Reads only the metadata, checking it is one this build can use.
    pub fn load_metadata(directory: &Path) -> Result<ModelMetadata, ModelError> {
        let path = directory.join(METADATA_FILE);
        let path_text = path.display().to_string();
        let invalid = |reason: String| ModelError::Invalid {
            path: path_text.clone(),
            reason,
        };
        let io = |source| ModelError::Io {
            path: path_text.clone(),
            source,
        };
        let length = std::fs::metadata(&path).map_err(io)?.len();
        if length > METADATA_BYTES_MAX {
            return Err(invalid(format!(
                "{length} bytes; at most {METADATA_BYTES_MAX}"
            )));
        }
        let text = std::fs::read(&path).map_err(io)?;
        parse_metadata(&text).map_err(|error| match error {
            MetadataError::Invalid(reason) => invalid(reason),
            MetadataError::SchemaVersion { found, expected } => ModelError::SchemaVersion {
                path: path_text.clone(),
                found,
                expected,
            },
        })
    }

    /// Loads an artifact written by `save`.
    pub fn load(directory: &Path) -> Result<Self, ModelError> {
        let metadata = Self::load_metadata(directory)?;
        let weights = directory.join(WEIGHTS_FILE);
        let weights_text = weights.display().to_string();
        let io = |source| ModelError::Io {
            path: weights_text.clone(),
            source,
        };
        let length = std::fs::metadata(&weights).map_err(io)?.len();
        if length > WEIGHTS_BYTES_MAX {
            return Err(ModelError::Invalid {
                path: weights_text.clone(),
                reason: format!("{length} bytes; at most {WEIGHTS_BYTES_MAX}"),
            });
        }
        // tch reads the file again below; one who can change it in between can change
        // model.json too, so this check guards against damage and mistakes, not them.
        check_weights(&std::fs::read(&weights).map_err(io)?, &metadata).map_err(|reason| {
            ModelError::Invalid {
                path: weights_text.clone(),
                reason,
            }
        })?;
        let mut model = Self::new(metadata);
        model
            .var_store
            .load(&weights)
            .map_err(|source| ModelError::Torch {
                path: weights.display().to_string(),
                source,
            })?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn summary(inputs: &[f32], steps: i64) -> Vec<f32> {
        let tensor = Tensor::from_slice(inputs).view([1, steps, INPUT_WIDTH as i64]);
        Vec::try_from(&window_summaries(&tensor).view([-1])).unwrap()
    }

    #[test]
    fn summaries_use_only_present_intervals() {
        // Feature 0 present on intervals 0, 1 and 3 with values 1, 3, 7 (a slope of 2
        // per interval); feature 1 present once (value 5); feature 2 never present but
        // carrying a stray value, which must be ignored.
        let steps = 4;
        let mut inputs = vec![0f32; steps * INPUT_WIDTH];
        for (step, value) in [(0, 1.0), (1, 3.0), (3, 7.0)] {
            inputs[step * INPUT_WIDTH] = value;
            inputs[step * INPUT_WIDTH + FEATURE_COUNT] = 1.0;
        }
        inputs[2 * INPUT_WIDTH + 1] = 5.0;
        inputs[2 * INPUT_WIDTH + FEATURE_COUNT + 1] = 1.0;
        inputs[2 * INPUT_WIDTH + 2] = 9.0;
        let out = summary(&inputs, steps as i64);
        assert_eq!(out.len(), SUMMARY_WIDTH);
        let (mean, rest) = out.split_at(FEATURE_COUNT);
        let (maximum, slope) = rest.split_at(FEATURE_COUNT);
        let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
        assert!(close(mean[0], 11.0 / 3.0), "mean {}", mean[0]);
        assert!(close(maximum[0], 7.0), "maximum {}", maximum[0]);
        assert!(close(slope[0], 2.0), "slope {}", slope[0]);
        assert!(close(mean[1], 5.0) && close(maximum[1], 5.0) && close(slope[1], 0.0));
        assert!(close(mean[2], 0.0) && close(maximum[2], 0.0) && close(slope[2], 0.0));
    }

    #[test]
    fn maximum_of_negative_values_is_not_the_padding() {
        let steps = 3;
        let mut inputs = vec![0f32; steps * INPUT_WIDTH];
        inputs[INPUT_WIDTH] = -2.0;
        inputs[INPUT_WIDTH + FEATURE_COUNT] = 1.0;
        let out = summary(&inputs, steps as i64);
        assert!(
            (out[FEATURE_COUNT] + 2.0).abs() < 1e-6,
            "{}",
            out[FEATURE_COUNT]
        );
    }
}
