//! The staging buffers of large writes: aligned (so `O_DIRECT` can write straight from
//! them) and pooled (so a busy node does not pay for fresh memory on every write).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Alignment of `O_DIRECT` buffers, file offsets and lengths: the page size, a multiple
/// of every logical block size in use.
pub(super) const DIRECT_IO_ALIGN: usize = 4096;
/// The most one write buffers before it goes to disk.
pub(super) const STAGING_BYTES_MAX: usize = 1024 * 1024;

/// A zeroed byte buffer whose usable region starts at a `DIRECT_IO_ALIGN` boundary, built
/// from an over-allocated `Vec` (no `unsafe`). The `Vec` never grows, so the region stays
/// where it is.
struct AlignedBuffer {
    storage: Vec<u8>,
    start: usize,
    capacity: usize,
}

impl AlignedBuffer {
    fn new(capacity: usize) -> Self {
        let storage = vec![0u8; capacity + DIRECT_IO_ALIGN];
        let start = storage.as_ptr().align_offset(DIRECT_IO_ALIGN);
        Self {
            storage,
            start,
            capacity,
        }
    }

    fn region(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.capacity]
    }
}

/// Full-size staging buffers kept for reuse: a fresh megabyte costs a page fault per 4 KiB
/// on first touch (and on a VM, a fault in the host too), which measured as much as the
/// write itself. Keeps at most `kept_max` buffers, so a burst of writes does not pin its
/// peak memory for good.
pub struct StagingPool {
    free: Mutex<Vec<AlignedBuffer>>,
    kept_max: usize,
}

impl StagingPool {
    pub fn new(kept_max: usize) -> Arc<Self> {
        Arc::new(Self {
            free: Mutex::new(Vec::new()),
            kept_max,
        })
    }

    pub(super) fn take(self: &Arc<Self>, capacity: usize) -> PooledBuffer {
        let reused = if capacity == STAGING_BYTES_MAX {
            self.lock().pop()
        } else {
            None
        };
        PooledBuffer {
            buffer: Some(reused.unwrap_or_else(|| AlignedBuffer::new(capacity))),
            pool: Arc::clone(self),
        }
    }

    /// Buffers waiting for reuse.
    pub fn kept(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<AlignedBuffer>> {
        // A list of buffers is valid after any panic.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A staging buffer that goes back to its pool (if full-size and the pool has room) when
/// the write that used it ends, however it ends.
pub(super) struct PooledBuffer {
    buffer: Option<AlignedBuffer>,
    pool: Arc<StagingPool>,
}

impl PooledBuffer {
    pub(super) fn capacity(&self) -> usize {
        self.buffer.as_ref().map_or(0, |buffer| buffer.capacity)
    }

    pub(super) fn region(&mut self) -> &mut [u8] {
        match self.buffer.as_mut() {
            Some(buffer) => buffer.region(),
            None => &mut [],
        }
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            if buffer.capacity == STAGING_BYTES_MAX {
                let mut free = self.pool.lock();
                if free.len() < self.pool.kept_max {
                    free.push(buffer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_region_is_aligned_for_direct_io_and_as_long_as_asked() {
        let pool = StagingPool::new(2);
        for capacity in [DIRECT_IO_ALIGN, 3 * DIRECT_IO_ALIGN, STAGING_BYTES_MAX] {
            let mut buffer = pool.take(capacity);
            assert_eq!(buffer.capacity(), capacity);
            let region = buffer.region();
            assert_eq!(region.len(), capacity);
            assert_eq!(
                region.as_ptr().align_offset(DIRECT_IO_ALIGN),
                0,
                "{capacity}"
            );
        }
    }

    #[test]
    fn the_pool_keeps_at_most_kept_max_full_size_buffers() {
        let pool = StagingPool::new(2);
        let taken: Vec<PooledBuffer> = (0..3).map(|_| pool.take(STAGING_BYTES_MAX)).collect();
        assert_eq!(pool.kept(), 0);
        drop(taken);
        assert_eq!(pool.kept(), 2, "the third buffer is freed, not kept");
        // A take reuses a kept buffer instead of allocating.
        let reused = pool.take(STAGING_BYTES_MAX);
        assert_eq!(pool.kept(), 1);
        drop(reused);
        assert_eq!(pool.kept(), 2);
    }

    #[test]
    fn a_smaller_buffer_is_neither_taken_from_nor_returned_to_the_pool() {
        let pool = StagingPool::new(2);
        drop(pool.take(STAGING_BYTES_MAX));
        assert_eq!(pool.kept(), 1);
        let small = pool.take(DIRECT_IO_ALIGN);
        assert_eq!(small.capacity(), DIRECT_IO_ALIGN);
        assert_eq!(
            pool.kept(),
            1,
            "a small write does not take the full-size buffer"
        );
        drop(small);
        assert_eq!(pool.kept(), 1, "nor is its own buffer kept");
    }
}
