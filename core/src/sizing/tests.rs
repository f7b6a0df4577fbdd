#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

const ALL_CLASSES: [AccessClass; 3] = [AccessClass::Cold, AccessClass::Warm, AccessClass::Hot];

fn spans(policy: &SizingPolicy, size: u64, access: AccessClass) -> Vec<(u64, u64)> {
    policy
        .plan(size, access)
        .unwrap()
        .iter()
        .map(|span| (span.offset, span.len))
        .collect()
}

#[test]
fn empty_object_has_no_shardlets() {
    let policy = SizingPolicy::default();
    for access in ALL_CLASSES {
        assert_eq!(policy.shardlet_size_bytes(0, access), 0);
        let plan = policy.plan(0, access).unwrap();
        assert_eq!(plan.count(), 0);
        assert_eq!(plan.iter().next(), None);
        assert_eq!(plan.span(0), None);
        assert_eq!(plan.index_of_offset(0), None);
    }
}

#[test]
fn small_objects_are_one_shardlet_of_their_exact_size() {
    let policy = SizingPolicy::default();
    for access in ALL_CLASSES {
        for size in [1, 1000, 64 * KIB - 1, 64 * KIB, 64 * KIB + 1, 2 * MIB] {
            assert_eq!(spans(&policy, size, access), vec![(0, size)], "{size}");
        }
    }
}

#[test]
fn object_exactly_max_is_one_shardlet_and_max_plus_one_is_two() {
    let policy = SizingPolicy::default();
    assert_eq!(
        spans(&policy, 2 * MIB, AccessClass::Cold),
        vec![(0, 2 * MIB)]
    );
    assert_eq!(
        spans(&policy, 2 * MIB + 1, AccessClass::Cold),
        vec![(0, 2 * MIB), (2 * MIB, 1)]
    );
    // Hot: ceil((2 MiB + 1) / 8) = 256 KiB + 1, rounded up to 320 KiB.
    let hot = policy.plan(2 * MIB + 1, AccessClass::Hot).unwrap();
    assert_eq!(hot.shardlet_size_bytes(), 320 * KIB);
    assert_eq!(hot.count(), 7);
    assert_eq!(hot.span(6).unwrap().len, 2 * MIB + 1 - 6 * 320 * KIB);
}

#[test]
fn large_cold_and_warm_objects_use_the_maximum() {
    let policy = SizingPolicy::default();
    for access in [AccessClass::Cold, AccessClass::Warm] {
        assert_eq!(policy.shardlet_size_bytes(100 * MIB, access), 2 * MIB);
        assert_eq!(policy.plan(100 * MIB, access).unwrap().count(), 50);
    }
}

#[test]
fn large_hot_objects_aim_for_the_target_parallelism() {
    let policy = SizingPolicy::default();
    // 4 MiB / 8 = 512 KiB, already aligned.
    assert_eq!(
        policy.shardlet_size_bytes(4 * MIB, AccessClass::Hot),
        512 * KIB
    );
    // Huge hot objects hit the maximum: parallelism is already plentiful.
    assert_eq!(
        policy.shardlet_size_bytes(1 << 40, AccessClass::Hot),
        2 * MIB
    );
    // With a tall parallelism target the minimum clamps the piece size.
    let wide = SizingPolicy::new(256 * KIB, 2 * MIB, 1024).unwrap();
    assert_eq!(
        wide.shardlet_size_bytes(3 * MIB, AccessClass::Hot),
        256 * KIB
    );
}

#[test]
fn object_exactly_min_is_one_shardlet() {
    let policy = SizingPolicy::new(128 * KIB, 128 * KIB, 8).unwrap();
    for access in ALL_CLASSES {
        assert_eq!(spans(&policy, 128 * KIB, access), vec![(0, 128 * KIB)]);
        // min == max, so a large hot object is clamped to both.
        assert_eq!(policy.shardlet_size_bytes(10 * MIB, access), 128 * KIB);
    }
}

#[test]
fn huge_objects_do_not_overflow() {
    let policy = SizingPolicy::default();
    for access in ALL_CLASSES {
        assert_eq!(policy.shardlet_size_bytes(u64::MAX, access), 2 * MIB);
        assert_eq!(policy.shardlet_size_bytes(u64::MAX - 1, access), 2 * MIB);
        // 2^64 / 2 MiB = 2^43 shardlets: beyond u32 indices, a clear error.
        assert!(matches!(
            policy.plan(u64::MAX, access),
            Err(SizingError::TooManyShardlets { .. })
        ));
    }
    // The largest addressable object at 2 MiB: 2^32 - 1 shardlets; the last one ends
    // exactly at the end, and one more byte is an error.
    let largest = u64::from(u32::MAX) * 2 * MIB;
    assert!(policy.plan(largest + 1, AccessClass::Cold).is_err());
    let plan = policy.plan(largest, AccessClass::Cold).unwrap();
    assert_eq!(plan.count(), u32::MAX);
    let last = plan.span(u32::MAX - 1).unwrap();
    assert_eq!(last.end(), largest);
    let mut tail = plan.iter();
    assert_eq!(tail.nth(u32::MAX as usize - 1), Some(last));
    assert_eq!(tail.next(), None);
}

#[test]
fn huge_object_that_fits_is_planned_to_the_last_byte() {
    let policy = SizingPolicy::default();
    let size = 5 * (1u64 << 40) + 12_345; // just over S3's 5 TiB limit
    let plan = policy.plan(size, AccessClass::Hot).unwrap();
    let last = plan.span(plan.count() - 1).unwrap();
    assert_eq!(last.end(), size);
    assert_eq!(last.len, 12_345);
    assert_eq!(plan.index_of_offset(size - 1), Some(plan.count() - 1));
}

#[test]
fn misconfigured_ranges_are_rejected_with_reasons() {
    let cases = [
        (SizingPolicy::new(0, 2 * MIB, 8), SizingError::ZeroMinimum),
        (
            SizingPolicy::new(4 * MIB, 2 * MIB, 8),
            SizingError::MinimumAboveMaximum {
                min_bytes: 4 * MIB,
                max_bytes: 2 * MIB,
            },
        ),
        (
            SizingPolicy::new(64 * KIB, 128 * MIB, 8),
            SizingError::MaximumAboveHardLimit {
                max_bytes: 128 * MIB,
            },
        ),
        (
            SizingPolicy::new(1000, 2 * MIB, 8),
            SizingError::NotAligned {
                bound: "minimum",
                bytes: 1000,
            },
        ),
        (
            SizingPolicy::new(64 * KIB, 2 * MIB + 1, 8),
            SizingError::NotAligned {
                bound: "maximum",
                bytes: 2 * MIB + 1,
            },
        ),
        (
            SizingPolicy::new(64 * KIB, 2 * MIB, 0),
            SizingError::TargetParallelReadsOutOfRange { value: 0 },
        ),
        (
            SizingPolicy::new(64 * KIB, 2 * MIB, 5000),
            SizingError::TargetParallelReadsOutOfRange { value: 5000 },
        ),
    ];
    for (result, expected) in cases {
        let error = result.unwrap_err();
        assert!(!error.to_string().is_empty());
        assert_eq!(error, expected);
    }
    assert!(SizingPolicy::new(64 * KIB, 64 * MIB, 1).is_ok());
}

#[test]
fn unknown_length_streams_use_max_unless_hot() {
    let policy = SizingPolicy::default();
    assert_eq!(
        policy.shardlet_size_bytes_for_unknown_length(AccessClass::Cold),
        2 * MIB
    );
    assert_eq!(
        policy.shardlet_size_bytes_for_unknown_length(AccessClass::Warm),
        2 * MIB
    );
    assert_eq!(
        policy.shardlet_size_bytes_for_unknown_length(AccessClass::Hot),
        256 * KIB
    );
}

fn policies() -> impl Strategy<Value = SizingPolicy> {
    (1u64..=32, 0u64..=512, 1u32..=64).prop_map(|(min_units, extra_units, parallel)| {
        let max_units = (min_units + extra_units).min(1024);
        SizingPolicy::new(
            min_units * ALIGNMENT_BYTES,
            max_units * ALIGNMENT_BYTES,
            parallel,
        )
        .unwrap()
    })
}

fn access_classes() -> impl Strategy<Value = AccessClass> {
    prop_oneof![
        Just(AccessClass::Cold),
        Just(AccessClass::Warm),
        Just(AccessClass::Hot)
    ]
}

proptest! {
    #[test]
    fn shardlets_cover_the_object_exactly_in_order(
        policy in policies(),
        size in prop_oneof![0u64..=4 * MIB, 0u64..=512 * MIB],
        access in access_classes(),
    ) {
        let plan = policy.plan(size, access).unwrap();
        let chosen = plan.shardlet_size_bytes();
        let mut expected_offset = 0;
        let count = plan.count();
        prop_assert_eq!(plan.iter().len(), count as usize);
        for (position, span) in plan.iter().enumerate() {
            prop_assert_eq!(span.index as usize, position);
            prop_assert_eq!(span.offset, expected_offset);
            prop_assert!(span.len > 0);
            let is_last = span.index + 1 == count;
            if is_last {
                prop_assert!(span.len <= chosen);
            } else {
                prop_assert_eq!(span.len, chosen);
                prop_assert!(span.len >= policy.min_bytes() && span.len <= policy.max_bytes());
            }
            expected_offset += span.len;
        }
        prop_assert_eq!(expected_offset, size);
        if size > policy.max_bytes() {
            prop_assert!(chosen >= policy.min_bytes() && chosen <= policy.max_bytes());
            prop_assert_eq!(chosen % ALIGNMENT_BYTES, 0);
        }
    }

    #[test]
    fn sizes_depend_only_on_inputs(policy in policies(), size: u64, access in access_classes()) {
        let copy = SizingPolicy::new(
            policy.min_bytes(), policy.max_bytes(), policy.target_parallel_reads(),
        ).unwrap();
        prop_assert_eq!(
            policy.shardlet_size_bytes(size, access),
            copy.shardlet_size_bytes(size, access)
        );
        let chosen = policy.shardlet_size_bytes(size, access);
        prop_assert!(chosen <= policy.max_bytes());
        prop_assert!(size == 0 || chosen > 0);
    }

    #[test]
    fn hot_pieces_reach_the_parallelism_target_when_range_allows(
        policy in policies(), size in 0u64..=1 << 34,
    ) {
        let plan = policy.plan(size, AccessClass::Hot).unwrap();
        let piece = plan.shardlet_size_bytes();
        if size > policy.max_bytes() && piece > policy.min_bytes() && piece < policy.max_bytes() {
            let target = u64::from(policy.target_parallel_reads());
            // Not clamped: rounding up to 64 KiB never yields more than target pieces.
            prop_assert!(u64::from(plan.count()) <= target);
        }
    }
}
