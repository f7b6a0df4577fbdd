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
//!
//! Snapshots are files (`snapshot_file`, format 2), built by streaming a RocksDB snapshot
//! (`snapshot_build`) and installed in bounded batches into the key-value family that is
//! not serving, then switched to in one synced write (`snapshot_install`: what survives a
//! crash at each step). Neither holds the state in memory.

// openraft's trait methods return its `StorageError` (224 bytes); our helpers return the
// same type so `?` composes, instead of boxing and unboxing at every call.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StoredMembership,
};
use rocksdb::{WriteBatch, DB};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::command::{check_conditions, BatchOutcome, Operation, ProposalOutcome, VersionedValue};
pub use crate::kv_reader::KvReader;
use crate::metrics::MetaMetrics;
use crate::snapshot_build::Built;
use crate::snapshot_file::FORMAT_VERSION;
use crate::snapshot_install::PAUSE_AFTER_BATCHES_VARIABLE;
use crate::snapshot_metrics::SnapshotMetrics;
use crate::snapshot_receive::SnapshotReceiver;
use crate::snapshot_store::{
    self, PendingInstall, SnapshotDirectory, SnapshotRecord, RECEIVED_FILE,
};
use crate::storage::{io_error, KvFamily, CF_MACHINE_STATE};
use crate::types::{MemberId, TypeConfig};

const KEY_APPLIED: &[u8] = b"applied";

/// Where the state machine stands, stored under one key so it moves atomically.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId<MemberId>>,
    membership: StoredMembership<MemberId, BasicNode>,
    /// The revision counter: the version the next applied batch is NOT allowed to reuse.
    revision: u64,
    /// The key-value family holding this state (absent in a database of an earlier
    /// release: the primary one, the only one it had).
    #[serde(default)]
    kv_family: KvFamily,
}

type StoreResult<T> = Result<T, StorageError<MemberId>>;

pub struct StateMachine {
    db: Arc<DB>,
    state: AppliedState,
    metrics: Arc<MetaMetrics>,
    snapshot_metrics: Arc<SnapshotMetrics>,
    snapshots_built: u64,
    /// The family readers use; changed only together with `state.kv_family`.
    serving: Arc<RwLock<KvFamily>>,
    directory: SnapshotDirectory,
    /// Held while the snapshot record is read and its file opened, or while it is
    /// replaced and the previous file removed: builds finish on their own task.
    records: Arc<Mutex<()>>,
    /// `snapshot_install::PAUSE_AFTER_BATCHES_VARIABLE` (tests only).
    install_pause_after_batches: Option<u64>,
}

impl StateMachine {
    /// Opens the state machine of `db`: its applied state, its snapshot directory (beside
    /// the database; files no record names are left-overs of a crash and removed), and a
    /// format-1 snapshot of an earlier release converted to a file.
    pub fn open(db: Arc<DB>, metrics: Arc<MetaMetrics>) -> anyhow::Result<Self> {
        let family = db
            .cf_handle(CF_MACHINE_STATE)
            .ok_or_else(|| anyhow::anyhow!("no machine_state column family"))?;
        let state: AppliedState = match db.get_cf(family, KEY_APPLIED)? {
            Some(bytes) => serde_json::from_slice(&bytes)?,
            None => AppliedState::default(),
        };
        let directory = SnapshotDirectory::beside(db.path())?;
        snapshot_store::convert_legacy(&db, &directory)?;
        let snapshot_metrics = Arc::new(SnapshotMetrics::register(&metrics.registry)?);
        let install_pause_after_batches = std::env::var(PAUSE_AFTER_BATCHES_VARIABLE)
            .ok()
            .and_then(|value| value.parse().ok());
        let mut machine = StateMachine {
            db,
            serving: Arc::new(RwLock::new(state.kv_family)),
            state,
            metrics,
            snapshot_metrics,
            snapshots_built: 0,
            directory,
            records: Arc::new(Mutex::new(())),
            install_pause_after_batches,
        };
        machine.resolve_pending_install()?;
        let record = snapshot_store::read_record(&machine.db)?;
        machine
            .directory
            .remove_all_except(record.as_ref().map(|record| record.file.as_str()))?;
        if let Some(record) = &record {
            let metrics = &machine.snapshot_metrics;
            metrics.snapshot_bytes.set(gauge(record.bytes));
            metrics.snapshot_entries.set(gauge(record.entries));
        }
        Ok(machine)
    }

    /// A pending install a crash interrupted (`snapshot_install`): rolled forward if
    /// openraft already purged its log past the applied state — it had accepted the
    /// snapshot, and the log no longer holds what lies between — and otherwise forgotten:
    /// the old state and an intact log, and the leader sends the snapshot again.
    fn resolve_pending_install(&mut self) -> anyhow::Result<()> {
        let Some(pending) = snapshot_store::read_pending(&self.db)? else {
            return Ok(());
        };
        let last_purged = crate::log_store::read_last_purged(&self.db)?;
        if last_purged > self.state.last_applied && pending.meta.last_log_id >= last_purged {
            tracing::warn!(snapshot = %pending.meta.snapshot_id, "completing a snapshot install a crash interrupted");
            self.switch_to(&pending)
        } else {
            tracing::warn!(snapshot = %pending.meta.snapshot_id, "forgetting a snapshot install a crash interrupted before raft took it");
            let mut batch = WriteBatch::default();
            snapshot_store::delete_pending(&self.db, &mut batch)?;
            snapshot_store::write_synced(&self.db, batch)
        }
    }

    /// Step 5 of `snapshot_install`: switches to the staged family in ONE synced batch
    /// (applied state, record of the current snapshot, pending record removed).
    fn switch_to(&mut self, pending: &PendingInstall) -> anyhow::Result<()> {
        let state = AppliedState {
            last_applied: pending.meta.last_log_id,
            membership: pending.meta.last_membership.clone(),
            revision: pending.revision,
            kv_family: pending.family,
        };
        let record = SnapshotRecord {
            meta: pending.meta.clone(),
            file: pending.file.clone(),
            bytes: pending.bytes,
            entries: pending.entries,
            format: FORMAT_VERSION,
        };
        let _records = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous = snapshot_store::read_record(&self.db)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.db
                .cf_handle(CF_MACHINE_STATE)
                .ok_or_else(|| anyhow::anyhow!("no machine_state family"))?,
            KEY_APPLIED,
            serde_json::to_vec(&state)?,
        );
        snapshot_store::put_record(&self.db, &mut batch, &record)?;
        snapshot_store::delete_pending(&self.db, &mut batch)?;
        // Readers of the old family finish before the switch (`KvReader`).
        let mut serving = self
            .serving
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        snapshot_store::write_synced(&self.db, batch)?;
        *serving = pending.family;
        drop(serving);
        self.state = state;
        if let Some(previous) = previous.filter(|previous| previous.file != record.file) {
            self.directory.remove(&previous.file);
        }
        // The old family's data is garbage now: free its space in the background. A
        // crash meanwhile leaves garbage the next install empties first.
        let db = self.db.clone();
        let old = pending.family.other();
        std::thread::spawn(move || clear_family(&db, old));
        self.snapshot_metrics
            .snapshot_bytes
            .set(gauge(pending.bytes));
        self.snapshot_metrics
            .snapshot_entries
            .set(gauge(pending.entries));
        Ok(())
    }

    pub fn reader(&self) -> KvReader {
        KvReader::new(self.db.clone(), self.serving.clone())
    }

    /// What the `/raft/snapshot` route hands received chunks to.
    pub fn snapshot_receiver(&self) -> SnapshotReceiver {
        SnapshotReceiver::new(
            self.db.clone(),
            self.serving.clone(),
            self.directory.clone(),
            self.snapshot_metrics.clone(),
            self.install_pause_after_batches,
        )
    }

    fn put_applied_state(&self, batch: &mut WriteBatch) -> StoreResult<()> {
        let family = self.db.cf_handle(CF_MACHINE_STATE).ok_or_else(|| {
            io_error(
                ErrorSubject::StateMachine,
                ErrorVerb::Write,
                "no machine_state family",
            )
        })?;
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
        let name = self.state.kv_family.name();
        let family = db.cf_handle(name).ok_or_else(|| {
            io_error(
                ErrorSubject::StateMachine,
                ErrorVerb::Read,
                format!("no {name} family"),
            )
        })?;
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
        let (taken, view_taken) = tokio::sync::oneshot::channel();
        let db = self.db.clone();
        let family = self.state.kv_family.name();
        let path = self.directory.building_file();
        let revision = self.state.revision;
        let started = Instant::now();
        let build = tokio::task::spawn_blocking(move || {
            crate::snapshot_build::build(db, family, path, revision, taken)
        });
        // Wait only until the build's RocksDB snapshot is taken: no apply runs meanwhile,
        // so `self.state` below is exactly the state the file will hold.
        let _ = view_taken.await;
        PreparedSnapshot {
            db: self.db.clone(),
            metrics: self.metrics.clone(),
            snapshot_metrics: self.snapshot_metrics.clone(),
            directory: self.directory.clone(),
            records: self.records.clone(),
            state: self.state.clone(),
            build: Some(build),
            sequence: self.snapshots_built,
            started,
        }
    }

    /// The file `snapshot_receive` writes received chunks into.
    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<tokio::fs::File>> {
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(self.directory.file(RECEIVED_FILE))
            .await
            .map_err(|error| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, error))?;
        Ok(Box::new(file))
    }

    /// Switches to the snapshot `snapshot_receive` received, checked and staged
    /// (`snapshot_install`, step 5): one synced write.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<MemberId, BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> StoreResult<()> {
        drop(snapshot);
        let subject = || ErrorSubject::Snapshot(Some(meta.signature()));
        let pending = snapshot_store::read_pending(&self.db)
            .map_err(|error| io_error(subject(), ErrorVerb::Read, error))?
            .filter(|pending| pending.meta.snapshot_id == meta.snapshot_id)
            .ok_or_else(|| {
                io_error(
                    subject(),
                    ErrorVerb::Read,
                    "no staged install for this snapshot: only snapshot_receive hands snapshots to raft",
                )
            })?;
        self.switch_to(&pending)
            .map_err(|error| io_error(subject(), ErrorVerb::Write, format!("{error:#}")))?;
        self.metrics.snapshots_installed_total.inc();
        tracing::info!(
            snapshot = %meta.snapshot_id,
            revision = pending.revision,
            entries = pending.entries,
            bytes = pending.bytes,
            "installed snapshot"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        current_snapshot(&self.db, &self.directory, &self.records)
    }
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The current snapshot with its file opened, under the records lock so a build finishing
/// meanwhile cannot remove the file between reading the record and opening it.
fn current_snapshot(
    db: &DB,
    directory: &SnapshotDirectory,
    records: &Mutex<()>,
) -> StoreResult<Option<Snapshot<TypeConfig>>> {
    let _records = records
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let record = snapshot_store::read_record(db)
        .map_err(|error| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, error))?;
    let Some(record) = record else {
        return Ok(None);
    };
    let file = std::fs::File::open(directory.file(&record.file)).map_err(|error| {
        io_error(
            ErrorSubject::Snapshot(Some(record.meta.signature())),
            ErrorVerb::Read,
            format!("snapshot file {}: {error}", record.file),
        )
    })?;
    Ok(Some(Snapshot {
        meta: record.meta,
        snapshot: Box::new(tokio::fs::File::from_std(file)),
    }))
}

/// Empties a key-value family no longer serving (unsynced: garbage either way) and
/// compacts it so its files are dropped.
fn clear_family(db: &DB, family: KvFamily) {
    let Some(handle) = db.cf_handle(family.name()) else {
        return;
    };
    let mut batch = WriteBatch::default();
    batch.delete_range_cf(handle, Vec::<u8>::new(), crate::snapshot::key_range_end());
    if let Err(error) = db.write(batch) {
        tracing::warn!(%error, family = family.name(), "could not empty the old key-value family");
        return;
    }
    db.compact_range_cf(handle, None::<&[u8]>, None::<&[u8]>);
}

/// A snapshot being built on a blocking thread (`snapshot_build`); `build_snapshot`
/// (run by openraft on its own task) waits for it and publishes it.
pub struct PreparedSnapshot {
    db: Arc<DB>,
    metrics: Arc<MetaMetrics>,
    snapshot_metrics: Arc<SnapshotMetrics>,
    directory: SnapshotDirectory,
    records: Arc<Mutex<()>>,
    state: AppliedState,
    build: Option<JoinHandle<anyhow::Result<Built>>>,
    sequence: u64,
    started: Instant,
}

impl RaftSnapshotBuilder<TypeConfig> for PreparedSnapshot {
    /// Publishes the built file (synced, renamed) and records it in a synced write, which
    /// also makes every earlier apply durable (module comment): openraft may purge the log
    /// behind the snapshot once this returns.
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let failed =
            |error: String| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, error);
        let build = self
            .build
            .take()
            .ok_or_else(|| failed("build_snapshot called twice".into()))?;
        let built = build
            .await
            .map_err(|error| failed(error.to_string()))?
            .map_err(|error| failed(format!("{error:#}")))?;
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
        let directory = self.directory.clone();
        let path = built.path.clone();
        let file = tokio::task::spawn_blocking(move || directory.publish(&path))
            .await
            .map_err(|error| failed(error.to_string()))?
            .map_err(|error| failed(error.to_string()))?;
        let record = SnapshotRecord {
            meta: meta.clone(),
            file,
            bytes: built.bytes,
            entries: built.entries,
            format: FORMAT_VERSION,
        };
        {
            let _records = self
                .records
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let previous =
                snapshot_store::read_record(&self.db).map_err(|error| failed(error.to_string()))?;
            if previous
                .as_ref()
                .is_some_and(|previous| previous.meta.last_log_id >= meta.last_log_id)
            {
                // An install (or another build) recorded a snapshot at least as recent
                // while this one was written: keep that one.
                self.directory.remove(&record.file);
            } else {
                let mut batch = WriteBatch::default();
                snapshot_store::put_record(&self.db, &mut batch, &record)
                    .map_err(|error| failed(error.to_string()))?;
                snapshot_store::write_synced(&self.db, batch)
                    .map_err(|error| failed(error.to_string()))?;
                if let Some(previous) = previous {
                    self.directory.remove(&previous.file);
                }
                let metrics = &self.snapshot_metrics;
                metrics.snapshot_bytes.set(gauge(built.bytes));
                metrics.snapshot_entries.set(gauge(built.entries));
            }
        }
        let elapsed = self.started.elapsed();
        let milliseconds = elapsed.as_millis() as u64;
        self.snapshot_metrics
            .last_build_seconds
            .set(elapsed.as_secs_f64());
        self.metrics.snapshots_built_total.inc();
        tracing::info!(snapshot = %meta.snapshot_id, entries = built.entries, bytes = built.bytes, milliseconds, "built snapshot");
        current_snapshot(&self.db, &self.directory, &self.records)?
            .ok_or_else(|| failed("no snapshot recorded after a build".into()))
    }
}
