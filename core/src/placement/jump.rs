//! Jump Consistent Hash (Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash
//! Algorithm", 2014), transcribed from the paper's reference code.

/// The bucket in `0..buckets` for `key`. Growing `buckets` from n to n+1 moves a key
/// only into the new bucket n, and only with probability 1/(n+1); no other key moves.
/// That is the only change jump hash handles gracefully, which is why the placement
/// map appends new nodes at the end and never removes buckets (see `docs/placement.md`).
///
/// Expected O(ln buckets) iterations; no memory.
///
/// # Panics
/// On `buckets == 0`: there is no bucket to return, and every caller guarantees at
/// least one (a placement map always has slots).
pub fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    assert!(buckets > 0, "jump_hash needs at least one bucket");
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    while next < i64::from(buckets) {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    // 0 ≤ bucket < buckets ≤ u32::MAX, so the conversion is lossless.
    bucket as u32
}

/// Lanes of [`jump_hash_many`]: enough independent chains to hide the latency of the
/// floating-point division that dominates each step.
const LANES: usize = 16;

/// `out[i] = jump_hash(keys[i], buckets)` for every i, computed in lock-step: one key's
/// steps form a dependency chain (~30 cycles each, mostly the division), but the
/// chains of different keys are independent, so interleaving them lets the CPU run
/// many at once. Placement uses it for the first attempt of every fragment.
///
/// # Panics
/// On `buckets == 0` or `keys.len() != out.len()`.
pub fn jump_hash_many(keys: &[u64], buckets: u32, out: &mut [u32]) {
    assert!(buckets > 0, "jump_hash needs at least one bucket");
    assert_eq!(keys.len(), out.len());
    let limit = i64::from(buckets);
    for (keys, out) in keys.chunks(LANES).zip(out.chunks_mut(LANES)) {
        let mut state = [0u64; LANES];
        state[..keys.len()].copy_from_slice(keys);
        let mut bucket = [-1i64; LANES];
        let mut next = [0i64; LANES];
        // Lanes past keys.len() start finished.
        for lane in next.iter_mut().skip(keys.len()) {
            *lane = limit;
        }
        while next.iter().any(|j| *j < limit) {
            for lane in 0..LANES {
                let live = next[lane] < limit;
                let stepped_bucket = next[lane];
                let stepped_key = state[lane]
                    .wrapping_mul(2_862_933_555_777_941_757)
                    .wrapping_add(1);
                let stepped_next = ((stepped_bucket + 1) as f64
                    * ((1u64 << 31) as f64 / ((stepped_key >> 33) + 1) as f64))
                    as i64;
                if live {
                    bucket[lane] = stepped_bucket;
                    state[lane] = stepped_key;
                    next[lane] = stepped_next;
                }
            }
        }
        for (target, value) in out.iter_mut().zip(bucket) {
            *target = value as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::mix64;

    #[test]
    fn known_answers_from_the_paper() {
        // Keys 0, 1, 2 with 60 buckets, as quoted with the paper's reference code.
        assert_eq!(jump_hash(0, 60), 0);
        assert_eq!(jump_hash(1, 60), 55);
        assert_eq!(jump_hash(2, 60), 46);
        // One bucket: everything goes to bucket 0.
        for key in [0, 1, u64::MAX] {
            assert_eq!(jump_hash(key, 1), 0);
        }
    }

    #[test]
    fn answers_match_an_independent_transcription() {
        // A second transcription using unsigned arithmetic and the paper's
        // `(b + 1) * (double(1LL << 31) / double((key >> 33) + 1))` exactly.
        fn reference(mut key: u64, buckets: i32) -> i32 {
            let (mut b, mut j): (i64, i64) = (-1, 0);
            while j < i64::from(buckets) {
                b = j;
                key = key.wrapping_mul(2862933555777941757).wrapping_add(1);
                let ratio = (1i64 << 31) as f64 / ((key >> 33) as f64 + 1.0);
                j = ((b + 1) as f64 * ratio) as i64;
            }
            b as i32
        }
        for key in (0..2_000u64).map(mix64).chain(0..50) {
            for buckets in [1u32, 2, 3, 7, 60, 1000, 65_536, 1 << 20] {
                assert_eq!(
                    jump_hash(key, buckets) as i32,
                    reference(key, buckets as i32)
                );
            }
        }
    }

    #[test]
    fn lock_step_matches_one_at_a_time() {
        for count in [0usize, 1, 5, 16, 17, 40] {
            let keys: Vec<u64> = (0..count as u64).map(|k| mix64(k * 7 + 3)).collect();
            for buckets in [1u32, 2, 60, 16_000, 1_600_000] {
                let mut out = vec![0u32; count];
                jump_hash_many(&keys, buckets, &mut out);
                let expected: Vec<u32> = keys.iter().map(|k| jump_hash(*k, buckets)).collect();
                assert_eq!(out, expected);
            }
        }
    }

    #[test]
    fn always_in_range_and_moves_only_to_the_new_bucket() {
        for key in (0..3_000u64).map(mix64) {
            let mut previous = jump_hash(key, 1);
            for buckets in 2..=200u32 {
                let current = jump_hash(key, buckets);
                assert!(current < buckets);
                assert!(
                    current == previous || current == buckets - 1,
                    "key {key} moved from {previous} to {current} at {buckets} buckets"
                );
                previous = current;
            }
        }
    }

    #[test]
    fn buckets_are_roughly_uniform() {
        let buckets = 10u32;
        let mut counts = [0u32; 10];
        for key in (0..100_000u64).map(mix64) {
            counts[jump_hash(key, buckets) as usize] += 1;
        }
        // Expected 10,000 each, binomial σ ≈ 95: ±5 % is over 5σ.
        for count in counts {
            assert!((9_500..=10_500).contains(&count), "{counts:?}");
        }
    }
}
