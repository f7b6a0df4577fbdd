//! The storage node's `GET /health` report: one wire type for the node that serves it,
//! the controller that probes it, and the predictor mapping that turns it into a
//! schema row (`shardlet-predictor-api::health`).
//!
//! Why here and not in the predictor's API crate: the report is the storage node's
//! contract, and the storage node must not depend on anything of the predictor (it
//! knows nothing of who reads its health). Core is the one crate every side already
//! depends on, and the report is plain data: measuring it (`/proc`, `statvfs`) stays
//! in the storage node.
//!
//! The JSON shape is stable: field names and order are what nodes have always served,
//! and `serialises_in_the_served_field_order` pins them. Fields are only ever added, at
//! the end and with `#[serde(default)]`, so a reader of either age parses a report of
//! either age (serde ignores fields it does not know): `writes_refused` was added so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One `/health` sample of one storage node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HealthReport {
    /// The node's id in the cluster layout; 0 until the node has learnt it (ids start at
    /// 1: a node that announced itself has none until the layout assigns one). A number,
    /// never `null`, so readers of either age parse it.
    pub node_id: u32,
    /// The node binary's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// Since the node process started; a value lower than the previous sample's means
    /// the node restarted, and its error totals started again from zero.
    pub uptime_seconds: u64,
    /// Share of CPU time busy over the last sampling interval, in [0, 1].
    pub cpu_utilization: f64,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub disk: DiskReport,
    pub errors: ErrorReport,
    /// SMART raw counters by attribute where the hardware exposes them (`null` on VMs
    /// and containers, which is what nodes serve today). Keys `"5"`, `"smart_5_raw"` or
    /// the schema name (`"smart_5_reallocated_sectors"`) are all understood by the
    /// predictor mapping; others are ignored.
    pub smart: Option<BTreeMap<String, f64>>,
    pub fragments: FragmentReport,
    /// Set once the node stopped acknowledging writes because an fsync failed (its
    /// data directory can no longer promise durability; sticky until the node
    /// restarts). `null` while it accepts writes, and from nodes that predate it.
    #[serde(default)]
    pub writes_refused: Option<WritesRefused>,
    /// The node's name (its identity and its key's name, `node-NAME`); empty from nodes
    /// that predate names.
    #[serde(default)]
    pub name: String,
}

/// Why and since when a node refuses writes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WritesRefused {
    /// What failed, e.g. `directory fsync failed: Input/output error (os error 5)`.
    pub reason: String,
    pub since_unix_ms: u64,
}

/// The data directory's disk: capacity now, activity over the last sampling interval.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DiskReport {
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    /// Free space below which the node refuses writes.
    pub reserve_bytes: u64,
    pub read_bytes_per_second: f64,
    pub write_bytes_per_second: f64,
    /// Share of wall time the device was busy, in [0, 1].
    pub io_utilization: f64,
    pub read_latency_ms: f64,
    pub write_latency_ms: f64,
}

/// Totals since the node process started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorReport {
    pub read_errors: u64,
    pub write_errors: u64,
    pub checksum_failures: u64,
    pub fsync_failures: u64,
}

/// What the node stores.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FragmentReport {
    pub count: u64,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn report() -> HealthReport {
        HealthReport {
            node_id: 3,
            version: "0.1.0".into(),
            uptime_seconds: 12,
            cpu_utilization: 0.5,
            memory_used_bytes: 4,
            memory_total_bytes: 16,
            disk: DiskReport {
                capacity_bytes: 100,
                free_bytes: 40,
                reserve_bytes: 10,
                read_bytes_per_second: 1.0,
                write_bytes_per_second: 2.0,
                io_utilization: 0.25,
                read_latency_ms: 3.5,
                write_latency_ms: 4.5,
            },
            errors: ErrorReport {
                read_errors: 1,
                write_errors: 2,
                checksum_failures: 3,
                fsync_failures: 4,
            },
            smart: None,
            fragments: FragmentReport { count: 5, bytes: 6 },
            writes_refused: None,
            name: "n3".into(),
        }
    }

    #[test]
    fn serialises_in_the_served_field_order() {
        let text = serde_json::to_string(&report()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"node_id":3,"version":"0.1.0","uptime_seconds":12,"cpu_utilization":0.5,"#,
                r#""memory_used_bytes":4,"memory_total_bytes":16,"disk":{"capacity_bytes":100,"#,
                r#""free_bytes":40,"reserve_bytes":10,"read_bytes_per_second":1.0,"#,
                r#""write_bytes_per_second":2.0,"io_utilization":0.25,"read_latency_ms":3.5,"#,
                r#""write_latency_ms":4.5},"errors":{"read_errors":1,"write_errors":2,"#,
                r#""checksum_failures":3,"fsync_failures":4},"smart":null,"#,
                r#""fragments":{"count":5,"bytes":6},"writes_refused":null,"name":"n3"}"#
            )
        );
        assert_eq!(
            serde_json::from_str::<HealthReport>(&text).unwrap(),
            report()
        );
    }

    #[test]
    fn smart_counters_are_read_by_attribute_and_a_truncated_report_is_an_error() {
        let mut value = serde_json::to_value(report()).unwrap();
        value["smart"] = serde_json::json!({"5": 3, "smart_194_raw": 41});
        let parsed: HealthReport = serde_json::from_value(value).unwrap();
        let smart = parsed.smart.unwrap();
        assert_eq!(smart.get("5"), Some(&3.0));
        assert_eq!(smart.get("smart_194_raw"), Some(&41.0));
        assert!(serde_json::from_str::<HealthReport>(r#"{"node_id":3}"#).is_err());
    }

    #[test]
    fn a_report_without_writes_refused_parses_and_a_refusal_round_trips() {
        // What nodes served before the field existed.
        let mut old = serde_json::to_value(report()).unwrap();
        old.as_object_mut().unwrap().remove("writes_refused");
        old.as_object_mut().unwrap().remove("name");
        let parsed: HealthReport = serde_json::from_value(old).unwrap();
        assert_eq!(parsed.writes_refused, None);
        assert_eq!(parsed.name, "");
        let mut refusing = report();
        refusing.writes_refused = Some(WritesRefused {
            reason: "directory fsync failed: Input/output error".into(),
            since_unix_ms: 7,
        });
        let text = serde_json::to_string(&refusing).unwrap();
        assert!(text.ends_with(
            r#""writes_refused":{"reason":"directory fsync failed: Input/output error","since_unix_ms":7},"name":"n3"}"#
        ), "{text}");
        assert_eq!(
            serde_json::from_str::<HealthReport>(&text).unwrap(),
            refusing
        );
    }
}
