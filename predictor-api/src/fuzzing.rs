//! The properties the fuzz targets of the predictor's contract check (see
//! `shardlet_core::fuzzing` for how checks, targets and the corpus replay fit together):
//! a storage node's `/health` report as the controller maps it, and the sidecar's wire
//! bodies on both sides.

use shardlet_core::fuzzing::{Input, Target};
use shardlet_core::health_report::HealthReport;

use crate::api::{
    validate, ErrorResponse, HealthResponse, ScoreRequest, ScoreResponse, BATCH_NODES_MAX,
    WINDOW_INTERVALS_MAX,
};
use crate::health::{parse_report, to_schema_row, HealthError};
use crate::schema::{index, FeatureValues, FEATURES, FEATURE_COUNT, SCHEMA_VERSION};

/// The fuzz targets whose checks live here.
pub const TARGETS: &[Target] = &[
    ("health_report", health_report),
    ("predictor_wire", predictor_wire),
];

/// A `/health` answer, and optionally the node's previous one after a `0xff` byte (never
/// part of UTF-8, so never part of JSON). What parses writes back to the same report;
/// every row the mapping produces has each feature missing or inside the schema's range,
/// interval error counts only with a previous sample, and memory use at most 1.
pub fn health_report(data: &[u8]) {
    let mut parts = data.splitn(2, |byte| *byte == 0xff);
    let current = parts.next().unwrap_or_default();
    let previous = parts.next().and_then(|bytes| parse_report(bytes).ok());
    let report = match parse_report(current) {
        Ok(report) => report,
        Err(error) => {
            assert!(matches!(error, HealthError::Json(_)));
            return;
        }
    };
    let written = serde_json::to_vec(&report).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(parse_report(&written).as_ref(), Ok(&report), "round trip");
    for latency in [None, Some(f64::from(current.len() as u32) / 7.0)] {
        if let Ok(row) = to_schema_row(None, &report, latency) {
            check_row(&row);
            for feature in [
                index::READ_ERRORS,
                index::WRITE_ERRORS,
                index::FSYNC_FAILURES,
            ] {
                assert!(
                    row[feature].is_nan(),
                    "an interval count without a previous sample"
                );
            }
            assert_eq!(
                row[index::CPU_UTILIZATION].to_bits(),
                (report.cpu_utilization as f32).to_bits()
            );
        }
        if let Some(previous) = &previous {
            if let Ok(row) = to_schema_row(Some(previous), &report, latency) {
                check_row(&row);
                // Totals that went down mean the node restarted: the totals are the
                // errors since then. Otherwise the interval's count is the difference.
                let (now, before) = (&report.errors, &previous.errors);
                let restarted = report.uptime_seconds < previous.uptime_seconds
                    || now.read_errors < before.read_errors
                    || now.write_errors < before.write_errors
                    || now.checksum_failures < before.checksum_failures
                    || now.fsync_failures < before.fsync_failures;
                let expected = if restarted {
                    now.read_errors
                } else {
                    now.read_errors - before.read_errors
                };
                assert_eq!(row[index::READ_ERRORS], expected as f32);
            }
        }
    }
    // The same report, a moment later, never counts negative errors.
    let mut later = report.clone();
    later.uptime_seconds = later.uptime_seconds.saturating_add(1);
    if let Ok(row) = to_schema_row(Some(&report), &later, None) {
        check_row(&row);
        assert_eq!(row[index::READ_ERRORS], 0.0);
    }
    check_limits_of_refusals(&report);
}

/// A row the mapping returned: every feature missing or finite and inside its range.
fn check_row(row: &FeatureValues) {
    for (feature, value) in row.iter().enumerate() {
        let spec = &FEATURES[feature];
        assert!(
            value.is_nan() || (*value >= spec.minimum && *value <= spec.maximum),
            "{} = {value} outside [{}, {}]",
            spec.name,
            spec.minimum,
            spec.maximum
        );
    }
    let memory = row[index::MEMORY_UTILIZATION];
    assert!(memory.is_nan() || memory <= 1.0);
}

/// A report the mapping refuses has a reason the documentation names.
fn check_limits_of_refusals(report: &HealthReport) {
    if let Err(error) = to_schema_row(None, report, None) {
        assert!(matches!(error, HealthError::Invalid(_)), "{error}");
    }
}

/// The sidecar's bodies. The first byte picks the body, the second the model's window
/// length for a scoring request, the rest is JSON:
/// - 0: `POST /v1/score` as the sidecar validates it: what passes has 1 to
///   `BATCH_NODES_MAX` windows of exactly the model's length, `FEATURE_COUNT` values per
///   interval, each missing or in range, and becomes exactly those rows;
/// - 1: `GET /health` as the client checks it (schema and window bounds);
/// - 2, 3: a score and an error answer as the client reads them.
///
/// Every body that parses writes back to JSON that parses to the same value.
pub fn predictor_wire(data: &[u8]) {
    let mut input = Input::new(data);
    let kind = input.byte();
    let window_intervals = usize::from(input.byte() % 8);
    let body = input.rest();
    match kind % 4 {
        0 => {
            let Some(request) = json_round_trip::<ScoreRequest>(body) else {
                return;
            };
            let Ok(rows) = validate(&request, window_intervals) else {
                return;
            };
            assert_eq!(request.schema_version, SCHEMA_VERSION);
            assert!(!rows.is_empty() && rows.len() <= BATCH_NODES_MAX);
            assert_eq!(rows.len(), request.windows.len());
            for (window, rows) in request.windows.iter().zip(&rows) {
                assert_eq!(rows.len(), window_intervals);
                assert_eq!(window.intervals.len(), window_intervals);
                for (interval, row) in window.intervals.iter().zip(rows) {
                    assert_eq!(interval.len(), FEATURE_COUNT);
                    check_row(row);
                    for (value, feature) in interval.iter().zip(row) {
                        let expected = value.map_or(f32::NAN, |value| value as f32);
                        assert_eq!(expected.to_bits(), feature.to_bits());
                    }
                }
            }
        }
        1 => {
            let Some(health) = json_round_trip::<HealthResponse>(body) else {
                return;
            };
            if health.check().is_ok() {
                assert_eq!(health.schema_version, SCHEMA_VERSION);
                assert!((1..=WINDOW_INTERVALS_MAX).contains(&health.window_intervals));
            }
        }
        2 => {
            json_round_trip::<ScoreResponse>(body);
        }
        _ => {
            json_round_trip::<ErrorResponse>(body);
        }
    }
}

/// `T` parsed from `bytes`, after checking it writes back to JSON that parses to the
/// same `T` and writes the same bytes again.
fn json_round_trip<T>(bytes: &[u8]) -> Option<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let value = serde_json::from_slice::<T>(bytes).ok()?;
    let written = serde_json::to_vec(&value).unwrap_or_else(|error| panic!("{error}"));
    let reread: T = serde_json::from_slice(&written)
        .unwrap_or_else(|error| panic!("written JSON does not parse: {error}"));
    assert_eq!(reread, value);
    let rewritten = serde_json::to_vec(&reread).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(rewritten, written);
    Some(value)
}
