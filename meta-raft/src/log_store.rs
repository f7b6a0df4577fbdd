//! The raft log and vote, in RocksDB.
//!
//! Durability: every `append` call is ONE RocksDB write batch written WITHOUT sync (so the
//! entries are readable at once, as openraft requires) and its callback is handed to the
//! [`WalSyncer`] thread, which fsyncs the WAL (`flush_wal(true)`) and only then reports the
//! entries persisted. Every append that arrives while one fsync runs is covered by the
//! next: one fsync per round however many appends, and openraft's core is never blocked
//! on the disk (it replicates to followers while the leader's own fsync runs). This is
//! the log-level half of group commit (the other half is [`crate::batcher`]).
//!
//! Order: RocksDB's WAL is one ordered file, so a sync covers every earlier write, and
//! the synced `truncate`/vote writes also persist every append queued before them.

// openraft's trait methods return its `StorageError` (224 bytes); our helpers return the
// same type so `?` composes, instead of boxing and unboxing at every call.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, StorageError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};

use crate::metrics::MetaMetrics;
use crate::storage::{io_error, CF_RAFT_LOG, CF_RAFT_STATE};
use crate::types::{MemberId, TypeConfig};

const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
const KEY_COMMITTED: &[u8] = b"committed";

/// The last purged log id as stored, read directly: the state machine checks at start-up
/// whether openraft already purged past it (`snapshot_install`, roll forward).
pub fn read_last_purged(db: &DB) -> anyhow::Result<Option<LogId<MemberId>>> {
    let family = db
        .cf_handle(CF_RAFT_STATE)
        .ok_or_else(|| anyhow::anyhow!("no raft_state family"))?;
    match db.get_cf(family, KEY_LAST_PURGED)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
    }
}

#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    metrics: Arc<MetaMetrics>,
    syncer: WalSyncer,
}

type StoreResult<T> = Result<T, StorageError<MemberId>>;

/// Appends waiting for a WAL fsync at most; a full queue makes `append` wait (bounded
/// memory, and back-pressure on the raft core only when the disk cannot keep up).
const SYNC_QUEUE_MAX: usize = 4096;

/// A thread that fsyncs the WAL for appends written without sync, and then tells
/// openraft they are persisted. Ends when every `LogStore` clone is dropped.
#[derive(Clone)]
struct WalSyncer {
    queue: std::sync::mpsc::SyncSender<LogFlushed<TypeConfig>>,
}

impl WalSyncer {
    fn start(db: Arc<DB>, metrics: Arc<MetaMetrics>) -> Self {
        let (queue, receiver) =
            std::sync::mpsc::sync_channel::<LogFlushed<TypeConfig>>(SYNC_QUEUE_MAX);
        let spawned = std::thread::Builder::new()
            .name("raft-wal-sync".to_string())
            .spawn(move || {
                while let Ok(first) = receiver.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(receiver.try_iter());
                    let started = Instant::now();
                    let result = db.flush_wal(true);
                    metrics
                        .log_append_sync_seconds
                        .observe(started.elapsed().as_secs_f64());
                    metrics.log_wal_syncs_total.inc();
                    if let Err(error) = &result {
                        tracing::error!(%error, "raft log WAL sync failed");
                    }
                    for callback in waiting {
                        let outcome = match &result {
                            Ok(()) => Ok(()),
                            Err(error) => Err(std::io::Error::other(error.to_string())),
                        };
                        callback.log_io_completed(outcome);
                    }
                }
            });
        if let Err(error) = spawned {
            // Without the thread nothing would ever be reported durable; the caller's
            // first append then fails loudly instead (its send fails).
            tracing::error!(%error, "cannot start the raft log WAL sync thread");
        }
        WalSyncer { queue }
    }
}

impl LogStore {
    pub fn new(db: Arc<DB>, metrics: Arc<MetaMetrics>) -> Self {
        let syncer = WalSyncer::start(db.clone(), metrics.clone());
        LogStore {
            db,
            metrics,
            syncer,
        }
    }

    fn log_family(&self) -> StoreResult<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(CF_RAFT_LOG)
            .ok_or_else(|| io_error(ErrorSubject::Logs, ErrorVerb::Read, "no raft_log family"))
    }

    fn state_family(&self) -> StoreResult<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(CF_RAFT_STATE)
            .ok_or_else(|| io_error(ErrorSubject::Store, ErrorVerb::Read, "no raft_state family"))
    }

    fn read_state<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> StoreResult<Option<T>> {
        let family = self.state_family()?;
        let bytes = self
            .db
            .get_cf(family, key)
            .map_err(|error| io_error(ErrorSubject::Store, ErrorVerb::Read, error))?;
        bytes
            .map(|bytes| serde_json::from_slice(&bytes))
            .transpose()
            .map_err(|error| io_error(ErrorSubject::Store, ErrorVerb::Read, error))
    }

    /// Writes one raft-state key. `sync` decides whether it survives an OS crash (the vote
    /// must; the committed pointer is an optimisation and may lag).
    fn write_state<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
        sync: bool,
    ) -> StoreResult<()> {
        let family = self.state_family()?;
        let bytes = serde_json::to_vec(value)
            .map_err(|error| io_error(ErrorSubject::Store, ErrorVerb::Write, error))?;
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db
            .put_cf_opt(family, key, bytes, &options)
            .map_err(|error| io_error(ErrorSubject::Store, ErrorVerb::Write, error))
    }

    fn last_entry_log_id(&self) -> StoreResult<Option<LogId<MemberId>>> {
        let family = self.log_family()?;
        let mut iterator = self.db.iterator_cf(family, IteratorMode::End);
        match iterator.next() {
            None => Ok(None),
            Some(Err(error)) => Err(io_error(ErrorSubject::Logs, ErrorVerb::Read, error)),
            Some(Ok((_, bytes))) => {
                let entry: Entry<TypeConfig> = serde_json::from_slice(&bytes)
                    .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Read, error))?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

/// Whether `db` holds any raft state: a vote, a log entry or a purge point. A member
/// with none never belonged to a cluster (or lost what it had: `crate::identity`).
pub fn holds_state(db: &DB) -> anyhow::Result<bool> {
    let state = db
        .cf_handle(CF_RAFT_STATE)
        .ok_or_else(|| anyhow::anyhow!("no raft_state family"))?;
    let log = db
        .cf_handle(CF_RAFT_LOG)
        .ok_or_else(|| anyhow::anyhow!("no raft_log family"))?;
    if db.get_cf(state, KEY_VOTE)?.is_some() || db.get_cf(state, KEY_LAST_PURGED)?.is_some() {
        return Ok(true);
    }
    Ok(db.iterator_cf(log, IteratorMode::Start).next().is_some())
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<R: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: R,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(index) => *index,
            Bound::Excluded(index) => index.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let family = self.log_family()?;
        let start_key = index_key(start);
        let iterator = self
            .db
            .iterator_cf(family, IteratorMode::From(&start_key, Direction::Forward));
        let mut entries = Vec::new();
        for item in iterator {
            let (key, bytes) =
                item.map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Read, error))?;
            let index = key
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    io_error(
                        ErrorSubject::Logs,
                        ErrorVerb::Read,
                        "log key is not 8 bytes",
                    )
                })?;
            if !range.contains(&index) {
                break;
            }
            let entry: Entry<TypeConfig> = serde_json::from_slice(&bytes)
                .map_err(|error| io_error(ErrorSubject::LogIndex(index), ErrorVerb::Read, error))?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<MemberId>> = self.read_state(KEY_LAST_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Durable before returning (synced): a member must never vote twice in one term.
    async fn save_vote(&mut self, vote: &Vote<MemberId>) -> StoreResult<()> {
        self.write_state(KEY_VOTE, vote, true)
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<MemberId>>> {
        self.read_state(KEY_VOTE)
    }

    /// Not synced: after a crash the pointer may be older than the truth, which only means
    /// a restarted member re-applies fewer entries before it hears from the leader. Saving
    /// it lets a single-member cluster serve everything it committed right after restart.
    async fn save_committed(&mut self, committed: Option<LogId<MemberId>>) -> StoreResult<()> {
        self.write_state(KEY_COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<MemberId>>> {
        Ok(self
            .read_state::<Option<LogId<MemberId>>>(KEY_COMMITTED)?
            .flatten())
    }

    /// One write batch, one sync, then the callback. A crash before the sync completes
    /// loses the whole batch (RocksDB write batches are atomic in the WAL) and openraft has
    /// not acknowledged any of it; after the sync, every entry survives.
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let family = self.log_family()?;
        let mut batch = WriteBatch::default();
        let mut count = 0_u64;
        for entry in entries {
            let bytes = serde_json::to_vec(&entry).map_err(|error| {
                io_error(ErrorSubject::Log(entry.log_id), ErrorVerb::Write, error)
            })?;
            batch.put_cf(family, index_key(entry.log_id.index), bytes);
            count += 1;
        }
        // Not synced here: readable at once; durable when the syncer's fsync returns.
        let result = self.db.write(batch);
        self.metrics.log_append_calls_total.inc();
        self.metrics.log_entries_appended_total.inc_by(count);
        match result {
            Ok(()) => {
                use std::sync::mpsc::TrySendError;
                let stopped = || {
                    io_error(
                        ErrorSubject::Logs,
                        ErrorVerb::Write,
                        "WAL sync thread stopped",
                    )
                };
                match self.syncer.queue.try_send(callback) {
                    Ok(()) => Ok(()),
                    Err(TrySendError::Full(callback)) => {
                        // SYNC_QUEUE_MAX appends wait for one fsync: wait for room off
                        // the async workers.
                        let queue = self.syncer.queue.clone();
                        match tokio::task::spawn_blocking(move || queue.send(callback)).await {
                            Ok(Ok(())) => Ok(()),
                            _ => Err(stopped()),
                        }
                    }
                    Err(TrySendError::Disconnected(callback)) => {
                        callback.log_io_completed(Err(std::io::Error::other(
                            "WAL sync thread stopped",
                        )));
                        Err(stopped())
                    }
                }
            }
            Err(error) => {
                let message = error.to_string();
                callback.log_io_completed(Err(std::io::Error::other(message.clone())));
                Err(io_error(ErrorSubject::Logs, ErrorVerb::Write, message))
            }
        }
    }

    /// Deletes entries from `log_id.index` on (a conflicting suffix from an old leader).
    /// Synced, so a crash cannot resurrect entries the new leader overwrote.
    async fn truncate(&mut self, log_id: LogId<MemberId>) -> StoreResult<()> {
        let family = self.log_family()?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(family, index_key(log_id.index), index_key(u64::MAX));
        batch.delete_cf(family, index_key(u64::MAX));
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(batch, &options)
            .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Delete, error))
    }

    /// Records the purge point and deletes entries up to it in one atomic batch: after a
    /// crash either both happened or neither (harmless: the entries are in the snapshot).
    async fn purge(&mut self, log_id: LogId<MemberId>) -> StoreResult<()> {
        let log_family = self.log_family()?;
        let state_family = self.state_family()?;
        let bytes = serde_json::to_vec(&log_id)
            .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Delete, error))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(state_family, KEY_LAST_PURGED, bytes);
        batch.delete_range_cf(
            log_family,
            index_key(0),
            index_key(log_id.index.saturating_add(1)),
        );
        self.db
            .write(batch)
            .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Delete, error))
    }
}
