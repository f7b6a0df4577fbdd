//! Installing a received snapshot: its entries are written, in bounded batches, into the
//! `kv` family that is NOT serving (the staging family); the state machine then switches
//! to it in one synced write (`StateMachine::install_snapshot`).
//!
//! What survives a crash at each step:
//! 1. the staging family is emptied and filled, batch by batch, without the WAL: readers
//!    and the applied state still use the other family, and the record of the applied
//!    state still names it, so a crash here leaves the old state exactly (the staging
//!    family holds garbage that the next install empties first);
//! 2. the staging family is flushed to SST files (`flush_cf` waits for it): its data is
//!    now durable without having been written twice;
//! 3. (caller) the snapshot file is published (synced, renamed, directory synced);
//! 4. (caller) ONE synced batch writes the applied state — the snapshot's last log id,
//!    membership, revision, and the staging family as the serving one — and the record
//!    naming the new snapshot file. Before it: the old state; after it: the new one.
//!    Never a half-installed family that claims the snapshot's last applied log id.
//!
//! A crash before step 4 restarts the member on its old state and log; the leader then
//! sends the snapshot again (openraft re-sends whatever the follower lacks).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use rocksdb::{WriteBatch, WriteOptions, DB};

use crate::snapshot::key_range_end;
use crate::snapshot_file::{SnapshotReader, BLOCK_BYTES_TARGET, INSTALL_BLOCKS_PER_BATCH};
use crate::snapshot_metrics::SnapshotMetrics;

/// For the kill -9 test only: the install stops (the thread parks for good) after this
/// many batches, so a test can kill the member in the middle of an install.
pub const PAUSE_AFTER_BATCHES_VARIABLE: &str = "SHARDLET_META_TEST_PAUSE_INSTALL_AFTER_BATCHES";

/// What a staged install wrote.
pub struct Staged {
    pub revision: u64,
    pub entries: u64,
    pub batches: u64,
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
