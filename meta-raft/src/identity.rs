//! The cluster id: which metadata cluster a member belongs to.
//!
//! A cluster gets a random id when it is formed (`crate::formation`); every member
//! records it twice: in RocksDB's `raft_state` family (key `cluster_id`, written with the
//! raft state it describes) and, for operators and tools, in the text file
//! `DATA/cluster-id`. Raft RPC carries the sender's id in the signed header
//! `x-shardlet-cluster`; a member refuses raft messages from another cluster (members
//! share a key when two clusters were made from one secret, or when a member that lost
//! its disk formed a cluster of its own), and a member that has none yet (a new member
//! waiting to be added) adopts the id of the first cluster that contacts it.
//!
//! Durability, step by step, when an id is recorded:
//! 1. RocksDB, synced: from here on the member belongs to the cluster;
//! 2. the file, written to a temporary name, fsynced, renamed, directory fsynced.
//!
//! A crash between 1 and 2 leaves the database with the id and no file: the next start
//! rewrites the file. The other mismatch — a file naming a cluster over a database that
//! has no raft state — cannot come from a crash: it means the database was lost or
//! replaced, and the member refuses to start (it would otherwise come back as a fresh
//! member with an empty log while the cluster still counts it: see `formation`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rocksdb::{WriteOptions, DB};

use crate::storage::CF_RAFT_STATE;

/// The header raft RPC carries the sender's cluster id in (signed).
pub const HEADER_CLUSTER: &str = "x-shardlet-cluster";
/// The file under the data directory that names the member's cluster.
pub const CLUSTER_ID_FILE: &str = "cluster-id";
/// The key in `raft_state` holding the id.
const KEY_CLUSTER_ID: &[u8] = b"cluster_id";
/// Hex digits of an id: 128 random bits.
const CLUSTER_ID_HEX_DIGITS: usize = 32;

/// A cluster's id: 32 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterId(String);

impl ClusterId {
    /// A fresh random id, for a cluster being formed.
    pub fn generate() -> Self {
        ClusterId(
            rand::random::<[u8; 16]>()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClusterId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl TryFrom<String> for ClusterId {
    type Error = IdentityError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<ClusterId> for String {
    fn from(id: ClusterId) -> Self {
        id.0
    }
}

impl std::str::FromStr for ClusterId {
    type Err = IdentityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid = text.len() == CLUSTER_ID_HEX_DIGITS
            && text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        if valid {
            Ok(ClusterId(text.to_string()))
        } else {
            Err(IdentityError::Malformed(format!(
                "a cluster id is {CLUSTER_ID_HEX_DIGITS} lowercase hex digits, not {:?}",
                text.chars().take(64).collect::<String>()
            )))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Malformed(String),
    #[error("{path}: {error}")]
    File {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("the raft state store: {0}")]
    Database(String),
    #[error(
        "this member belongs to cluster {recorded}; it cannot join cluster {offered} (its data directory {data_dir} belongs to the first)"
    )]
    OtherCluster {
        recorded: ClusterId,
        offered: ClusterId,
        data_dir: PathBuf,
    },
}

/// Why a raft message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterMismatch {
    #[error("the sender belongs to cluster {theirs}, this member to cluster {ours}")]
    Other { ours: ClusterId, theirs: ClusterId },
    #[error("the sender names no cluster (header {HEADER_CLUSTER}); this member belongs to cluster {ours}")]
    Unnamed { ours: ClusterId },
    #[error("the sender's cluster id is malformed: {0}")]
    Malformed(String),
    #[error("cannot record the sender's cluster id: {0}")]
    NotRecorded(String),
}

/// The id recorded in `data_dir`'s file, without opening the database (for `shardlet
/// dev`, which decides whether its member must be initialised, and for error messages).
pub fn recorded_in(data_dir: &Path) -> Result<Option<ClusterId>, IdentityError> {
    let path = data_dir.join(CLUSTER_ID_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(IdentityError::File { path, error }),
    };
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .ok_or_else(|| IdentityError::BadFile {
            path: path.clone(),
            message: "holds no cluster id".into(),
        })?;
    line.parse()
        .map(Some)
        .map_err(|error: IdentityError| IdentityError::BadFile {
            path,
            message: error.to_string(),
        })
}

/// A member's cluster id, shared by the raft routes (checking), the network (sending)
/// and formation (recording a new one).
pub struct Identity {
    db: Arc<DB>,
    data_dir: PathBuf,
    current: RwLock<Option<ClusterId>>,
    /// Serialises recording, so two clusters contacting a new member at once cannot both
    /// be adopted.
    recording: Mutex<()>,
}

impl Identity {
    /// Reads the id from the database and reconciles the file with it (see the module
    /// comment). `raft_state_exists`: whether the database holds any raft state (a vote
    /// or log entries); a file without it is refused.
    pub fn open(
        db: Arc<DB>,
        data_dir: &Path,
        raft_state_exists: bool,
    ) -> Result<Self, IdentityError> {
        let stored = read_database(&db)?;
        let file = recorded_in(data_dir)?;
        let identity = Identity {
            db,
            data_dir: data_dir.to_path_buf(),
            current: RwLock::new(stored.clone()),
            recording: Mutex::new(()),
        };
        match (stored, file) {
            (Some(stored), Some(file)) if stored != file => Err(IdentityError::BadFile {
                path: data_dir.join(CLUSTER_ID_FILE),
                message: format!(
                    "names cluster {file}, but the raft state under {} belongs to cluster {stored}: the file or the database was copied from another member; restore this member's own",
                    data_dir.join("rocksdb").display()
                ),
            }),
            (Some(stored), None) => {
                // A crash between recording in the database and writing the file.
                write_file(data_dir, &stored)?;
                Ok(identity)
            }
            (None, Some(file)) if !raft_state_exists => Err(IdentityError::BadFile {
                path: data_dir.join(CLUSTER_ID_FILE),
                message: format!(
                    "says this member belonged to cluster {file}, but its raft state under {} is empty: its data was lost. A member that lost its data must not come back as itself (the cluster still counts its vote and its log). Remove it from the cluster (shardlet admin meta remove ID), delete this file, start it again without --bootstrap or --initial-members, and add it back (shardlet admin meta add ID ADDRESS, then promote ID)",
                    data_dir.join("rocksdb").display()
                ),
            }),
            (None, Some(file)) => {
                // A database from before cluster ids, beside a file: trust the file.
                identity.record(&file)?;
                Ok(identity)
            }
            _ => Ok(identity),
        }
    }

    /// The id, if this member belongs to a cluster that has one.
    pub fn get(&self) -> Option<ClusterId> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Records `id` as this member's cluster (database, then file: see the module
    /// comment). Recording the id already held does nothing; another is refused.
    pub fn record(&self, id: &ClusterId) -> Result<(), IdentityError> {
        let _recording = self
            .recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match self.get() {
            Some(current) if &current == id => return Ok(()),
            Some(current) => {
                return Err(IdentityError::OtherCluster {
                    recorded: current,
                    offered: id.clone(),
                    data_dir: self.data_dir.clone(),
                })
            }
            None => {}
        }
        let family = self
            .db
            .cf_handle(CF_RAFT_STATE)
            .ok_or_else(|| IdentityError::Database("no raft_state family".into()))?;
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .put_cf_opt(family, KEY_CLUSTER_ID, id.as_str(), &options)
            .map_err(|error| IdentityError::Database(error.to_string()))?;
        write_file(&self.data_dir, id)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(id.clone());
        tracing::info!(cluster = %id, "recorded this member's cluster id");
        Ok(())
    }

    /// Whether a raft message whose header named `theirs` may be accepted: the same
    /// cluster, or any cluster while this member has none (it adopts it, durably, before
    /// the message is processed). A member without an id accepts messages without one
    /// too (members formed before cluster ids existed).
    pub fn admit(&self, theirs: Option<&str>) -> Result<(), ClusterMismatch> {
        let theirs = theirs
            .map(|text| {
                text.parse::<ClusterId>()
                    .map_err(|error| ClusterMismatch::Malformed(error.to_string()))
            })
            .transpose()?;
        match (self.get(), theirs) {
            (Some(ours), Some(theirs)) if ours == theirs => Ok(()),
            (Some(ours), Some(theirs)) => Err(ClusterMismatch::Other { ours, theirs }),
            (Some(ours), None) => Err(ClusterMismatch::Unnamed { ours }),
            (None, Some(theirs)) => match self.record(&theirs) {
                Ok(()) => Ok(()),
                // Another cluster was adopted meanwhile.
                Err(IdentityError::OtherCluster { recorded, .. }) => Err(ClusterMismatch::Other {
                    ours: recorded,
                    theirs,
                }),
                Err(error) => Err(ClusterMismatch::NotRecorded(error.to_string())),
            },
            (None, None) => Ok(()),
        }
    }
}

fn read_database(db: &DB) -> Result<Option<ClusterId>, IdentityError> {
    let family = db
        .cf_handle(CF_RAFT_STATE)
        .ok_or_else(|| IdentityError::Database("no raft_state family".into()))?;
    let Some(bytes) = db
        .get_cf(family, KEY_CLUSTER_ID)
        .map_err(|error| IdentityError::Database(error.to_string()))?
    else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| IdentityError::Database("the stored cluster id is not text".into()))?;
    text.parse()
        .map(Some)
        .map_err(|error: IdentityError| IdentityError::Database(error.to_string()))
}

/// Writes the file so that after a crash it holds the whole id or is absent.
fn write_file(data_dir: &Path, id: &ClusterId) -> Result<(), IdentityError> {
    let path = data_dir.join(CLUSTER_ID_FILE);
    let temporary = data_dir.join(format!("{CLUSTER_ID_FILE}.tmp"));
    let file_error = |path: &Path, error: std::io::Error| IdentityError::File {
        path: path.to_path_buf(),
        error,
    };
    let mut file =
        std::fs::File::create(&temporary).map_err(|error| file_error(&temporary, error))?;
    let text = format!(
        "# The metadata cluster this member belongs to (shardlet meta). Do not edit or copy.\n{id}\n"
    );
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|error| file_error(&temporary, error))?;
    std::fs::rename(&temporary, &path).map_err(|error| file_error(&path, error))?;
    std::fs::File::open(data_dir)
        .and_then(|directory| directory.sync_all())
        .map_err(|error| file_error(data_dir, error))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn open(directory: &Path, raft_state_exists: bool) -> Result<Identity, IdentityError> {
        let db = crate::storage::open(&directory.join("rocksdb")).unwrap();
        Identity::open(db, directory, raft_state_exists)
    }

    #[test]
    fn an_id_is_recorded_in_the_database_and_the_file_and_survives_a_restart() {
        let directory = tempfile::tempdir().unwrap();
        let identity = open(directory.path(), false).unwrap();
        assert_eq!(identity.get(), None);
        let id = ClusterId::generate();
        identity.record(&id).unwrap();
        assert_eq!(recorded_in(directory.path()).unwrap(), Some(id.clone()));
        drop(identity);
        let reopened = open(directory.path(), true).unwrap();
        assert_eq!(reopened.get(), Some(id));
    }

    #[test]
    fn a_member_adopts_the_first_cluster_and_refuses_every_other() {
        let directory = tempfile::tempdir().unwrap();
        let identity = open(directory.path(), false).unwrap();
        assert_eq!(identity.admit(None), Ok(()), "no id on either side");
        let first = ClusterId::generate();
        let second = ClusterId::generate();
        identity.admit(Some(first.as_str())).unwrap();
        assert_eq!(identity.get(), Some(first.clone()));
        assert_eq!(identity.admit(Some(first.as_str())), Ok(()));
        assert!(matches!(
            identity.admit(Some(second.as_str())),
            Err(ClusterMismatch::Other { .. })
        ));
        assert!(matches!(
            identity.admit(None),
            Err(ClusterMismatch::Unnamed { .. })
        ));
        assert!(matches!(
            identity.admit(Some("not-an-id")),
            Err(ClusterMismatch::Malformed(_))
        ));
        assert!(matches!(
            identity.record(&second),
            Err(IdentityError::OtherCluster { .. })
        ));
    }

    #[test]
    fn a_lost_file_is_rewritten_from_the_database() {
        let directory = tempfile::tempdir().unwrap();
        let id = ClusterId::generate();
        open(directory.path(), false).unwrap().record(&id).unwrap();
        std::fs::remove_file(directory.path().join(CLUSTER_ID_FILE)).unwrap();
        open(directory.path(), true).unwrap();
        assert_eq!(recorded_in(directory.path()).unwrap(), Some(id));
    }

    #[test]
    fn a_file_over_an_empty_raft_state_means_lost_data_and_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let id = ClusterId::generate();
        open(directory.path(), false).unwrap().record(&id).unwrap();
        std::fs::remove_dir_all(directory.path().join("rocksdb")).unwrap();
        let refusal = open(directory.path(), false).err().unwrap().to_string();
        assert!(
            refusal.contains("its data was lost") && refusal.contains("shardlet admin meta add"),
            "{refusal}"
        );
    }

    #[test]
    fn a_file_naming_another_cluster_than_the_database_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        open(directory.path(), false)
            .unwrap()
            .record(&ClusterId::generate())
            .unwrap();
        write_file(directory.path(), &ClusterId::generate()).unwrap();
        let refusal = open(directory.path(), true).err().unwrap().to_string();
        assert!(refusal.contains("copied from another member"), "{refusal}");
    }

    #[test]
    fn malformed_ids_and_files_are_refused_by_name() {
        for text in ["", "ABCDEF00112233445566778899aabbcc", "00112233", "zz"] {
            assert!(text.parse::<ClusterId>().is_err(), "{text:?}");
        }
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join(CLUSTER_ID_FILE), "# only a comment\n").unwrap();
        let error = recorded_in(directory.path()).unwrap_err().to_string();
        assert!(error.contains(CLUSTER_ID_FILE), "{error}");
    }
}
