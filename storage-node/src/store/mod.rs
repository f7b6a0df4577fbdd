//! The on-disk fragment store.
//!
//! Layout: `DATA/fragments/<first two hex chars of the id>/<id>` (256 fan-out
//! directories, so no directory grows huge), `DATA/tmp/` for writes in progress,
//! `DATA/small/` the RocksDB of small fragments ([`crate::small_store`]), `DATA/LOCK`
//! held (flock) while a node uses the directory.
//!
//! A fragment of at most [`SMALL_FRAGMENT_BYTES_MAX`] payload bytes is one synced write to
//! the small-fragment store. Durability of a larger write, step by step (see
//! docs/storage-node.md):
//! 1. stream into `tmp/<id>.<random>`, header last, `fdatasync` — a crash leaves at most
//!    a file in `tmp/`, removed at start-up, never acknowledged;
//! 2. `rename` into `fragments/xx/<id>` — atomic: after a crash the name holds either the
//!    old state or the complete new file, never a torn one;
//! 3. group-committed `fsync(fragments/xx)` — after it the name is durable; only then is
//!    the PUT acknowledged.
//!
//! Any failed fsync (step 1, step 3, or the small-fragment store's synced write) trips
//! the [`WriteFence`]: from then on every write is refused until the node restarts, and
//! a fragment whose directory fsync failed is unlinked again ([`FragmentStore::discard_unsynced`]),
//! so no retry — in this process or after a restart, when the page cache may still
//! hold the file — finds it and answers "already stored" for bytes the disk may lack.
//!
//! Methods here are blocking; the server calls them from blocking threads.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use shardlet_core::{Crc32c, FragmentId};

use crate::fragment_file::format::FragmentHeader;
use crate::fragment_file::{self, FragmentReader, FragmentWriter, StagedFragment, StagingPool};
use crate::group_commit::{DirectorySyncer, SyncTicket};
use crate::metrics::NodeMetrics;
use crate::small_store::SmallFragments;
pub use crate::small_store::SMALL_FRAGMENT_BYTES_MAX;
use crate::store_error::StoreError;
use crate::wire::ListedFragment;
use crate::write_fence::WriteFence;

mod small;
#[cfg(test)]
mod tests;

const FAN_OUT: usize = 256;
/// Writers and deleters of the same id serialise on one of these stripes; different ids
/// rarely share one.
const ID_LOCK_STRIPES: usize = 64;
/// Large-write staging buffers (1 MiB each) kept for reuse: enough for the writes a busy
/// node has in flight, small next to its page cache.
const STAGING_BUFFERS_KEPT_MAX: usize = 16;

/// What a successful PUT did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A new fragment (or one replacing a copy that failed verification).
    Created,
    /// The identical fragment was already stored: an idempotent retry.
    AlreadyStored,
}

/// Filesystem capacity of the data directory.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    pub capacity_bytes: u64,
    pub free_bytes: u64,
}

pub struct FragmentStore {
    fragments_dir: PathBuf,
    tmp_dir: PathBuf,
    data_dir_handle: File,
    syncers: Vec<Arc<DirectorySyncer>>,
    id_locks: Vec<Mutex<()>>,
    metrics: Arc<NodeMetrics>,
    /// Reused staging buffers of large writes.
    staging: Arc<StagingPool>,
    /// Fragments of at most `SMALL_FRAGMENT_BYTES_MAX` payload bytes.
    small: SmallFragments,
    /// Tripped by the first failed fsync: no write is acknowledged after it.
    fence: Arc<WriteFence>,
    /// Held for the store's lifetime: a second node on the same directory would break
    /// every durability argument (two tmp sweeps, two writers of one id).
    _lock_file: File,
}

impl FragmentStore {
    /// Opens (creating if needed) the store in `data_dir`: takes the directory lock,
    /// empties `tmp/` (nothing there was acknowledged), counts fragments and bytes.
    pub fn open(data_dir: &Path, metrics: Arc<NodeMetrics>) -> io::Result<Self> {
        // The node's own, nobody else's: fragments are other tenants' data.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)?;
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))?;
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join("LOCK"))?;
        rustix::fs::flock(
            &lock_file,
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        )
        .map_err(|_| {
            io::Error::other(format!(
                "data directory {} is in use by another process (LOCK is held)",
                data_dir.display()
            ))
        })?;
        let fragments_dir = data_dir.join("fragments");
        let tmp_dir = data_dir.join("tmp");
        fs::create_dir_all(&fragments_dir)?;
        fs::create_dir_all(&tmp_dir)?;
        let fence = WriteFence::new(Arc::clone(&metrics));
        let mut syncers = Vec::with_capacity(FAN_OUT);
        for prefix in 0..FAN_OUT {
            let name = format!("{prefix:02x}");
            let directory = fragments_dir.join(&name);
            fs::create_dir_all(&directory)?;
            syncers.push(DirectorySyncer::new(
                File::open(&directory)?,
                format!("fragments/{name}"),
                Arc::clone(&metrics),
                Arc::clone(&fence),
            ));
        }
        // The fan-out directories themselves must be durable before any fragment is
        // acknowledged inside them.
        File::open(&fragments_dir)?.sync_all()?;
        let data_dir_handle = File::open(data_dir)?;
        data_dir_handle.sync_all()?;
        let small = SmallFragments::open(&data_dir.join("small"))?;
        let removed = empty_directory(&tmp_dir)?;
        if removed > 0 {
            tracing::info!(removed, "removed unacknowledged writes from tmp/");
        }
        let store = Self {
            fragments_dir,
            tmp_dir,
            data_dir_handle,
            syncers,
            id_locks: (0..ID_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            metrics,
            staging: StagingPool::new(STAGING_BUFFERS_KEPT_MAX),
            small,
            fence,
            _lock_file: lock_file,
        };
        store.count_fragments()?;
        Ok(store)
    }

    /// The fence every write checks; tripped by the first failed fsync.
    pub fn write_fence(&self) -> &Arc<WriteFence> {
        &self.fence
    }

    pub fn fragment_path(&self, id: &FragmentId) -> PathBuf {
        let name = id.to_string();
        self.fragments_dir.join(&name[..2]).join(name)
    }

    /// Starts a write of `expected_length` payload bytes into a fresh temporary file;
    /// `keep_cached` as in [`FragmentWriter::create`].
    pub fn begin_write(
        &self,
        id: &FragmentId,
        expected_length: u64,
        keep_cached: bool,
    ) -> Result<FragmentWriter, StoreError> {
        self.fence.check()?;
        let path = self
            .tmp_dir
            .join(format!("{id}.{:016x}", rand::random::<u64>()));
        FragmentWriter::create(path, expected_length, keep_cached, &self.staging)
            .map_err(|error| self.count_write_error(error))
    }

    /// Finishes a write (`fdatasync`) and renames it into place. The caller must await
    /// the returned ticket (the directory fsync) before acknowledging.
    ///
    /// Crash after the rename but before the directory fsync: the fragment may or may
    /// not be there after restart — either way complete — and it was not acknowledged.
    pub fn finish_write(
        &self,
        id: &FragmentId,
        writer: FragmentWriter,
        claimed_crc: Crc32c,
    ) -> Result<(CommitOutcome, SyncTicket), StoreError> {
        let file_fsync = self.metrics.fsync_seconds.with_label_values(&["file"]);
        let staged = writer
            .finish(claimed_crc, &file_fsync)
            .map_err(|error| self.fsync_fatal("fdatasync of a fragment file", error))?;
        // A write that began before the fence tripped is not renamed into place: its
        // temporary file goes with `staged`.
        self.fence.check()?;
        let outcome = self.commit(id, staged)?;
        // Also for an identical copy already stored: its own rename may still be waiting
        // for its directory fsync, and 200 promises durability just like 201.
        Ok((outcome, self.syncer(id).sync_from_blocking_thread()))
    }

    fn count_stored(&self, id: &FragmentId, length: u64, replaced_length: Option<u64>) {
        let length = length as i64;
        match replaced_length {
            None => {
                self.metrics.stored_fragments.inc();
                self.metrics.stored_fragment_bytes.add(length);
            }
            Some(old) => {
                tracing::warn!(%id, "replaced a stored copy that failed verification");
                self.metrics.stored_fragment_bytes.add(length - old as i64);
            }
        }
    }

    fn syncer(&self, id: &FragmentId) -> &std::sync::Arc<DirectorySyncer> {
        &self.syncers[usize::from(id.shardlet.object.0[0])]
    }

    fn commit(
        &self,
        id: &FragmentId,
        mut staged: StagedFragment,
    ) -> Result<CommitOutcome, StoreError> {
        let path = self.fragment_path(id);
        let _guard = self.lock_id(id);
        let replaced_length = match FragmentReader::open(&path) {
            Err(StoreError::NotFound) => None,
            Ok(existing) => match existing.verify_all() {
                Ok(()) if existing.header == staged.header => {
                    return Ok(CommitOutcome::AlreadyStored)
                }
                Ok(()) => return Err(StoreError::FragmentExists),
                Err(error) => {
                    self.report_rot(id, &error);
                    Some(existing.header.payload_length)
                }
            },
            Err(StoreError::ChecksumMismatch(reason)) => {
                self.report_rot(id, &StoreError::ChecksumMismatch(reason));
                Some(0)
            }
            Err(error) => return Err(self.count_error(error)),
        };
        fs::rename(staged.temp.path(), &path).map_err(|error| self.count_write_error(error))?;
        staged.temp.disarm();
        self.count_stored(id, staged.header.payload_length, replaced_length);
        Ok(CommitOutcome::Created)
    }

    /// Makes every rename and unlink done so far in `id`'s directory durable.
    pub async fn sync_directory(&self, id: &FragmentId) -> Result<(), StoreError> {
        self.syncer(id).sync().await.map_err(StoreError::Fsync)
    }

    /// Header of a stored fragment, without reading its payload (HEAD).
    pub fn head(&self, id: &FragmentId) -> Result<FragmentHeader, StoreError> {
        if let Some(encoded) = self
            .small
            .get(id)
            .map_err(|error| self.count_read_error(error))?
        {
            return fragment_file::decode_header(&encoded).map_err(|error| self.count_error(error));
        }
        fragment_file::open_header(&self.fragment_path(id))
            .map(|(_, header)| header)
            .map_err(|error| self.count_error(error))
    }

    /// The fragment, from the small-fragment store or its file, header and table checked.
    pub fn open_reader(&self, id: &FragmentId) -> Result<FragmentReader, StoreError> {
        match self.small_reader(id) {
            Ok(Some(reader)) => Ok(reader),
            Ok(None) => FragmentReader::open(&self.fragment_path(id))
                .map_err(|error| self.count_error(error)),
            Err(error) => Err(self.count_error(error)),
        }
    }

    /// Verified bytes `start..end` of an open fragment.
    pub fn read_range(
        &self,
        reader: &FragmentReader,
        start: u64,
        end: u64,
    ) -> Result<bytes::Bytes, StoreError> {
        reader
            .read_range(start, end)
            .map_err(|error| self.count_error(error))
    }

    /// Removes a fragment; `false` if there was none. The caller must await the
    /// returned ticket (the directory fsync) before acknowledging; it is issued even when
    /// nothing was removed, because an earlier unlink of this id may still be waiting for
    /// its fsync and the answer promises the fragment is durably gone.
    ///
    /// Crash before the directory fsync: the fragment may reappear, complete, after
    /// restart; the DELETE was not acknowledged, so the caller retries it.
    pub fn delete(&self, id: &FragmentId) -> Result<(bool, SyncTicket), StoreError> {
        self.fence.check()?;
        let removed = self.remove(id)?;
        Ok((removed, self.syncer(id).sync_from_blocking_thread()))
    }

    /// Unlinks the file a PUT just renamed into place after the directory fsync that
    /// was to make it durable failed: the PUT was not acknowledged, and a copy whose
    /// name may not be on disk must not be found by a retry (which would verify it from
    /// the page cache and answer "already stored"). Best effort: the unlink is no more
    /// durable than the rename was, and a file that comes back after a crash is whole
    /// (its data was fdatasync'd) and unreferenced, an orphan the scrub removes.
    pub fn discard_unsynced(&self, id: &FragmentId) {
        let path = self.fragment_path(id);
        let _guard = self.lock_id(id);
        let length =
            fragment_file::open_header(&path).map_or(0, |(_, header)| header.payload_length);
        match fs::remove_file(&path) {
            Ok(()) => {
                self.metrics.stored_fragments.dec();
                self.metrics.stored_fragment_bytes.sub(length as i64);
                tracing::warn!(%id, "unlinked a fragment whose directory fsync failed");
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::error!(%id, %error, "cannot unlink a fragment whose directory fsync failed")
            }
        }
    }

    fn remove(&self, id: &FragmentId) -> Result<bool, StoreError> {
        let path = self.fragment_path(id);
        let _guard = self.lock_id(id);
        let mut removed_small = false;
        if let Some(encoded) = self
            .small
            .get(id)
            .map_err(|error| self.count_read_error(error))?
        {
            let length =
                fragment_file::decode_header(&encoded).map_or(0, |header| header.payload_length);
            self.small.delete(id).map_err(|error| {
                self.fsync_fatal(
                    "synced delete of the small-fragment store",
                    StoreError::Fsync(error),
                )
            })?;
            self.metrics.stored_fragments.dec();
            self.metrics.stored_fragment_bytes.sub(length as i64);
            removed_small = true;
        }
        let length = match fragment_file::open_header(&path) {
            Ok((_, header)) => header.payload_length,
            Err(StoreError::NotFound) => return Ok(removed_small),
            Err(_) => 0,
        };
        match fs::remove_file(&path) {
            Ok(()) => {
                self.metrics.stored_fragments.dec();
                self.metrics.stored_fragment_bytes.sub(length as i64);
                Ok(true)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(removed_small),
            Err(error) => Err(self.count_write_error(error)),
        }
    }

    /// Up to `limit` fragments with ids greater than `after`, ascending, and whether more
    /// exist. Names that are not fragment ids are skipped.
    pub fn list(
        &self,
        after: Option<&FragmentId>,
        limit: usize,
    ) -> Result<(Vec<ListedFragment>, bool), StoreError> {
        let first_prefix = after.map_or(0, |id| usize::from(id.shardlet.object.0[0]));
        let mut listed = Vec::with_capacity(limit.min(1024));
        for prefix in first_prefix..FAN_OUT {
            let directory = self.fragments_dir.join(format!("{prefix:02x}"));
            // Small fragments of this prefix (in id order, at most what the page still
            // needs plus one, which tells whether more follow) with their headers, then
            // the files: an id in both is listed once.
            let mut ids: std::collections::BTreeMap<
                FragmentId,
                Option<Result<FragmentHeader, StoreError>>,
            > = self
                .small
                .with_prefix(prefix as u8, after, limit - listed.len() + 1)
                .map_err(|error| self.count_read_error(error))?
                .into_iter()
                .map(|(id, header)| (id, Some(header)))
                .collect();
            for entry in fs::read_dir(&directory).map_err(|error| self.count_read_error(error))? {
                let entry = entry.map_err(|error| self.count_read_error(error))?;
                if let Some(id) = entry
                    .file_name()
                    .to_str()
                    .and_then(|name| name.parse().ok())
                {
                    if after.is_none_or(|after| &id > after) {
                        ids.entry(id).or_insert(None);
                    }
                }
            }
            for (id, small) in ids {
                if listed.len() == limit {
                    return Ok((listed, true));
                }
                let header = match small {
                    Some(header) => header,
                    None => fragment_file::open_header(&self.fragment_path(&id))
                        .map(|(_, header)| header),
                };
                match header {
                    Ok(header) => listed.push(ListedFragment {
                        id,
                        length: header.payload_length,
                        crc32c: header.payload_crc,
                    }),
                    // Deleted since the directory was read.
                    Err(StoreError::NotFound) => {}
                    // A damaged file is still listed so a scrub finds and repairs it.
                    Err(_) => listed.push(ListedFragment {
                        id,
                        length: 0,
                        crc32c: Crc32c(0),
                    }),
                }
            }
        }
        Ok((listed, false))
    }

    pub fn capacity(&self) -> io::Result<Capacity> {
        let stats = rustix::fs::fstatvfs(&self.data_dir_handle)?;
        Ok(Capacity {
            capacity_bytes: stats.f_blocks.saturating_mul(stats.f_frsize),
            free_bytes: stats.f_bavail.saturating_mul(stats.f_frsize),
        })
    }

    pub fn fragment_count(&self) -> u64 {
        self.metrics.stored_fragments.get().max(0) as u64
    }

    pub fn fragment_bytes(&self) -> u64 {
        self.metrics.stored_fragment_bytes.get().max(0) as u64
    }

    fn count_fragments(&self) -> io::Result<()> {
        let (mut count, mut bytes) = (0i64, 0i64);
        for prefix in 0..FAN_OUT {
            let directory = self.fragments_dir.join(format!("{prefix:02x}"));
            for entry in fs::read_dir(directory)? {
                let path = entry?.path();
                if let Ok((_, header)) = fragment_file::open_header(&path) {
                    bytes += header.payload_length as i64;
                }
                count += 1;
            }
        }
        let (small_count, small_bytes) = self.small.count()?;
        self.metrics.stored_fragments.set(count + small_count);
        self.metrics.stored_fragment_bytes.set(bytes + small_bytes);
        tracing::info!(
            files = count,
            small = small_count,
            bytes = bytes + small_bytes,
            "fragment store opened"
        );
        Ok(())
    }

    /// The small-fragment store itself, for tests that damage a stored value.
    #[cfg(test)]
    pub(crate) fn small_store(&self) -> &SmallFragments {
        &self.small
    }

    fn lock_id(&self, id: &FragmentId) -> MutexGuard<'_, ()> {
        let stripe = (id.shardlet.hash_key() ^ u64::from(id.index.0)) as usize % ID_LOCK_STRIPES;
        // The guarded data is `()`: a poisoned lock protects nothing broken.
        self.id_locks[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn report_rot(&self, id: &FragmentId, error: &StoreError) {
        self.metrics.checksum_failures_total.inc();
        tracing::error!(%id, %error, "stored fragment failed verification");
    }

    /// Counts `error`, and if it is a failed fsync, trips the fence naming `what`.
    fn fsync_fatal(&self, what: &str, error: StoreError) -> StoreError {
        if let StoreError::Fsync(source) = &error {
            self.fence.trip(what, source);
        }
        self.count_error(error)
    }

    /// Counts an error in the health counters on its way out.
    fn count_error(&self, error: StoreError) -> StoreError {
        match &error {
            StoreError::ChecksumMismatch(reason) => {
                self.metrics.checksum_failures_total.inc();
                tracing::error!(%reason, "stored fragment failed verification");
            }
            StoreError::Read(_) => self.metrics.read_errors_total.inc(),
            StoreError::Write(_) => self.metrics.write_errors_total.inc(),
            StoreError::Fsync(_) => self.metrics.fsync_failures_total.inc(),
            _ => {}
        }
        error
    }

    fn count_read_error(&self, error: io::Error) -> StoreError {
        self.count_error(StoreError::Read(error))
    }

    fn count_write_error(&self, error: io::Error) -> StoreError {
        self.count_error(StoreError::Write(error))
    }
}

/// Removes every file in `directory` and fsyncs it; returns how many were removed.
fn empty_directory(directory: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(directory)? {
        let path = entry?.path();
        if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
        removed += 1;
    }
    File::open(directory)?.sync_all()?;
    Ok(removed)
}
