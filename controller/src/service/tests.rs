//! Unit tests of the shell's pure helpers (record ↔ view conversion, predictor rows).
#![allow(clippy::unwrap_used)]

use shardlet_core::{
    Codec, Crc32c, FragmentIndex, Generation, NodeId, ObjectId, RedundancyLevel, Scheme, ShardletId,
};
use shardlet_model::schema::{AccessCounters, FragmentLocation, ShardletRecord};
use shardlet_node::health::HealthReport;

use super::predictor::row_of;
use super::records::{generation_of, level_of, same_layout, state_of};

fn record(scheme: Scheme, generations: &[u32], level: Option<RedundancyLevel>) -> ShardletRecord {
    ShardletRecord {
        id: ShardletId::new(ObjectId([3; 16]), 1),
        size_bytes: 600,
        checksum: Crc32c(1),
        scheme,
        codec: Codec::None,
        fragments: generations
            .iter()
            .enumerate()
            .map(|(index, generation)| FragmentLocation {
                index: FragmentIndex(index as u8),
                node: NodeId(index as u32 + 1),
                generation: Generation(*generation),
                checksum: Crc32c(1),
                size_bytes: 600,
            })
            .collect(),
        access: AccessCounters::default(),
        level,
        layout_changed_unix_ms: 42,
    }
}

#[test]
fn the_record_generation_is_its_newest_fragment_generation() {
    let record = record(Scheme::Replicated { copies: 3 }, &[1, 3, 2], None);
    assert_eq!(generation_of(&record), Generation(3));
    let state = state_of(&record);
    assert_eq!(state.generation, Generation(3));
    assert_eq!(state.layout_changed_at_ms, 42);
    assert!(same_layout(&record, &state));
    let mut moved = record.clone();
    moved.fragments[0].node = NodeId(9);
    assert!(
        !same_layout(&moved, &state),
        "a moved fragment is another layout"
    );
}

#[test]
fn a_recorded_level_wins_and_old_records_get_the_level_of_their_scheme() {
    let high = record(
        Scheme::Replicated { copies: 3 },
        &[1, 1, 1],
        Some(RedundancyLevel::High),
    );
    assert_eq!(level_of(&high), RedundancyLevel::High);
    let cases = [
        (Scheme::Replicated { copies: 2 }, RedundancyLevel::Low),
        (
            Scheme::ErasureCoded { data: 4, parity: 2 },
            RedundancyLevel::Low,
        ),
        (Scheme::Replicated { copies: 3 }, RedundancyLevel::Medium),
        (
            Scheme::ErasureCoded { data: 6, parity: 3 },
            RedundancyLevel::Medium,
        ),
        (
            Scheme::ErasureCoded { data: 8, parity: 4 },
            RedundancyLevel::High,
        ),
    ];
    for (scheme, level) in cases {
        assert_eq!(level_of(&record(scheme, &[1], None)), level, "{scheme}");
    }
}

fn health(read_errors: u64, uptime_seconds: u64, cpu: f64) -> HealthReport {
    serde_json::from_value(serde_json::json!({
        "node_id": 1, "version": "test", "uptime_seconds": uptime_seconds,
        "cpu_utilization": cpu, "memory_used_bytes": 4, "memory_total_bytes": 16,
        "disk": {"capacity_bytes": 100, "free_bytes": 40, "reserve_bytes": 0,
                 "read_bytes_per_second": 1.0, "write_bytes_per_second": 2.0,
                 "io_utilization": 0.5, "read_latency_ms": 3.5, "write_latency_ms": 4.5},
        "errors": {"read_errors": read_errors, "write_errors": 0, "checksum_failures": 0,
                   "fsync_failures": 0},
        "smart": null, "fragments": {"count": 0, "bytes": 0}
    }))
    .unwrap()
}

#[test]
fn predictor_rows_count_errors_per_interval_and_drop_impossible_values() {
    let first = row_of(None, &health(5, 100, 0.25));
    assert_eq!(first[0], Some(0.25));
    assert_eq!(first[1], Some(0.25), "memory 4 of 16");
    assert_eq!(first[5], None, "no interval yet: errors unknown");
    let second = row_of(Some(&health(5, 100, 0.25)), &health(8, 101, 0.25));
    assert_eq!(second[5], Some(3.0));
    let restarted = row_of(Some(&health(8, 101, 0.25)), &health(2, 5, 0.25));
    assert_eq!(
        restarted[5],
        Some(2.0),
        "after a restart the totals are the interval"
    );
    // A node reporting nonsense (CPU above 100 %, NaN cannot come through JSON) gives
    // an unknown value, never a wrong one.
    assert_eq!(row_of(None, &health(0, 1, 7.0))[0], None);
}
