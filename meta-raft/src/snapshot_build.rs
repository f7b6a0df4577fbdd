//! Building a snapshot: the `kv` family, as of one RocksDB snapshot, streamed to a file.
//!
//! Runs on a blocking thread. The RocksDB snapshot is taken first and reported through
//! `taken`: the state machine's task waits for that report only (microseconds), so the
//! file holds exactly the state at the last applied log id of that moment, while applies
//! go on during the (long) write. Memory: one block (`BLOCK_BYTES_TARGET`, 1 MiB) plus
//! the write buffer; the iterator does not fill the block cache, so building does not
//! evict what readers use.
//!
//! Durability: nothing here is durable on its own; `SnapshotDirectory::publish` syncs the
//! file before a record names it. A crash leaves a `building-*.tmp` file removed at the
//! next start.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;

use rocksdb::{IteratorMode, ReadOptions, DB};
use tokio::sync::oneshot;

use crate::snapshot_file::{SnapshotWriter, BLOCK_BYTES_TARGET};

/// Read-ahead of the iterator: sequential reads of SST files in large requests.
const READ_AHEAD_BYTES: usize = 2 * 1024 * 1024;

/// A snapshot file written, not yet published.
pub struct Built {
    pub path: PathBuf,
    pub entries: u64,
    pub bytes: u64,
}

/// Streams `family` as of a RocksDB snapshot taken now into a new file at `path`.
pub fn build(
    db: Arc<DB>,
    family: &'static str,
    path: PathBuf,
    revision: u64,
    taken: oneshot::Sender<()>,
) -> anyhow::Result<Built> {
    let snapshot = db.snapshot();
    // The receiver only waits to know the view is fixed; if it is gone the build is moot
    // but harmless.
    let _ = taken.send(());
    let result = write(&db, &snapshot, family, &path, revision);
    if result.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    result.map(|(entries, bytes)| Built {
        path,
        entries,
        bytes,
    })
}

fn write(
    db: &DB,
    snapshot: &rocksdb::Snapshot<'_>,
    family: &str,
    path: &std::path::Path,
    revision: u64,
) -> anyhow::Result<(u64, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let handle = db
        .cf_handle(family)
        .ok_or_else(|| anyhow::anyhow!("no {family} column family"))?;
    let mut options = ReadOptions::default();
    options.fill_cache(false);
    options.set_readahead_size(READ_AHEAD_BYTES);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let output = BufWriter::with_capacity(BLOCK_BYTES_TARGET, file);
    let mut writer = SnapshotWriter::new(output, revision)?;
    for item in snapshot.iterator_cf_opt(handle, options, IteratorMode::Start) {
        let (key, entry) = item?;
        writer.push(&key, &entry)?;
    }
    let (output, entries, bytes) = writer.finish()?;
    let file: File = output.into_inner().map_err(|error| error.into_error())?;
    drop(file);
    Ok((entries, bytes))
}
