//! Training the LSTM: node- and time-split windows, normalisation fitted on training
//! data, balanced sampling with a positive weight (see `features::balanced_sample`),
//! Adam, and early stopping on validation PR-AUC (the metric we report, and the one
//! that matters for rare failures). The alarm threshold is chosen on validation too.

use std::time::Instant;

use indicatif::ProgressBar;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use shardlet_predictor_api::schema::{feature_names, SCHEMA_VERSION};
use tch::nn::OptimizerConfig;
use tch::{nn, Reduction, Tensor};

use crate::dataset::Fleet;
use crate::features::{balanced_sample, Normalizer, Window, INPUT_WIDTH};
use crate::metrics::{best_f1_threshold, pr_auc};
use crate::model::{LstmModel, ModelMetadata, TrainingSummary};
use crate::split::{Split, SplitConfig};

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub horizon_days: u32,
    pub window_intervals: usize,
    pub hidden_size: usize,
    pub epochs_max: usize,
    /// Epochs without a better validation PR-AUC before stopping.
    pub patience: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub negatives_per_positive: usize,
    pub seed: u64,
    /// Torch intra-op threads.
    pub threads: i32,
}

impl TrainConfig {
    pub fn new(horizon_days: u32, seed: u64) -> Self {
        Self {
            horizon_days,
            window_intervals: 14,
            hidden_size: 32,
            epochs_max: 30,
            patience: 5,
            batch_size: 128,
            learning_rate: 1e-3,
            negatives_per_positive: 20,
            seed,
            // One: with the two cores shared, OpenMP threads spin-waiting on each other
            // cost 40x (measured: 8,800 vs 180 windows/s under a concurrent build).
            threads: 1,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=365).contains(&self.horizon_days),
            "horizon must be 1 to 365 days"
        );
        anyhow::ensure!(
            (2..=90).contains(&self.window_intervals),
            "window must be 2 to 90 intervals"
        );
        anyhow::ensure!(
            (1..=1024).contains(&self.hidden_size),
            "hidden size must be 1 to 1024"
        );
        anyhow::ensure!(
            (1..=1000).contains(&self.epochs_max),
            "epochs must be 1 to 1000"
        );
        anyhow::ensure!(
            (1..=65_536).contains(&self.batch_size),
            "batch size must be 1 to 65536"
        );
        anyhow::ensure!(
            (1..=1000).contains(&self.negatives_per_positive),
            "negatives per positive must be 1 to 1000"
        );
        Ok(())
    }
}

/// Scores windows in bounded chunks (the encoded form of a whole test set can be GBs).
pub fn predict_windows(model: &LstmModel, fleet: &Fleet, windows: &[Window]) -> Vec<f32> {
    const CHUNK_WINDOWS: usize = 8192;
    let mut scores = Vec::with_capacity(windows.len());
    for chunk in windows.chunks(CHUNK_WINDOWS) {
        let encoded =
            model
                .metadata
                .normalizer
                .encode_windows(fleet, chunk, model.metadata.window_intervals);
        scores.extend(model.predict(&encoded));
    }
    scores
}

/// What one training run produced.
pub struct Trained {
    pub model: LstmModel,
    pub split: Split,
    /// Training throughput over all epochs, windows per second (forward + backward).
    pub windows_per_second: f64,
}

pub fn train(
    fleet: &Fleet,
    config: &TrainConfig,
    data_name: &str,
    progress: &ProgressBar,
) -> anyhow::Result<Trained> {
    config.validate()?;
    let started = Instant::now();
    tch::set_num_threads(config.threads);
    tch::manual_seed(config.seed as i64);
    let split_config = SplitConfig::new(config.seed, config.horizon_days);
    let split = Split::build(fleet, &split_config)?;
    let train_positives = split.train.iter().filter(|window| window.label).count();
    let validation_positives = split
        .validation
        .iter()
        .filter(|window| window.label)
        .count();
    anyhow::ensure!(
        train_positives > 0 && validation_positives > 0,
        "no failures to learn from: {train_positives} positive training windows and {validation_positives} positive validation windows (more nodes, more days or a longer horizon needed)"
    );
    let train_nodes = fleet
        .nodes
        .iter()
        .filter(|node| split_config.part_of(&node.serial) == crate::split::Part::Train);
    let normalizer = Normalizer::fit(train_nodes, split.train_last_day);
    let mut model = LstmModel::new(ModelMetadata {
        schema_version: SCHEMA_VERSION,
        model_version: String::new(),
        feature_names: feature_names(),
        window_intervals: config.window_intervals,
        horizon_days: config.horizon_days,
        hidden_size: config.hidden_size,
        normalizer,
        threshold: 0.5,
        split: split_config,
        training: TrainingSummary {
            epochs_run: 0,
            best_epoch: 0,
            train_windows: split.train.len(),
            train_positive_windows: train_positives,
            validation_windows: split.validation.len(),
            validation_pr_auc: 0.0,
            positive_weight: 0.0,
            negatives_per_positive: config.negatives_per_positive,
            seconds: 0.0,
            data: data_name.to_string(),
        },
    });
    // A little weight decay: failures are few, and the LSTM overfits them within epochs.
    let mut optimizer = nn::adam(0.9, 0.999, 1e-4).build(&model.var_store, config.learning_rate)?;
    // A second store of the same shape keeps the best weights seen so far.
    let mut best_store = LstmModel::new(model.metadata.clone()).var_store;
    best_store.copy(&model.var_store)?;
    let mut best_pr_auc = f64::MIN;
    let mut best_epoch = 0;
    let mut epochs_run = 0;
    let mut trained_windows = 0usize;
    let mut training_seconds = 0.0;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let validation_labels: Vec<bool> = split.validation.iter().map(|window| window.label).collect();
    progress.set_length(config.epochs_max as u64);
    for epoch in 1..=config.epochs_max {
        let epoch_started = Instant::now();
        let (sample, positive_weight) =
            balanced_sample(&split.train, config.negatives_per_positive, &mut rng);
        model.metadata.training.positive_weight = f64::from(positive_weight);
        let positive_weight = Tensor::from_slice(&[positive_weight]);
        let mut loss_sum = 0.0;
        let mut batches = 0.0;
        for batch in sample.chunks(config.batch_size) {
            let encoded =
                model
                    .metadata
                    .normalizer
                    .encode_windows(fleet, batch, config.window_intervals);
            let inputs = Tensor::from_slice(&encoded).view([
                batch.len() as i64,
                config.window_intervals as i64,
                INPUT_WIDTH as i64,
            ]);
            let targets: Vec<f32> = batch
                .iter()
                .map(|window| f32::from(u8::from(window.label)))
                .collect();
            let targets = Tensor::from_slice(&targets);
            let loss = model
                .logits(&inputs)
                .binary_cross_entropy_with_logits::<Tensor>(
                    &targets,
                    None,
                    Some(positive_weight.shallow_clone()),
                    Reduction::Mean,
                );
            optimizer.backward_step_clip(&loss, 1.0);
            loss_sum += loss.double_value(&[]);
            batches += 1.0;
        }
        trained_windows += sample.len();
        training_seconds += epoch_started.elapsed().as_secs_f64();
        let validation_scores = predict_windows(&model, fleet, &split.validation);
        let validation_pr_auc = pr_auc(&validation_scores, &validation_labels);
        epochs_run = epoch;
        tracing::info!(
            epoch,
            loss = loss_sum / f64::max(batches, 1.0),
            validation_pr_auc,
            "epoch done"
        );
        progress.set_message(format!(
            "validation PR-AUC {validation_pr_auc:.3} (best {:.3})",
            best_pr_auc.max(validation_pr_auc)
        ));
        progress.inc(1);
        if validation_pr_auc > best_pr_auc {
            best_pr_auc = validation_pr_auc;
            best_epoch = epoch;
            best_store.copy(&model.var_store)?;
        } else if epoch - best_epoch >= config.patience {
            break;
        }
    }
    model.var_store.copy(&best_store)?;
    let validation_scores = predict_windows(&model, fleet, &split.validation);
    model.metadata.threshold = best_f1_threshold(&validation_scores, &validation_labels);
    let seconds = started.elapsed().as_secs_f64();
    model.metadata.training.epochs_run = epochs_run;
    model.metadata.training.best_epoch = best_epoch;
    model.metadata.training.validation_pr_auc = best_pr_auc;
    model.metadata.training.seconds = seconds;
    model.metadata.model_version = format!(
        "lstm-s{SCHEMA_VERSION}-h{}-w{}-seed{}-{}",
        config.horizon_days,
        config.window_intervals,
        config.seed,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
    );
    progress.finish_with_message(format!(
        "best validation PR-AUC {best_pr_auc:.3} at epoch {best_epoch}"
    ));
    Ok(Trained {
        model,
        split,
        windows_per_second: trained_windows as f64 / training_seconds.max(1e-9),
    })
}
