//! The properties the fuzz targets of the predictor check (see `shardlet_core::fuzzing`
//! for how checks, targets and the corpus replay fit together): the Backblaze CSV
//! importer, and the model artifact's files up to where libtorch takes over. What
//! libtorch itself parses (the weights' values, once names, dtypes and shapes are
//! checked) is not fuzzed here: it would link libtorch into the fuzz build.

use std::path::Path;

use shardlet_core::fuzzing::{Input, Target};
use shardlet_predictor_api::schema::{
    check_value, feature_names, HealthRow, FEATURES, FEATURE_COUNT, SCHEMA_VERSION,
};

use crate::backblaze::{import_reader, ImportError};
use crate::dates::{format_day, parse_day};
use crate::features::Normalizer;
use crate::model_files::{
    check_weights, expected_tensors, parse_metadata, ModelMetadata, TrainingSummary,
    HIDDEN_SIZE_MAX, HORIZON_DAYS_MAX, WINDOW_INTERVALS_MAX,
};
use crate::split::SplitConfig;

/// The fuzz targets whose checks live here.
pub const TARGETS: &[Target] = &[
    ("backblaze_csv", backblaze_csv),
    ("model_files", model_files),
];

/// Longest serial or model the importer accepts (its documented limit).
const IDENTIFIER_BYTES_MAX: usize = 256;

/// A CSV file in the Backblaze format. Every row the importer hands on (also those
/// before a malformed line stops it) satisfies the documented limits; a file that
/// imports whole writes back to CSV that imports to the same rows.
pub fn backblaze_csv(data: &[u8]) {
    let mut rows = Vec::new();
    let result = import_reader(Path::new("fuzz.csv"), data, &mut |row| rows.push(row));
    for row in &rows {
        check_row(row);
    }
    match result {
        Ok(count) => assert_eq!(count, rows.len() as u64),
        Err(error) => {
            assert!(matches!(error, ImportError::Malformed { .. }), "{error}");
            return;
        }
    }
    let written = write_csv(&rows);
    let mut reread = Vec::new();
    import_reader(Path::new("written.csv"), &written[..], &mut |row| {
        reread.push(row)
    })
    .unwrap_or_else(|error| {
        panic!(
            "written rows do not import: {error}\n{}",
            String::from_utf8_lossy(&written)
        )
    });
    assert_eq!(reread.len(), rows.len());
    for (again, row) in reread.iter().zip(&rows) {
        assert_eq!(
            (
                &again.serial,
                &again.model,
                again.day,
                again.capacity_bytes,
                again.failure
            ),
            (
                &row.serial,
                &row.model,
                row.day,
                row.capacity_bytes,
                row.failure
            )
        );
        let bits = |values: &[f32; FEATURE_COUNT]| values.map(f32::to_bits);
        assert_eq!(bits(&again.values), bits(&row.values), "{}", row.serial);
    }
}

fn check_row(row: &HealthRow) {
    assert!(!row.serial.is_empty() && row.serial.len() <= IDENTIFIER_BYTES_MAX);
    assert_eq!(row.serial.trim(), row.serial);
    assert!(row.model.len() <= IDENTIFIER_BYTES_MAX);
    assert_eq!(row.model.trim(), row.model);
    assert_eq!(parse_day(&format_day(row.day)), Ok(row.day), "a real day");
    assert!(row
        .capacity_bytes
        .is_none_or(|bytes| bytes <= i64::MAX as u64));
    for (feature, value) in row.values.iter().enumerate() {
        assert!(value.is_nan() || value.is_finite(), "{value}");
        assert_eq!(check_value(feature, *value), Ok(()));
    }
}

/// Rows in the importer's format: every schema feature as its own column, missing
/// values as empty cells.
fn write_csv(rows: &[HealthRow]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "date",
        "serial_number",
        "model",
        "capacity_bytes",
        "failure",
    ];
    header.extend(FEATURES.iter().map(|spec| spec.csv_column));
    let written = writer.write_record(&header).and_then(|()| {
        rows.iter().try_for_each(|row| {
            let mut record = vec![
                format_day(row.day),
                row.serial.clone(),
                row.model.clone(),
                row.capacity_bytes
                    .map_or(String::new(), |bytes| bytes.to_string()),
                u8::from(row.failure).to_string(),
            ];
            record.extend(row.values.iter().map(|value| {
                if value.is_nan() {
                    String::new()
                } else {
                    value.to_string()
                }
            }));
            writer.write_record(&record)
        })
    });
    written.unwrap_or_else(|error| panic!("writing CSV to memory: {error}"));
    writer
        .into_inner()
        .unwrap_or_else(|error| panic!("writing CSV to memory: {error}"))
}

/// The model artifact as read before libtorch. The first byte picks the file:
/// - 0: `model.json`: what parses has this build's schema and features, a valid
///   normaliser and a shape inside the bounds, and writes back to the same metadata;
/// - 1: `weights.safetensors` for a model of hidden size 1 to 4: what passes holds
///   exactly the model's tensors, each F32 of its exact shape;
/// - 2: the same, starting from a valid weights file with one byte replaced.
pub fn model_files(data: &[u8]) {
    let mut input = Input::new(data);
    let kind = input.byte();
    if kind % 3 == 0 {
        metadata(input.rest());
        return;
    }
    let metadata = sample_metadata(1 + usize::from(input.byte() % 4));
    let weights = if kind % 3 == 1 {
        input.rest().to_vec()
    } else {
        let mut weights = valid_weights(&metadata);
        assert_eq!(check_weights(&weights, &metadata), Ok(()), "a valid file");
        let position = input.number(2) as usize % weights.len();
        weights[position] = input.byte();
        weights
    };
    if check_weights(&weights, &metadata).is_err() {
        return;
    }
    let file = safetensors::SafeTensors::deserialize(&weights)
        .unwrap_or_else(|error| panic!("accepted weights do not parse: {error:?}"));
    let expected = expected_tensors(&metadata);
    assert_eq!(file.len(), expected.len());
    for (name, shape) in &expected {
        let tensor = file
            .tensor(name)
            .unwrap_or_else(|_| panic!("accepted weights lack {name}"));
        assert_eq!(tensor.dtype(), safetensors::Dtype::F32);
        assert_eq!(tensor.shape(), shape.as_slice());
        assert_eq!(tensor.data().len(), shape.iter().product::<usize>() * 4);
    }
}

fn metadata(text: &[u8]) {
    let Ok(metadata) = parse_metadata(text) else {
        return;
    };
    assert_eq!(metadata.schema_version, SCHEMA_VERSION);
    assert_eq!(metadata.feature_names, feature_names());
    let normalizer = &metadata.normalizer;
    assert_eq!(normalizer.mean.len(), FEATURE_COUNT);
    assert_eq!(normalizer.standard_deviation.len(), FEATURE_COUNT);
    assert!(normalizer.mean.iter().all(|value| value.is_finite()));
    assert!(normalizer
        .standard_deviation
        .iter()
        .all(|value| value.is_finite() && *value > 0.0));
    assert!((1..=WINDOW_INTERVALS_MAX).contains(&metadata.window_intervals));
    assert!((1..=HIDDEN_SIZE_MAX).contains(&metadata.hidden_size));
    assert!((1..=HORIZON_DAYS_MAX).contains(&metadata.horizon_days));
    assert!(metadata.threshold.is_finite());
    let written = serde_json::to_vec_pretty(&metadata).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(parse_metadata(&written), Ok(metadata), "round trip");
}

/// Metadata of an untrained model of `hidden_size`.
fn sample_metadata(hidden_size: usize) -> ModelMetadata {
    ModelMetadata {
        schema_version: SCHEMA_VERSION,
        model_version: "fuzz".into(),
        feature_names: feature_names(),
        window_intervals: 3,
        horizon_days: 7,
        hidden_size,
        normalizer: Normalizer {
            mean: vec![0.0; FEATURE_COUNT],
            standard_deviation: vec![1.0; FEATURE_COUNT],
        },
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
            negatives_per_positive: 1,
            seconds: 0.0,
            data: "none".into(),
        },
    }
}

/// A weights file with every expected tensor, zeros.
fn valid_weights(metadata: &ModelMetadata) -> Vec<u8> {
    let tensors = expected_tensors(metadata);
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, shape)| vec![0u8; shape.iter().product::<usize>() * 4])
        .collect();
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, shape), bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .unwrap_or_else(|error| panic!("{error:?}"));
            (name.as_str(), view)
        })
        .collect();
    safetensors::tensor::serialize(views, &None).unwrap_or_else(|error| panic!("{error:?}"))
}
