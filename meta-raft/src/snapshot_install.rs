//! Installing a received snapshot: its entries are written, in bounded batches, into the
//! `kv` family that is NOT serving (the staging family), and the state machine then
//! switches to it in one synced write.
//!
//! openraft 0.9 purges the follower's log up to the snapshot as soon as it hands the
//! snapshot to the state machine, without waiting for the install to finish (its
//! `PurgeLog` command has no condition). A crash between that purge and the end of a long
//! install would leave a log purged past the state machine: openraft refuses to start on
//! that. So the long part happens BEFORE raft sees the snapshot, in the receiver
//! ([`prepare`]), and what openraft waits for is only the switch. What survives a crash
//! at each step:
//! 1. any earlier pending install is forgotten (synced), then the staging family is
//!    emptied and filled, batch by batch, without the WAL: readers, the applied state and
//!    the log are untouched, so a crash here leaves the old state exactly (the staging
//!    family holds garbage that the next install empties first);
//! 2. the staging family is flushed to SST files (`flush_cf` waits): durable without
//!    having been written twice;
//! 3. the snapshot file is published (synced, renamed, directory synced);
//! 4. a [`PendingInstall`] record naming the staged family is written, synced;
//! 5. raft gets the snapshot (`install_full_snapshot`); it purges its log and has the
//!    state machine switch (`StateMachine::install_snapshot`): ONE synced batch writes
//!    the applied state — the snapshot's last log id, membership, revision, and the
//!    staged family as the serving one — the record of the new current snapshot, and
//!    removes the pending record. Before it: the old state; after it: the new one.
//!
//! A crash after step 4 but before the switch: at start-up the state machine rolls the
//! pending install forward (switches) if openraft already purged its log past the old
//! state — it had accepted the snapshot — and otherwise forgets it, starting on the old
//! state with an intact log; the leader then sends the snapshot again. Never a
//! half-installed family that claims the snapshot's last applied log id.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use std::sync::RwLock;

use openraft::{BasicNode, SnapshotMeta};
use rocksdb::{WriteBatch, WriteOptions, DB};

use crate::snapshot::key_range_end;
use crate::snapshot_file::{SnapshotReader, BLOCK_BYTES_TARGET, INSTALL_BLOCKS_PER_BATCH};
use crate::snapshot_metrics::SnapshotMetrics;
use crate::snapshot_store::{self, PendingInstall, SnapshotDirectory, RECEIVED_FILE};
use crate::storage::KvFamily;
use crate::types::MemberId;

/// For the kill -9 test only: the install stops (the thread parks for good) after this
/// many batches, so a test can kill the member in the middle of an install.
pub const PAUSE_AFTER_BATCHES_VARIABLE: &str = "SHARDLET_META_TEST_PAUSE_INSTALL_AFTER_BATCHES";

/// What a staged install wrote.
pub struct Staged {
    pub revision: u64,
    pub entries: u64,
    pub batches: u64,
}

/// Steps 1 to 4 (module comment) for the checked snapshot in the received file: returns
/// the pending install, durable.
pub fn prepare(
    db: &DB,
    serving: &RwLock<KvFamily>,
    directory: &SnapshotDirectory,
    meta: &SnapshotMeta<MemberId, BasicNode>,
    pause_after_batches: Option<u64>,
    metrics: &SnapshotMetrics,
) -> anyhow::Result<PendingInstall> {
    let mut forget = WriteBatch::default();
    snapshot_store::delete_pending(db, &mut forget)?;
    snapshot_store::write_synced(db, forget)?;
    // Installs are serialized by the receiver, and only a switch changes `serving`.
    let family = serving
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .other();
    let path = directory.file(RECEIVED_FILE);
    let staged = stage(db, family.name(), &path, pause_after_batches, metrics)?;
    let bytes = std::fs::metadata(&path)?.len();
    let file = directory.publish(&path)?;
    let pending = PendingInstall {
        meta: meta.clone(),
        file,
        bytes,
        entries: staged.entries,
        revision: staged.revision,
        family,
    };
    let mut batch = WriteBatch::default();
    snapshot_store::put_pending(db, &mut batch, &pending)?;
    snapshot_store::write_synced(db, batch)?;
    tracing::info!(snapshot = %meta.snapshot_id, entries = staged.entries, batches = staged.batches, bytes, "snapshot staged");
    Ok(pending)
}

/// Steps 1 and 2 (module comment): empties `family` and fills it from the snapshot file
/// at `path`, checking every block, then flushes it. An error leaves the serving state
/// untouched.
pub fn stage(
    db: &DB,
    family: &str,
    path: &Path,
    pause_after_batches: Option<u64>,
    metrics: &SnapshotMetrics,
) -> anyhow::Result<Staged> {
    let handle = db
        .cf_handle(family)
        .ok_or_else(|| anyhow::anyhow!("no {family} column family"))?;
    let mut options = WriteOptions::default();
    options.disable_wal(true);
    let mut clear = WriteBatch::default();
    clear.delete_range_cf(handle, Vec::<u8>::new(), key_range_end());
    db.write_opt(clear, &options)?;
    let input = BufReader::with_capacity(BLOCK_BYTES_TARGET, File::open(path)?);
    let mut reader = SnapshotReader::open(input)?;
    let mut batch = WriteBatch::default();
    let mut blocks_in_batch = 0;
    let mut batches = 0u64;
    while let Some(entries) = reader.next_block()? {
        for (key, entry) in entries {
            batch.put_cf(handle, key, entry);
        }
        blocks_in_batch += 1;
        if blocks_in_batch == INSTALL_BLOCKS_PER_BATCH {
            db.write_opt(std::mem::take(&mut batch), &options)?;
            blocks_in_batch = 0;
            batches += 1;
            metrics.install_batches_total.inc();
            if pause_after_batches == Some(batches) {
                tracing::warn!(
                    batches,
                    "snapshot install paused for a test ({PAUSE_AFTER_BATCHES_VARIABLE})"
                );
                loop {
                    std::thread::park();
                }
            }
        }
    }
    if !batch.is_empty() {
        db.write_opt(batch, &options)?;
        batches += 1;
        metrics.install_batches_total.inc();
    }
    db.flush_cf(handle)?;
    Ok(Staged {
        revision: reader.revision(),
        entries: reader.entries(),
        batches,
    })
}
