//! The one time-series schema for node health (documented in docs/predictor.md).
//!
//! A *row* is one node's health over one interval (a day for Backblaze data, a scrape
//! period for live nodes). Every feature may be missing: in memory a missing value is
//! `NaN`, on the wire it is `null`, in CSV an empty cell. The model sees each feature
//! twice: its normalised value (0 when missing) and a presence mask (1 present, 0
//! missing), so "this disk does not report SMART 188" is information, not a fake zero.

/// Bumped whenever a feature is added, removed, reordered or changes meaning. Models
/// carry the version they were trained on and refuse to load under another one.
pub const SCHEMA_VERSION: u32 = 1;

/// Number of features per interval.
pub const FEATURE_COUNT: usize = 18;

/// One interval's features in schema order; `NaN` means missing.
pub type FeatureValues = [f32; FEATURE_COUNT];

/// An interval where nothing is known.
pub const ALL_MISSING: FeatureValues = [f32::NAN; FEATURE_COUNT];

/// How values of a feature are scaled before normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Used as is (fractions, temperatures).
    Linear,
    /// `ln(1 + x)`: counters and latencies span orders of magnitude.
    Log,
}

/// One feature of the schema.
#[derive(Clone, Copy, Debug)]
pub struct FeatureSpec {
    /// Name in the schema, the JSON API and the model metadata.
    pub name: &'static str,
    /// Column of the Backblaze-format CSV that carries it.
    pub csv_column: &'static str,
    pub scale: Scale,
    /// Inclusive range of valid values; anything outside is rejected as bad input.
    pub minimum: f32,
    pub maximum: f32,
}

const COUNTER_MAXIMUM: f32 = 1.0e12;
const LATENCY_MS_MAXIMUM: f32 = 1.0e7;

const fn feature(
    name: &'static str,
    csv_column: &'static str,
    scale: Scale,
    minimum: f32,
    maximum: f32,
) -> FeatureSpec {
    FeatureSpec {
        name,
        csv_column,
        scale,
        minimum,
        maximum,
    }
}

/// The schema, in order. Indices are stable within a `SCHEMA_VERSION`.
pub const FEATURES: [FeatureSpec; FEATURE_COUNT] = [
    feature(
        "cpu_utilization",
        "cpu_utilization",
        Scale::Linear,
        0.0,
        1.0,
    ),
    feature(
        "memory_utilization",
        "memory_utilization",
        Scale::Linear,
        0.0,
        1.0,
    ),
    feature(
        "disk_io_utilization",
        "io_utilization",
        Scale::Linear,
        0.0,
        1.0,
    ),
    feature(
        "disk_read_latency_ms",
        "read_latency_ms",
        Scale::Log,
        0.0,
        LATENCY_MS_MAXIMUM,
    ),
    feature(
        "disk_write_latency_ms",
        "write_latency_ms",
        Scale::Log,
        0.0,
        LATENCY_MS_MAXIMUM,
    ),
    feature(
        "read_errors",
        "read_errors",
        Scale::Log,
        0.0,
        COUNTER_MAXIMUM,
    ),
    feature(
        "write_errors",
        "write_errors",
        Scale::Log,
        0.0,
        COUNTER_MAXIMUM,
    ),
    feature(
        "checksum_failures",
        "checksum_failures",
        Scale::Log,
        0.0,
        COUNTER_MAXIMUM,
    ),
    feature(
        "fsync_failures",
        "fsync_failures",
        Scale::Log,
        0.0,
        COUNTER_MAXIMUM,
    ),
    feature(
        "network_latency_ms",
        "network_latency_ms",
        Scale::Log,
        0.0,
        LATENCY_MS_MAXIMUM,
    ),
    feature(
        "smart_5_reallocated_sectors",
        "smart_5_raw",
        Scale::Log,
        0.0,
        COUNTER_MAXIMUM,
    ),
    feature(
        "smart_187_reported_uncorrectable",
        "smart_187_raw",
        Scale::Log,
        0.0,
        COUNTER_MAXIMUM,
    ),
    feature(
        "smart_188_command_timeouts",
        "smart_188_raw",
        Scale::Log,
        0.0,
        COUNTER_MAXIMUM,
    ),
    feature(
        "smart_197_pending_sectors",
        "smart_197_raw",
        Scale::Log,
        0.0,
        COUNTER_MAXIMUM,
    ),
    feature(
        "smart_198_offline_uncorrectable",
        "smart_198_raw",
        Scale::Log,
        0.0,
        COUNTER_MAXIMUM,
    ),
    feature(
        "smart_199_crc_errors",
        "smart_199_raw",
        Scale::Log,
        0.0,
        COUNTER_MAXIMUM,
    ),
    feature(
        "smart_9_power_on_hours",
        "smart_9_raw",
        Scale::Log,
        0.0,
        1.0e7,
    ),
    feature(
        "smart_194_temperature_celsius",
        "smart_194_raw",
        Scale::Linear,
        -40.0,
        200.0,
    ),
];

/// Indices of the features, so code reads `values[index::SMART_5]`, not `values[10]`.
pub mod index {
    pub const CPU_UTILIZATION: usize = 0;
    pub const MEMORY_UTILIZATION: usize = 1;
    pub const DISK_IO_UTILIZATION: usize = 2;
    pub const DISK_READ_LATENCY_MS: usize = 3;
    pub const DISK_WRITE_LATENCY_MS: usize = 4;
    pub const READ_ERRORS: usize = 5;
    pub const WRITE_ERRORS: usize = 6;
    pub const CHECKSUM_FAILURES: usize = 7;
    pub const FSYNC_FAILURES: usize = 8;
    pub const NETWORK_LATENCY_MS: usize = 9;
    pub const SMART_5: usize = 10;
    pub const SMART_187: usize = 11;
    pub const SMART_188: usize = 12;
    pub const SMART_197: usize = 13;
    pub const SMART_198: usize = 14;
    pub const SMART_199: usize = 15;
    pub const SMART_9: usize = 16;
    pub const SMART_194: usize = 17;
}

/// SMART attribute number of each SMART feature, in the Backblaze CSV's column order
/// (what `/health` reports as `smart_<n>_raw` or `<n>`).
pub const SMART_ATTRIBUTES: [(u32, usize); 8] = [
    (5, index::SMART_5),
    (9, index::SMART_9),
    (187, index::SMART_187),
    (188, index::SMART_188),
    (194, index::SMART_194),
    (197, index::SMART_197),
    (198, index::SMART_198),
    (199, index::SMART_199),
];

/// The SMART attributes of the rule operators use: any raw value above zero alarms.
pub const SMART_RULE_FEATURES: [usize; 5] = [
    index::SMART_5,
    index::SMART_187,
    index::SMART_188,
    index::SMART_197,
    index::SMART_198,
];

/// Feature names in schema order (stored in model metadata and compared on load).
pub fn feature_names() -> Vec<String> {
    FEATURES.iter().map(|spec| spec.name.to_string()).collect()
}

/// Checks one value against its feature's range; `NaN` (missing) is always valid.
pub fn check_value(feature_index: usize, value: f32) -> Result<(), String> {
    let spec = &FEATURES[feature_index];
    if value.is_nan() {
        return Ok(());
    }
    if !value.is_finite() || value < spec.minimum || value > spec.maximum {
        return Err(format!(
            "{} = {value} is outside [{}, {}]",
            spec.name, spec.minimum, spec.maximum
        ));
    }
    Ok(())
}

/// One node's health over one interval, as read from any source.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthRow {
    /// Stable identity of the node/disk (Backblaze: the drive serial number).
    pub serial: String,
    pub model: String,
    /// Day number (days since 1970-01-01) of the interval.
    pub day: i32,
    pub capacity_bytes: Option<u64>,
    /// Backblaze semantics: 1 on the last day a drive reports before it failed.
    pub failure: bool,
    pub values: FeatureValues,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_match_feature_names() {
        assert_eq!(FEATURES[index::SMART_5].csv_column, "smart_5_raw");
        assert_eq!(FEATURES[index::SMART_194].csv_column, "smart_194_raw");
        assert_eq!(
            FEATURES[index::NETWORK_LATENCY_MS].name,
            "network_latency_ms"
        );
        assert_eq!(FEATURES[index::FSYNC_FAILURES].name, "fsync_failures");
    }

    #[test]
    fn range_check_rejects_out_of_range_and_accepts_missing() {
        assert!(check_value(index::CPU_UTILIZATION, 1.5).is_err());
        assert!(check_value(index::CPU_UTILIZATION, f32::INFINITY).is_err());
        assert!(check_value(index::SMART_5, -1.0).is_err());
        assert!(check_value(index::SMART_5, f32::NAN).is_ok());
        assert!(check_value(index::SMART_194, 45.0).is_ok());
    }
}
