//! The state machine: applies committed proposals to the `kv` column family, and builds
//! and installs snapshots.
//!
//! Durability: `apply` writes each call's effects (data, last applied log id, membership,
//! revision counter) in ONE atomic RocksDB write batch *without* sync. The raft log is the
//! durable record: if the OS crashes, the state machine comes back at some earlier
//! consistent point (data and last-applied move together) and openraft re-applies the
//! rest from the log. A snapshot write IS synced, because once a snapshot exists openraft
//! may purge the log entries it covers; the sync also makes every earlier apply durable
//! (the WAL is one ordered file), so nothing the purge drops is only in memory.

// openraft's trait methods return its `StorageError` (224 bytes); our helpers return the
// same type so `?` composes, instead of boxing and unboxing at every call.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StoredMembership,
};
use rocksdb::{IteratorMode, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};

use crate::blob::Blob;
use crate::command::{
    check_conditions, BatchOutcome, Operation, ProposalOutcome, ScanPage, VersionedValue,
};
use crate::metrics::MetaMetrics;
use crate::snapshot::{key_range_end, SnapshotPayload};
use crate::storage::{io_error, CF_KV, CF_MACHINE_STATE};
use crate::types::{MemberId, TypeConfig};

const KEY_APPLIED: &[u8] = b"applied";
const KEY_SNAPSHOT: &[u8] = b"snapshot";

/// Where the state machine stands, stored under one key so it moves atomically.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId<MemberId>>,
    membership: StoredMembership<MemberId, BasicNode>,
    /// The revision counter: the version the next applied batch is NOT allowed to reuse.
    revision: u64,
}

/// A stored snapshot: metadata and payload together.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<MemberId, BasicNode>,
    data: Blob,
}

type StoreResult<T> = Result<T, StorageError<MemberId>>;

pub struct StateMachine {
    db: Arc<DB>,
    state: AppliedState,
    metrics: Arc<MetaMetrics>,
    snapshots_built: u64,
}

/// Read access to the applied key-value data, shared with the HTTP API. Reads see only
/// applied (committed) state; whether that is linearizable is decided by the caller
/// (see `server::kv_routes`).
#[derive(Clone)]
pub struct KvReader {
    db: Arc<DB>,
}

impl KvReader {
    pub fn new(db: Arc<DB>) -> Self {
        KvReader { db }
    }

    pub fn get(&self, key: &[u8]) -> anyhow::Result<Option<VersionedValue>> {
        let family = self
            .db
            .cf_handle(CF_KV)
            .ok_or_else(|| anyhow::anyhow!("no kv column family"))?;
        match self.db.get_cf(family, key)? {
            None => Ok(None),
            Some(bytes) => VersionedValue::decode(&bytes)
                .map(Some)
                .ok_or_else(|| anyhow::anyhow!("stored entry for a key is corrupt (too short)")),
        }
    }

    /// Keys starting with `prefix`, in byte order, strictly after `start_after` when given,
    /// at most `limit` of them.
    pub fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> anyhow::Result<ScanPage> {
        let family = self
            .db
            .cf_handle(CF_KV)
            .ok_or_else(|| anyhow::anyhow!("no kv column family"))?;
        let start = match start_after {
            Some(after) if after >= prefix => after.to_vec(),
            _ => prefix.to_vec(),
        };
        let iterator = self.db.iterator_cf(
            family,
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        let mut page = ScanPage::default();
        for item in iterator {
            let (key, bytes) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            if Some(key.as_ref()) == start_after {
                continue;
            }
            if page.entries.len() == limit {
                page.next_start_after = page.entries.last().map(|(key, _)| key.clone());
                break;
            }
            let value = VersionedValue::decode(&bytes)
                .ok_or_else(|| anyhow::anyhow!("stored entry for a key is corrupt (too short)"))?;
            page.entries.push((Blob(key.to_vec()), value));
        }
        Ok(page)
    }
}

impl StateMachine {
    pub fn open(db: Arc<DB>, metrics: Arc<MetaMetrics>) -> anyhow::Result<Self> {
        let family = db
            .cf_handle(CF_MACHINE_STATE)
            .ok_or_else(|| anyhow::anyhow!("no machine_state column family"))?;
        let state = match db.get_cf(family, KEY_APPLIED)? {
            Some(bytes) => serde_json::from_slice(&bytes)?,
            None => AppliedState::default(),
        };
        Ok(StateMachine {
            db,
            state,
            metrics,
            snapshots_built: 0,
        })
    }

    pub fn reader(&self) -> KvReader {
        KvReader::new(self.db.clone())
    }

    fn family(&self, name: &str) -> StoreResult<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| {
            io_error(
                ErrorSubject::StateMachine,
                ErrorVerb::Read,
                format!("no {name} family"),
            )
        })
    }

    /// Serializes the whole applied state. Runs on the state machine's own task, between
    /// applies, so the copy is exactly the state at `last_applied`.
    fn serialize_state(&self) -> StoreResult<Vec<u8>> {
        let family = self.family(CF_KV)?;
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(family, IteratorMode::Start) {
            let (key, value) =
                item.map_err(|error| io_error(ErrorSubject::StateMachine, ErrorVerb::Read, error))?;
            entries.push((Blob(key.to_vec()), Blob(value.to_vec())));
        }
        let payload = SnapshotPayload::new(self.state.revision, entries);
        serde_json::to_vec(&payload)
            .map_err(|error| io_error(ErrorSubject::StateMachine, ErrorVerb::Read, error))
    }

    /// Stores a snapshot, synced (see the module comment for why).
    fn store_snapshot(&self, batch: &mut WriteBatch, snapshot: &StoredSnapshot) -> StoreResult<()> {
        let family = self.family(CF_MACHINE_STATE)?;
        let bytes = serde_json::to_vec(snapshot)
            .map_err(|error| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, error))?;
        batch.put_cf(family, KEY_SNAPSHOT, bytes);
        Ok(())
    }

    fn write_synced(&self, batch: WriteBatch) -> StoreResult<()> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(batch, &options)
            .map_err(|error| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, error))
    }

    fn put_applied_state(&self, batch: &mut WriteBatch) -> StoreResult<()> {
        let family = self.family(CF_MACHINE_STATE)?;
        let bytes = serde_json::to_vec(&self.state)
            .map_err(|error| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, error))?;
        batch.put_cf(family, KEY_APPLIED, bytes);
        Ok(())
    }

    /// Applies one proposal's batches in order into `batch`. `pending` holds what earlier
    /// batches of this apply call wrote (`None`: deleted), so a later batch's conditions
    /// see them exactly as if they had been applied one by one.
    fn apply_proposal(
        &mut self,
        proposal: &crate::command::Proposal,
        batch: &mut WriteBatch,
        pending: &mut HashMap<Vec<u8>, Option<VersionedValue>>,
    ) -> StoreResult<ProposalOutcome> {
        // A handle on a local clone, so `self.state` stays mutable below.
        let db = Arc::clone(&self.db);
        let family = db
            .cf_handle(CF_KV)
            .ok_or_else(|| io_error(ErrorSubject::StateMachine, ErrorVerb::Read, "no kv family"))?;
        let mut outcomes = Vec::with_capacity(proposal.batches.len());
        for client_batch in &proposal.batches {
            let mut read_error = None;
            let checked = check_conditions(client_batch, |key| {
                if let Some(entry) = pending.get(key) {
                    return entry.clone();
                }
                match db.get_cf(family, key) {
                    Ok(bytes) => bytes.and_then(|bytes| VersionedValue::decode(&bytes)),
                    Err(error) => {
                        read_error = Some(error);
                        None
                    }
                }
            });
            if let Some(error) = read_error {
                return Err(io_error(ErrorSubject::StateMachine, ErrorVerb::Read, error));
            }
            if let Err(failed) = checked {
                self.metrics
                    .applied_batches_total
                    .with_label_values(&["condition_failed"])
                    .inc();
                outcomes.push(failed);
                continue;
            }
            self.state.revision += 1;
            let version = self.state.revision;
            for operation in &client_batch.operations {
                match operation {
                    Operation::Put { key, value } => {
                        let entry = VersionedValue {
                            version,
                            value: value.clone(),
                        };
                        batch.put_cf(family, key.as_slice(), entry.encode());
                        pending.insert(key.0.clone(), Some(entry));
                    }
                    Operation::Delete { key } => {
                        batch.delete_cf(family, key.as_slice());
                        pending.insert(key.0.clone(), None);
                    }
                }
            }
            self.metrics
                .applied_batches_total
                .with_label_values(&["applied"])
                .inc();
            outcomes.push(BatchOutcome::Applied { version });
        }
        Ok(ProposalOutcome { outcomes })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = PreparedSnapshot;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(
        Option<LogId<MemberId>>,
        StoredMembership<MemberId, BasicNode>,
    )> {
        Ok((self.state.last_applied, self.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<ProposalOutcome>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let mut pending = HashMap::new();
        let mut responses = Vec::new();
        for entry in entries {
            self.state.last_applied = Some(entry.log_id);
            let response = match &entry.payload {
                EntryPayload::Blank => ProposalOutcome::default(),
                EntryPayload::Normal(proposal) => {
                    self.apply_proposal(proposal, &mut batch, &mut pending)?
                }
                EntryPayload::Membership(membership) => {
                    self.state.membership =
                        StoredMembership::new(Some(entry.log_id), membership.clone());
                    ProposalOutcome::default()
                }
            };
            responses.push(response);
        }
        self.put_applied_state(&mut batch)?;
        self.db
            .write(batch)
            .map_err(|error| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, error))?;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshots_built += 1;
        PreparedSnapshot {
            db: self.db.clone(),
            metrics: self.metrics.clone(),
            state: self.state.clone(),
            data: self.serialize_state(),
            sequence: self.snapshots_built,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Replaces the whole state with the snapshot in ONE synced write batch: a crash leaves
    /// either the old state or the new one, never a mix.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<MemberId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let data = snapshot.into_inner();
        let subject = || ErrorSubject::Snapshot(Some(meta.signature()));
        let payload = SnapshotPayload::decode(&data)
            .map_err(|error| io_error(subject(), ErrorVerb::Read, error))?;
        let db = Arc::clone(&self.db);
        let family = db
            .cf_handle(CF_KV)
            .ok_or_else(|| io_error(subject(), ErrorVerb::Write, "no kv family"))?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(family, Vec::<u8>::new(), key_range_end());
        for (key, value) in &payload.entries {
            batch.put_cf(family, key.as_slice(), value.as_slice());
        }
        self.state = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            revision: payload.revision,
        };
        self.put_applied_state(&mut batch)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: Blob(data),
        };
        self.store_snapshot(&mut batch, &stored)?;
        self.write_synced(batch)?;
        self.metrics.snapshots_installed_total.inc();
        tracing::info!(snapshot = %meta.snapshot_id, revision = payload.revision, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        let family = self.family(CF_MACHINE_STATE)?;
        let bytes = self
            .db
            .get_cf(family, KEY_SNAPSHOT)
            .map_err(|error| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, error))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let stored: StoredSnapshot = serde_json::from_slice(&bytes)
            .map_err(|error| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, error))?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data.0)),
        }))
    }
}

/// A snapshot whose data was copied on the state machine's task; `build_snapshot` (run
/// by openraft on another task) only stores and returns it.
pub struct PreparedSnapshot {
    db: Arc<DB>,
    metrics: Arc<MetaMetrics>,
    state: AppliedState,
    data: StoreResult<Vec<u8>>,
    sequence: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for PreparedSnapshot {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let data = std::mem::replace(&mut self.data, Ok(Vec::new()))?;
        let last = self.state.last_applied;
        let snapshot_id = match last {
            Some(log_id) => format!("{}-{}-{}", log_id.leader_id, log_id.index, self.sequence),
            None => format!("empty-{}", self.sequence),
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: self.state.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: Blob(data.clone()),
        };
        let family = self.db.cf_handle(CF_MACHINE_STATE).ok_or_else(|| {
            io_error(
                ErrorSubject::Snapshot(None),
                ErrorVerb::Write,
                "no machine_state family",
            )
        })?;
        let bytes = serde_json::to_vec(&stored)
            .map_err(|error| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, error))?;
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .put_cf_opt(family, KEY_SNAPSHOT, bytes, &options)
            .map_err(|error| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, error))?;
        self.metrics.snapshots_built_total.inc();
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
