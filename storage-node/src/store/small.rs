//! Small fragments (at most `SMALL_FRAGMENT_BYTES_MAX` payload bytes): one synced write
//! to the small-fragment store instead of a file, with the same immutability and
//! verification rules as a file (an identical copy is "already stored", a different
//! one is refused, a damaged one is replaced), wherever the existing copy lives. A
//! failed synced write trips the write fence like any failed fsync.

use std::fs;

use shardlet_core::{Crc32c, FragmentId};

use super::{CommitOutcome, FragmentStore};
use crate::fragment_file::{self, FragmentReader};
use crate::group_commit::SyncTicket;
use crate::store_error::StoreError;

impl FragmentStore {
    /// Stores a fragment of at most `SMALL_FRAGMENT_BYTES_MAX` bytes, received whole in
    /// `chunks`, in the small-fragment store: checked like a file write (length, CRC),
    /// durable when this returns (the ticket is only for a copy found as a file).
    pub fn put_small(
        &self,
        id: &FragmentId,
        expected_length: u64,
        chunks: &[bytes::Bytes],
        claimed_crc: Crc32c,
    ) -> Result<(CommitOutcome, SyncTicket), StoreError> {
        self.fence.check()?;
        let (header, encoded) =
            fragment_file::encode_fragment(chunks, expected_length, claimed_crc)
                .map_err(|error| self.count_error(error))?;
        let _guard = self.lock_id(id);
        let mut replaced_length = None;
        match self.small_reader(id) {
            Ok(None) => {}
            Ok(Some(existing)) => match existing.verify_all() {
                Ok(()) if existing.header == header => {
                    return Ok((CommitOutcome::AlreadyStored, SyncTicket::done()))
                }
                Ok(()) => return Err(StoreError::FragmentExists),
                Err(error) => {
                    self.report_rot(id, &error);
                    replaced_length = Some(existing.header.payload_length);
                }
            },
            Err(StoreError::ChecksumMismatch(reason)) => {
                self.report_rot(id, &StoreError::ChecksumMismatch(reason));
                replaced_length = Some(0);
            }
            Err(error) => return Err(self.count_error(error)),
        }
        if replaced_length.is_none() {
            // Stored as a file (by a node that put the line between small and large
            // elsewhere): the same immutability rules apply to that copy.
            match FragmentReader::open(&self.fragment_path(id)) {
                Err(StoreError::NotFound) => {}
                Ok(existing) if existing.verify_all().is_ok() => {
                    if existing.header != header {
                        return Err(StoreError::FragmentExists);
                    }
                    return Ok((
                        CommitOutcome::AlreadyStored,
                        self.syncer(id).sync_from_blocking_thread(),
                    ));
                }
                // A damaged file copy: replaced by the stored value below, the file goes.
                Ok(_) | Err(StoreError::ChecksumMismatch(_)) => {
                    self.report_rot(
                        id,
                        &StoreError::ChecksumMismatch("damaged file copy".into()),
                    );
                    fs::remove_file(self.fragment_path(id))
                        .map_err(|error| self.count_write_error(error))?;
                    replaced_length = Some(0);
                }
                Err(error) => return Err(self.count_error(error)),
            }
        }
        let started = std::time::Instant::now();
        self.small.put(id, &encoded).map_err(|error| {
            self.fsync_fatal(
                "synced write of the small-fragment store",
                StoreError::Fsync(error),
            )
        })?;
        self.metrics
            .fsync_seconds
            .with_label_values(&["small"])
            .observe(started.elapsed().as_secs_f64());
        self.count_stored(id, header.payload_length, replaced_length);
        Ok((CommitOutcome::Created, SyncTicket::done()))
    }

    /// The small fragment stored under `id`, header and table checked.
    pub(super) fn small_reader(
        &self,
        id: &FragmentId,
    ) -> Result<Option<FragmentReader>, StoreError> {
        match self.small.get(id).map_err(StoreError::Read)? {
            None => Ok(None),
            Some(encoded) => FragmentReader::from_encoded(encoded).map(Some),
        }
    }
}
