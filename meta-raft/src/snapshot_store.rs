//! Where snapshot files live: `{data}/snapshots/`, next to the RocksDB directory, and
//! the record in `machine_state` naming the current one.
//!
//! Files in the directory:
//! - `building-*.tmp`: a snapshot being built (`snapshot_build`);
//! - `received.tmp`: the snapshot being received from the leader (`snapshot_receive`;
//!   one at a time);
//! - `snapshot-*.snap`: published snapshots. Only the one the record names is current;
//!   others are left over from a crash and removed at start-up.
//!
//! Durability of publishing (`publish`): the file's data is fsynced, then it is renamed
//! to its final name and the directory fsynced, and only then does a synced RocksDB write
//! make the record name it. A crash before that write leaves the previous record and an
//! unreferenced file (removed at the next start); after it, the record names a complete,
//! durable file. The previous file is removed only after the record moved on.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use openraft::{BasicNode, SnapshotMeta};
use rocksdb::{WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};

use crate::blob::Blob;
use crate::snapshot::SnapshotPayload;
use crate::snapshot_file::{SnapshotWriter, BLOCK_BYTES_TARGET, FORMAT_VERSION};
use crate::storage::CF_MACHINE_STATE;
use crate::types::MemberId;

/// The `machine_state` key of the [`SnapshotRecord`].
const KEY_SNAPSHOT_FILE: &[u8] = b"snapshot_file";
/// The `machine_state` key of the [`PendingInstall`].
const KEY_PENDING_INSTALL: &[u8] = b"snapshot_pending";
/// Format 1 kept the whole snapshot (meta and JSON payload) in one value under this key.
const KEY_LEGACY_SNAPSHOT: &[u8] = b"snapshot";

/// The name of the file a snapshot from the leader is received into.
pub const RECEIVED_FILE: &str = "received.tmp";

/// The current snapshot, as recorded in `machine_state` (key `snapshot_file`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub meta: SnapshotMeta<MemberId, BasicNode>,
    /// File name inside the snapshot directory.
    pub file: String,
    pub bytes: u64,
    pub entries: u64,
    /// `snapshot_file::FORMAT_VERSION` of the file.
    pub format: u32,
}

/// A received snapshot staged, complete and durable, in the family that is not serving,
/// waiting for the state machine to switch to it (`snapshot_install`, step 4).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingInstall {
    pub meta: SnapshotMeta<MemberId, BasicNode>,
    /// The published snapshot file.
    pub file: String,
    pub bytes: u64,
    pub entries: u64,
    pub revision: u64,
    /// The family holding the staged entries.
    pub family: crate::storage::KvFamily,
}

#[derive(Clone, Debug)]
pub struct SnapshotDirectory {
    path: PathBuf,
}

impl SnapshotDirectory {
    /// The snapshot directory of the RocksDB database at `database`: its sibling
    /// `snapshots` (created, readable by this member only: it holds the whole catalog).
    pub fn beside(database: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let path = database.with_file_name("snapshots");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// A fresh name for a snapshot being built.
    pub fn building_file(&self) -> PathBuf {
        self.path
            .join(format!("building-{:016x}.tmp", rand::random::<u64>()))
    }

    /// Makes the file at `temporary` durable under a new `snapshot-*.snap` name and
    /// returns that name. The caller then records it (synced) and only then removes the
    /// previous one (module comment).
    pub fn publish(&self, temporary: &Path) -> std::io::Result<String> {
        File::open(temporary)?.sync_all()?;
        let name = format!("snapshot-{:016x}.snap", rand::random::<u64>());
        std::fs::rename(temporary, self.path.join(&name))?;
        File::open(&self.path)?.sync_all()?;
        Ok(name)
    }

    /// Removes every file but `keep` (the current snapshot): left-overs of builds,
    /// receptions or installs a crash interrupted. Called at start-up, before anything
    /// else uses the directory.
    pub fn remove_all_except(&self, keep: Option<&str>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name();
            if keep.is_some_and(|keep| name == keep) {
                continue;
            }
            tracing::info!(file = ?name, "removing a snapshot file no record names");
            std::fs::remove_file(entry.path())?;
        }
        Ok(())
    }

    /// Removes a snapshot file no longer current; a failure only leaves garbage that the
    /// next start removes, so it is logged, not returned.
    pub fn remove(&self, name: &str) {
        if let Err(error) = std::fs::remove_file(self.path.join(name)) {
            tracing::warn!(file = name, %error, "could not remove an old snapshot file");
        }
    }
}

fn machine_state(db: &DB) -> anyhow::Result<&rocksdb::ColumnFamily> {
    db.cf_handle(CF_MACHINE_STATE)
        .ok_or_else(|| anyhow::anyhow!("no {CF_MACHINE_STATE} column family"))
}

/// The record of the current snapshot, if one was built or installed.
pub fn read_record(db: &DB) -> anyhow::Result<Option<SnapshotRecord>> {
    match db.get_cf(machine_state(db)?, KEY_SNAPSHOT_FILE)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
    }
}

/// Adds the record to `batch`; the caller writes it synced.
pub fn put_record(db: &DB, batch: &mut WriteBatch, record: &SnapshotRecord) -> anyhow::Result<()> {
    batch.put_cf(
        machine_state(db)?,
        KEY_SNAPSHOT_FILE,
        serde_json::to_vec(record)?,
    );
    Ok(())
}

pub fn write_synced(db: &DB, batch: WriteBatch) -> anyhow::Result<()> {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    db.write_opt(batch, &options)?;
    Ok(())
}

/// A snapshot as format 1 stored it.
#[derive(Deserialize)]
struct LegacySnapshot {
    meta: SnapshotMeta<MemberId, BasicNode>,
    data: Blob,
}

/// Converts a format-1 snapshot kept by an earlier release into a format-2 file, once, at
/// start-up (it was held in memory by that release, so reading it whole here is no new
/// risk). The new record and the removal of the old value are one synced write: a crash
/// before it converts again at the next start. A stored snapshot that does not decode
/// stops the start with the reason: the member cannot serve its log without it.
pub fn convert_legacy(db: &DB, directory: &SnapshotDirectory) -> anyhow::Result<()> {
    let family = machine_state(db)?;
    let Some(bytes) = db.get_cf(family, KEY_LEGACY_SNAPSHOT)? else {
        return Ok(());
    };
    let legacy: LegacySnapshot = serde_json::from_slice(&bytes)
        .map_err(|error| anyhow::anyhow!("stored format-1 snapshot: {error}"))?;
    let payload = SnapshotPayload::decode(&legacy.data.0)
        .map_err(|error| anyhow::anyhow!("stored format-1 snapshot: {error}"))?;
    let path = directory.building_file();
    let output = BufWriter::with_capacity(BLOCK_BYTES_TARGET, File::create(&path)?);
    let mut writer = SnapshotWriter::new(output, payload.revision)?;
    for (key, entry) in &payload.entries {
        writer.push(key.as_slice(), entry.as_slice())?;
    }
    let (output, entries, bytes) = writer.finish()?;
    drop(output.into_inner().map_err(|error| error.into_error())?);
    let file = directory.publish(&path)?;
    let record = SnapshotRecord {
        meta: legacy.meta,
        file,
        bytes,
        entries,
        format: FORMAT_VERSION,
    };
    let mut batch = WriteBatch::default();
    put_record(db, &mut batch, &record)?;
    batch.delete_cf(family, KEY_LEGACY_SNAPSHOT);
    write_synced(db, batch)?;
    tracing::info!(snapshot = %record.meta.snapshot_id, entries, "converted the stored format-1 snapshot to format 2");
    Ok(())
}

pub fn read_pending(db: &DB) -> anyhow::Result<Option<PendingInstall>> {
    match db.get_cf(machine_state(db)?, KEY_PENDING_INSTALL)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
    }
}

pub fn put_pending(
    db: &DB,
    batch: &mut WriteBatch,
    pending: &PendingInstall,
) -> anyhow::Result<()> {
    batch.put_cf(
        machine_state(db)?,
        KEY_PENDING_INSTALL,
        serde_json::to_vec(pending)?,
    );
    Ok(())
}

pub fn delete_pending(db: &DB, batch: &mut WriteBatch) -> anyhow::Result<()> {
    batch.delete_cf(machine_state(db)?, KEY_PENDING_INSTALL);
    Ok(())
}
