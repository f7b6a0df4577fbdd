//! The checks a received snapshot passes before it may replace a member's state, and
//! format 1 of the payload: the whole key-value state as one JSON document, written by
//! earlier releases and now only read once at start-up to convert a stored snapshot to
//! format 2 (`snapshot_file`, `snapshot_store`).
//!
//! A snapshot arrives from the leader (`InstallSnapshot`) and replaces everything, so it
//! is held to what the state machine itself would have written: keys that a batch could
//! carry ([`validate_key`]), in strictly ascending order, each value a stored entry
//! whose version lies in `1..=revision`. Version 0 means "absent": an entry stored with
//! it would make `require_absent` pass on a key that exists. A key longer than
//! [`KEY_BYTES_MAX`] would also escape the range delete of the next install.

use serde::{Deserialize, Serialize};

use crate::blob::Blob;
use crate::command::{validate_key, KEY_BYTES_MAX};

/// The format version of the JSON payload (format 2 is `snapshot_file`'s block stream).
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// The serialized state machine inside a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPayload {
    pub format_version: u32,
    /// The revision counter: every stored version is at most this.
    pub revision: u64,
    /// (key, stored entry bytes as in the `kv` family), keys ascending.
    pub entries: Vec<(Blob, Blob)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotInvalid {
    #[error("snapshot is not a snapshot payload: {0}")]
    Malformed(String),
    #[error("unsupported snapshot format {0}: this release reads format 2 (format 1 is the JSON snapshot of earlier releases; upgrade every member)")]
    FormatVersion(u32),
    #[error("snapshot entry {position}: {reason}")]
    Entry { position: usize, reason: String },
    #[error("snapshot block {block}: {reason}")]
    Block { block: u64, reason: String },
    #[error("snapshot ends early: {0}")]
    Truncated(String),
    #[error("snapshot could not be read: {0}")]
    Read(String),
}

impl SnapshotPayload {
    pub fn new(revision: u64, entries: Vec<(Blob, Blob)>) -> Self {
        Self {
            format_version: SNAPSHOT_FORMAT_VERSION,
            revision,
            entries,
        }
    }

    /// Parses a received snapshot and checks every entry (see the module comment).
    pub fn decode(data: &[u8]) -> Result<Self, SnapshotInvalid> {
        let payload: Self = serde_json::from_slice(data)
            .map_err(|error| SnapshotInvalid::Malformed(error.to_string()))?;
        if payload.format_version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotInvalid::FormatVersion(payload.format_version));
        }
        let mut previous: Option<&Blob> = None;
        for (position, (key, value)) in payload.entries.iter().enumerate() {
            check_entry(
                previous.map(Blob::as_slice),
                key.as_slice(),
                value.as_slice(),
                payload.revision,
            )
            .map_err(|reason| SnapshotInvalid::Entry { position, reason })?;
            previous = Some(key);
        }
        Ok(payload)
    }
}

/// Checks one entry of a received snapshot: a key a batch could carry, strictly after
/// `previous`, a stored entry whose version is in `1..=revision` (module comment: why).
pub fn check_entry(
    previous: Option<&[u8]>,
    key: &[u8],
    value: &[u8],
    revision: u64,
) -> Result<(), String> {
    validate_key(key).map_err(|error| error.to_string())?;
    if previous.is_some_and(|previous| previous >= key) {
        return Err("keys are not strictly ascending".into());
    }
    let (version, _) = value
        .split_first_chunk::<8>()
        .ok_or_else(|| "stored entry shorter than its version".to_string())?;
    let version = u64::from_be_bytes(*version);
    if version == 0 || version > revision {
        return Err(format!("version {version} outside 1..={revision}"));
    }
    Ok(())
}

/// A key above every valid key: the end of the range delete that empties the `kv`
/// family before a snapshot is installed.
pub fn key_range_end() -> Vec<u8> {
    vec![0xff_u8; KEY_BYTES_MAX + 1]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::command::VersionedValue;

    fn entry(version: u64) -> Blob {
        Blob(
            VersionedValue {
                version,
                value: "v".into(),
            }
            .encode(),
        )
    }

    fn encoded(revision: u64, entries: Vec<(Blob, Blob)>) -> Vec<u8> {
        serde_json::to_vec(&SnapshotPayload::new(revision, entries)).unwrap()
    }

    #[test]
    fn a_snapshot_as_the_state_machine_writes_it_decodes() {
        let entries = vec![("a".into(), entry(1)), ("b".into(), entry(3))];
        let payload = SnapshotPayload::decode(&encoded(3, entries.clone())).unwrap();
        assert_eq!(payload, SnapshotPayload::new(3, entries));
        assert!(SnapshotPayload::decode(&encoded(0, vec![])).is_ok());
    }

    #[test]
    fn entries_no_batch_could_have_written_are_refused() {
        let refused = |revision, entries| SnapshotPayload::decode(&encoded(revision, entries));
        for (revision, entries, why) in [
            (3, vec![(Blob::default(), entry(1))], "empty key"),
            (
                3,
                vec![(vec![b'k'; KEY_BYTES_MAX + 1].into(), entry(1))],
                "long key",
            ),
            (
                3,
                vec![("b".into(), entry(1)), ("a".into(), entry(2))],
                "descending",
            ),
            (
                3,
                vec![("a".into(), entry(1)), ("a".into(), entry(2))],
                "duplicate",
            ),
            (3, vec![("a".into(), Blob(vec![1, 2, 3]))], "short value"),
            (3, vec![("a".into(), entry(0))], "version 0"),
            (
                3,
                vec![("a".into(), entry(4))],
                "version above the revision",
            ),
        ] {
            assert!(
                matches!(
                    refused(revision, entries),
                    Err(SnapshotInvalid::Entry { .. })
                ),
                "{why}"
            );
        }
        let mut newer = SnapshotPayload::new(1, vec![]);
        newer.format_version = 2;
        assert_eq!(
            SnapshotPayload::decode(&serde_json::to_vec(&newer).unwrap()),
            Err(SnapshotInvalid::FormatVersion(2))
        );
        assert!(matches!(
            SnapshotPayload::decode(b"not json"),
            Err(SnapshotInvalid::Malformed(_))
        ));
    }
}
