//! The storage node's `/health` report (`shardlet_core::health_report::HealthReport`)
//! mapped onto the schema (the mapping table is in docs/predictor.md). The report comes
//! from another process, so every field is checked and a bad sample is an error, never
//! a panic or a silently wrong row.

use shardlet_core::health_report::HealthReport;

use crate::schema::{check_value, index, FeatureValues, ALL_MISSING, FEATURES, SMART_ATTRIBUTES};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HealthError {
    #[error("invalid /health JSON: {0}")]
    Json(String),
    #[error("invalid /health sample: {0}")]
    Invalid(String),
}

/// Parses one `/health` answer (bytes from another process: errors, never panics).
pub fn parse_report(text: &[u8]) -> Result<HealthReport, HealthError> {
    serde_json::from_slice(text).map_err(|error| HealthError::Json(error.to_string()))
}

fn smart_feature(key: &str) -> Option<usize> {
    SMART_ATTRIBUTES.iter().find_map(|(attribute, feature)| {
        let matches = key == attribute.to_string()
            || key == format!("smart_{attribute}_raw")
            || key == FEATURES[*feature].name;
        matches.then_some(*feature)
    })
}

/// Converts one sample into a schema row.
///
/// Error counters in the schema count errors *during the interval*; `/health` reports
/// totals since the process started. With the `previous` sample of the same node the
/// difference is used; if the node restarted in between (uptime went down, or a total
/// went down) the current totals are the errors since the restart. Without a previous
/// sample the counters are missing. Peer network latency is not in `/health`: the
/// caller (the controller, which measures it) passes it in, or `None`.
pub fn to_schema_row(
    previous: Option<&HealthReport>,
    current: &HealthReport,
    network_latency_ms: Option<f64>,
) -> Result<FeatureValues, HealthError> {
    let invalid = |reason: String| HealthError::Invalid(reason);
    if current.memory_total_bytes > 0 && current.memory_used_bytes > current.memory_total_bytes {
        return Err(invalid(
            "memory_used_bytes exceeds memory_total_bytes".into(),
        ));
    }
    if current.disk.free_bytes > current.disk.capacity_bytes {
        return Err(invalid(
            "disk.free_bytes exceeds disk.capacity_bytes".into(),
        ));
    }
    for (name, value) in [
        (
            "disk.read_bytes_per_second",
            current.disk.read_bytes_per_second,
        ),
        (
            "disk.write_bytes_per_second",
            current.disk.write_bytes_per_second,
        ),
    ] {
        if !value.is_finite() || value < 0.0 {
            return Err(invalid(format!(
                "{name} = {value} must be a non-negative number"
            )));
        }
    }
    let mut values = ALL_MISSING;
    values[index::CPU_UTILIZATION] = current.cpu_utilization as f32;
    if current.memory_total_bytes > 0 {
        values[index::MEMORY_UTILIZATION] =
            (current.memory_used_bytes as f64 / current.memory_total_bytes as f64) as f32;
    }
    values[index::DISK_IO_UTILIZATION] = current.disk.io_utilization as f32;
    values[index::DISK_READ_LATENCY_MS] = current.disk.read_latency_ms as f32;
    values[index::DISK_WRITE_LATENCY_MS] = current.disk.write_latency_ms as f32;
    if let Some(latency) = network_latency_ms {
        values[index::NETWORK_LATENCY_MS] = latency as f32;
    }
    if let Some(previous) = previous {
        let now = &current.errors;
        let before = &previous.errors;
        let restarted = current.uptime_seconds < previous.uptime_seconds
            || now.read_errors < before.read_errors
            || now.write_errors < before.write_errors
            || now.checksum_failures < before.checksum_failures
            || now.fsync_failures < before.fsync_failures;
        let delta = |now: u64, before: u64| if restarted { now } else { now - before } as f32;
        values[index::READ_ERRORS] = delta(now.read_errors, before.read_errors);
        values[index::WRITE_ERRORS] = delta(now.write_errors, before.write_errors);
        values[index::CHECKSUM_FAILURES] = delta(now.checksum_failures, before.checksum_failures);
        values[index::FSYNC_FAILURES] = delta(now.fsync_failures, before.fsync_failures);
    }
    if let Some(smart) = &current.smart {
        for (key, value) in smart {
            if let Some(feature) = smart_feature(key) {
                values[feature] = *value as f32;
            }
        }
    }
    // JSON has no NaN, so every NaN here is a missing value; everything else must be
    // in range (an f64 too large for f32 became infinity and is rejected too).
    for (feature, value) in values.iter().enumerate() {
        check_value(feature, *value).map_err(invalid)?;
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A full `/health` answer as a storage node serves it, with SMART counters.
    fn sample(read_errors: u64, uptime_seconds: u64) -> String {
        format!(
            r#"{{"node_id":1,"version":"0.1.0","uptime_seconds":{uptime_seconds},
            "cpu_utilization":0.25,"memory_used_bytes":4,"memory_total_bytes":16,
            "disk":{{"capacity_bytes":100,"free_bytes":40,"reserve_bytes":0,
            "read_bytes_per_second":1e6,"write_bytes_per_second":2e6,"io_utilization":0.5,
            "read_latency_ms":3.5,"write_latency_ms":4.5}},
            "errors":{{"read_errors":{read_errors},"write_errors":0,"checksum_failures":0,"fsync_failures":0}},
            "smart":{{"5":3,"smart_194_raw":41,"smart_197_pending_sectors":2,"unknown":9}},
            "fragments":{{"count":0,"bytes":0}}}}"#
        )
    }

    #[test]
    fn maps_fields_and_differences_error_totals() {
        let before = parse_report(sample(10, 100).as_bytes()).unwrap();
        let after = parse_report(sample(13, 200).as_bytes()).unwrap();
        let values = to_schema_row(Some(&before), &after, Some(1.5)).unwrap();
        assert_eq!(values[index::CPU_UTILIZATION], 0.25);
        assert_eq!(values[index::MEMORY_UTILIZATION], 0.25);
        assert_eq!(values[index::READ_ERRORS], 3.0);
        assert_eq!(values[index::SMART_5], 3.0);
        assert_eq!(values[index::SMART_194], 41.0);
        assert_eq!(values[index::SMART_197], 2.0);
        assert!(values[index::SMART_188].is_nan());
        assert_eq!(values[index::NETWORK_LATENCY_MS], 1.5);
        // Without a previous sample the interval's error counts are unknown.
        assert!(to_schema_row(None, &after, None).unwrap()[index::READ_ERRORS].is_nan());
    }

    #[test]
    fn a_restart_counts_errors_since_the_restart() {
        let before = parse_report(sample(10, 1000).as_bytes()).unwrap();
        let after = parse_report(sample(2, 50).as_bytes()).unwrap();
        assert_eq!(
            to_schema_row(Some(&before), &after, None).unwrap()[index::READ_ERRORS],
            2.0
        );
    }

    #[test]
    fn bad_samples_are_errors() {
        assert!(parse_report(b"{").is_err());
        assert!(parse_report(br#"{"cpu_utilization":0.1}"#).is_err());
        let mut bad = parse_report(sample(0, 1).as_bytes()).unwrap();
        bad.cpu_utilization = 1.7;
        assert!(to_schema_row(None, &bad, None).is_err());
        let mut bad = parse_report(sample(0, 1).as_bytes()).unwrap();
        bad.memory_used_bytes = 99;
        assert!(to_schema_row(None, &bad, None).is_err());
        let mut bad = parse_report(sample(0, 1).as_bytes()).unwrap();
        bad.disk.read_latency_ms = -1.0;
        assert!(to_schema_row(None, &bad, None).is_err());
        let mut bad = parse_report(sample(0, 1).as_bytes()).unwrap();
        bad.disk.free_bytes = 101;
        assert!(to_schema_row(None, &bad, None).is_err());
        let mut bad = parse_report(sample(0, 1).as_bytes()).unwrap();
        bad.disk.write_bytes_per_second = f64::INFINITY;
        assert!(to_schema_row(None, &bad, None).is_err());
        // Too large for f32: infinity, rejected rather than clamped.
        let mut bad = parse_report(sample(0, 1).as_bytes()).unwrap();
        bad.disk.read_latency_ms = 1e300;
        let error = to_schema_row(None, &bad, None).unwrap_err();
        assert!(
            error.to_string().contains("disk_read_latency_ms"),
            "{error}"
        );
    }

    #[test]
    fn what_a_node_serves_today_maps_with_smart_and_memory_unknown_when_not_reported() {
        // `smart: null` is what every node serves on VMs and containers.
        let mut report = parse_report(sample(0, 1).as_bytes()).unwrap();
        report.smart = None;
        report.memory_total_bytes = 0;
        report.memory_used_bytes = 0;
        let served = serde_json::to_vec(&report).unwrap();
        let values = to_schema_row(None, &parse_report(&served).unwrap(), None).unwrap();
        assert!(values[index::MEMORY_UTILIZATION].is_nan());
        assert!(values[index::NETWORK_LATENCY_MS].is_nan());
        assert!(values[index::SMART_5].is_nan());
        assert_eq!(values[index::DISK_IO_UTILIZATION], 0.5);
        assert_eq!(values[index::DISK_WRITE_LATENCY_MS], 4.5);
    }
}
