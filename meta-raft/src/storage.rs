//! The one RocksDB instance a member keeps, and its column families.
//!
//! The log store and the state machine share a database (one WAL, one set of files to
//! back up) but never each other's column families, so either can be replaced alone.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

/// Raft log entries, keyed by 8-byte big-endian index so iteration order is log order.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Vote, last purged log id, committed log id.
pub const CF_RAFT_STATE: &str = "raft_state";
/// The key-value data the state machine serves — one of two families: the other one is
/// where a received snapshot is staged before the state machine switches to it
/// (`snapshot_install`). `machine_state` records which one serves.
pub const CF_KV: &str = "kv";
pub const CF_KV_ALTERNATE: &str = "kv_alternate";
/// Last applied log id, membership, revision counter, current snapshot.
pub const CF_MACHINE_STATE: &str = "machine_state";

const COLUMN_FAMILIES: [&str; 5] = [
    CF_RAFT_LOG,
    CF_RAFT_STATE,
    CF_KV,
    CF_KV_ALTERNATE,
    CF_MACHINE_STATE,
];

/// Which of the two key-value families serves. A database from before the alternate
/// family existed has none recorded: `Primary`, the family it always used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvFamily {
    #[default]
    Primary,
    Alternate,
}

impl KvFamily {
    pub fn name(self) -> &'static str {
        match self {
            KvFamily::Primary => CF_KV,
            KvFamily::Alternate => CF_KV_ALTERNATE,
        }
    }

    pub fn other(self) -> Self {
        match self {
            KvFamily::Primary => KvFamily::Alternate,
            KvFamily::Alternate => KvFamily::Primary,
        }
    }
}

pub fn open(directory: &Path) -> anyhow::Result<Arc<DB>> {
    // Only this member reads it: it holds every S3 secret key and the whole catalog.
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)?;
    std::fs::set_permissions(directory, std::fs::Permissions::from_mode(0o700))?;
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    // Metadata is small and hot; a larger write buffer means fewer flushes under load.
    options.set_write_buffer_size(32 * 1024 * 1024);
    let families = COLUMN_FAMILIES
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
    let db = DB::open_cf_descriptors(&options, directory, families)?;
    Ok(Arc::new(db))
}

/// Converts RocksDB and decoding failures into openraft's storage error, naming what was
/// being read or written so a corrupt store points at itself.
pub fn io_error(
    subject: openraft::ErrorSubject<crate::types::MemberId>,
    verb: openraft::ErrorVerb,
    error: impl std::fmt::Display,
) -> openraft::StorageError<crate::types::MemberId> {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::error(error.to_string()))
        .into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_database_directory_is_the_members_alone() {
        let parent = tempfile::tempdir().unwrap();
        let directory = parent.path().join("meta");
        std::fs::create_dir(&directory).unwrap();
        std::fs::set_permissions(&directory, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(super::open(&directory).unwrap());
        let mode = std::fs::metadata(&directory).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
