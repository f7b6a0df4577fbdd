//! Unit tests of the shell's pure helpers (record ↔ view conversion; the predictor's
//! rows are tested in `predictor.rs`).
#![allow(clippy::unwrap_used)]

use shardlet_core::{
    Codec, Crc32c, FragmentIndex, Generation, NodeId, ObjectId, RedundancyLevel, Scheme, ShardletId,
};
use shardlet_model::schema::{AccessCounters, FragmentLocation, ShardletRecord};

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
        layout_version: 0,
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
