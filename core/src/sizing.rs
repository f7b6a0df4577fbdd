//! Shardlet sizing: how an object is cut into shardlets.
//!
//! The whole rule is [`SizingPolicy::shardlet_size_bytes`]; everything else here only
//! applies it (a plan of `(offset, len)` spans for a known size, a size for streams of
//! unknown length). The rule with a table of examples is in `docs/core.md`.

use crate::scheme::AccessClass;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;

/// Every configured bound, and every size chosen for a large hot object, is a multiple of
/// this: 64 KiB splits evenly into erasure-coding shards for the common data counts and
/// keeps fragment files aligned to disk pages.
pub const ALIGNMENT_BYTES: u64 = 64 * KIB;

/// The largest shardlet any configuration may ask for. A shardlet is buffered whole in
/// the gateway and in repair; 64 MiB keeps that memory bounded per request.
pub const SHARDLET_BYTES_HARD_MAX: u64 = 64 * MIB;

/// A bound on the parallelism knob: more pieces than this gain nothing (a read never
/// fans out wider) and only multiply metadata.
pub const TARGET_PARALLEL_READS_MAX: u32 = 1024;

/// Why a sizing configuration (or an object, for a plan) is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizingError {
    #[error("shardlet minimum size must be greater than 0 bytes")]
    ZeroMinimum,
    #[error(
        "shardlet minimum size {min_bytes} bytes is larger than the maximum {max_bytes} bytes"
    )]
    MinimumAboveMaximum { min_bytes: u64, max_bytes: u64 },
    #[error(
        "shardlet maximum size {max_bytes} bytes exceeds the hard limit of {SHARDLET_BYTES_HARD_MAX} bytes (64 MiB)"
    )]
    MaximumAboveHardLimit { max_bytes: u64 },
    #[error(
        "shardlet {bound} size {bytes} bytes is not a multiple of {ALIGNMENT_BYTES} bytes (64 KiB)"
    )]
    NotAligned { bound: &'static str, bytes: u64 },
    #[error(
        "target parallel reads must be between 1 and {TARGET_PARALLEL_READS_MAX}, got {value}"
    )]
    TargetParallelReadsOutOfRange { value: u32 },
    #[error(
        "an object of {object_size_bytes} bytes would need {shardlet_count} shardlets of {shardlet_size_bytes} bytes; at most 2^32 - 1 are addressable"
    )]
    TooManyShardlets {
        object_size_bytes: u64,
        shardlet_size_bytes: u64,
        shardlet_count: u64,
    },
}

/// The configurable range of shardlet sizes and the read parallelism hot objects aim for.
/// Fields are private so that every value in circulation passed [`SizingPolicy::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizingPolicy {
    min_bytes: u64,
    max_bytes: u64,
    target_parallel_reads: u32,
}

impl Default for SizingPolicy {
    /// 64 KiB – 2 MiB, hot objects read 8 pieces in parallel.
    fn default() -> Self {
        Self {
            min_bytes: 64 * KIB,
            max_bytes: 2 * MIB,
            target_parallel_reads: 8,
        }
    }
}

impl SizingPolicy {
    /// Validates the range: `0 < min ≤ max ≤ 64 MiB`, both multiples of 64 KiB, and
    /// `1 ≤ target_parallel_reads ≤ 1024`.
    pub fn new(
        min_bytes: u64,
        max_bytes: u64,
        target_parallel_reads: u32,
    ) -> Result<Self, SizingError> {
        if min_bytes == 0 {
            return Err(SizingError::ZeroMinimum);
        }
        if min_bytes > max_bytes {
            return Err(SizingError::MinimumAboveMaximum {
                min_bytes,
                max_bytes,
            });
        }
        if max_bytes > SHARDLET_BYTES_HARD_MAX {
            return Err(SizingError::MaximumAboveHardLimit { max_bytes });
        }
        for (bound, bytes) in [("minimum", min_bytes), ("maximum", max_bytes)] {
            if bytes % ALIGNMENT_BYTES != 0 {
                return Err(SizingError::NotAligned { bound, bytes });
            }
        }
        if target_parallel_reads == 0 || target_parallel_reads > TARGET_PARALLEL_READS_MAX {
            return Err(SizingError::TargetParallelReadsOutOfRange {
                value: target_parallel_reads,
            });
        }
        Ok(Self {
            min_bytes,
            max_bytes,
            target_parallel_reads,
        })
    }

    pub fn min_bytes(&self) -> u64 {
        self.min_bytes
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn target_parallel_reads(&self) -> u32 {
        self.target_parallel_reads
    }

    /// THE sizing rule: the size of every shardlet of an object but the last (the last
    /// holds the remainder, `1..=size` bytes).
    ///
    /// - An empty object (0 bytes) has no shardlets; the function returns 0.
    /// - A small object (`size ≤ max`) is one shardlet of exactly its size, whatever its
    ///   access class: splitting it would add metadata and round trips for no gain.
    /// - A large cold or warm object uses `max`: fewest shardlets, least metadata.
    /// - A large hot object uses smaller pieces so a reader can fetch
    ///   `target_parallel_reads` of them at once: `ceil(size / target_parallel_reads)`
    ///   rounded up to a multiple of 64 KiB, clamped to `[min, max]`.
    ///
    /// Pure and total: the result depends only on the arguments, and no input overflows
    /// (the clamp to `max` happens before rounding up, and `max` is aligned).
    pub fn shardlet_size_bytes(&self, object_size_bytes: u64, access: AccessClass) -> u64 {
        if object_size_bytes <= self.max_bytes {
            return object_size_bytes;
        }
        match access {
            AccessClass::Cold | AccessClass::Warm => self.max_bytes,
            AccessClass::Hot => self.hot_piece_bytes(object_size_bytes),
        }
    }

    /// The size to cut a stream of unknown length into (chunked uploads): `max` for cold
    /// and warm data, as for any large object. For hot data, the piece that gives
    /// `target_parallel_reads` pieces to a stream of `max` bytes (256 KiB by default), so
    /// any hot stream longer than one maximum shardlet is readable in parallel.
    /// The stream's final shardlet holds the remainder; an empty stream has none.
    pub fn shardlet_size_bytes_for_unknown_length(&self, access: AccessClass) -> u64 {
        match access {
            AccessClass::Cold | AccessClass::Warm => self.max_bytes,
            AccessClass::Hot => self.hot_piece_bytes(self.max_bytes),
        }
    }

    fn hot_piece_bytes(&self, object_size_bytes: u64) -> u64 {
        let even_share = object_size_bytes
            .div_ceil(u64::from(self.target_parallel_reads))
            .min(self.max_bytes);
        let aligned = even_share.div_ceil(ALIGNMENT_BYTES) * ALIGNMENT_BYTES;
        aligned.clamp(self.min_bytes, self.max_bytes)
    }

    /// The shardlets of an object of known size, in byte order.
    pub fn plan(
        &self,
        object_size_bytes: u64,
        access: AccessClass,
    ) -> Result<ShardletPlan, SizingError> {
        let shardlet_size_bytes = self.shardlet_size_bytes(object_size_bytes, access);
        ShardletPlan::new(object_size_bytes, shardlet_size_bytes)
    }
}

/// One shardlet of an object: its index (the `ShardletId` index) and byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardletSpan {
    pub index: u32,
    pub offset: u64,
    pub len: u64,
}

impl ShardletSpan {
    /// The exclusive end of the byte range.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// The cut of one object: `count` shardlets of `shardlet_size_bytes`, the last one
/// shorter when the size does not divide evenly. Random access ([`ShardletPlan::span`])
/// lets a ranged GET jump straight to the shardlets it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardletPlan {
    object_size_bytes: u64,
    shardlet_size_bytes: u64,
    count: u32,
}

impl ShardletPlan {
    /// Indices are `u32` (see `ShardletId`), so an object may have at most 2^32 - 1
    /// shardlets: 8 PiB at 2 MiB, far beyond S3's 5 TiB object limit.
    pub fn new(object_size_bytes: u64, shardlet_size_bytes: u64) -> Result<Self, SizingError> {
        let count = if object_size_bytes == 0 {
            0
        } else {
            // A zero size for a non-empty object is a caller bug, not outside input.
            assert!(
                shardlet_size_bytes > 0,
                "non-empty object with 0-byte shardlets"
            );
            object_size_bytes.div_ceil(shardlet_size_bytes)
        };
        let count = u32::try_from(count).map_err(|_| SizingError::TooManyShardlets {
            object_size_bytes,
            shardlet_size_bytes,
            shardlet_count: count,
        })?;
        Ok(Self {
            object_size_bytes,
            shardlet_size_bytes,
            count,
        })
    }

    pub fn object_size_bytes(&self) -> u64 {
        self.object_size_bytes
    }

    pub fn shardlet_size_bytes(&self) -> u64 {
        self.shardlet_size_bytes
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// The `index`-th shardlet, or `None` past the end.
    pub fn span(&self, index: u32) -> Option<ShardletSpan> {
        if index >= self.count {
            return None;
        }
        // index < count = ceil(size / shardlet), so offset < size: no overflow.
        let offset = u64::from(index) * self.shardlet_size_bytes;
        let len = self
            .shardlet_size_bytes
            .min(self.object_size_bytes - offset);
        Some(ShardletSpan { index, offset, len })
    }

    /// The index of the shardlet holding byte `offset`, or `None` past the end.
    pub fn index_of_offset(&self, offset: u64) -> Option<u32> {
        if offset >= self.object_size_bytes {
            return None;
        }
        u32::try_from(offset / self.shardlet_size_bytes).ok()
    }

    pub fn iter(&self) -> ShardletSpans {
        ShardletSpans {
            plan: *self,
            next: 0,
        }
    }
}

impl IntoIterator for ShardletPlan {
    type Item = ShardletSpan;
    type IntoIter = ShardletSpans;
    fn into_iter(self) -> ShardletSpans {
        self.iter()
    }
}

/// Iterator over a [`ShardletPlan`]'s spans.
#[derive(Debug, Clone)]
pub struct ShardletSpans {
    plan: ShardletPlan,
    next: u64,
}

impl Iterator for ShardletSpans {
    type Item = ShardletSpan;

    fn next(&mut self) -> Option<ShardletSpan> {
        let index = u32::try_from(self.next).ok()?;
        let span = self.plan.span(index)?;
        self.next += 1;
        Some(span)
    }

    fn nth(&mut self, skip: usize) -> Option<ShardletSpan> {
        self.next = self.next.saturating_add(skip as u64);
        self.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = u64::from(self.plan.count).saturating_sub(self.next);
        let left = usize::try_from(left).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for ShardletSpans {}

#[cfg(test)]
mod tests;
