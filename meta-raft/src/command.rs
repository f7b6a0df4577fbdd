//! The replicated commands: atomic batches of key-value operations guarded by
//! compare-and-set conditions, and the pure rules that decide whether a batch applies.
//!
//! **Versions.** The state machine keeps one revision counter. Every applied batch takes
//! the next revision, and every key it writes records that revision as its `version`
//! (like etcd's `mod_revision`). Versions therefore grow strictly across the whole store,
//! never repeat after a delete and re-create (no ABA), and are identical on every member
//! because they are computed in the deterministic apply step. Version `0` means "absent".

use serde::{Deserialize, Serialize};

use crate::blob::Blob;

/// Longest key accepted, in bytes. Keys are index entries, not payloads, but they embed
/// S3 names: the longest, an upload's `u/{bucket}/{object key}\0{upload id}`, is
/// 2 + 63 + 1 + 1024 + 1 + 32 = 1123 bytes for a longest bucket name and object key
/// (see `shardlet_model::schema::keys`), so the limit leaves room above that.
pub const KEY_BYTES_MAX: usize = 2048;
/// Most operations plus conditions in one batch; bounds the work of one apply step.
pub const BATCH_ITEMS_MAX: usize = 1024;

/// One change inside a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    Put { key: Blob, value: Blob },
    Delete { key: Blob },
}

impl Operation {
    pub fn key(&self) -> &Blob {
        match self {
            Operation::Put { key, .. } | Operation::Delete { key } => key,
        }
    }
}

/// What must still hold for a batch to apply. Checked against the state *at apply time*,
/// after every earlier batch in the log, so a condition that held when the client read is
/// not enough: that is the point of compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "if", rename_all = "snake_case")]
pub enum Condition {
    /// The key's version equals `version` (`0`: the key must be absent).
    VersionEquals { key: Blob, version: u64 },
    /// The key's value equals `value` (`None`: the key must be absent).
    ValueEquals { key: Blob, value: Option<Blob> },
}

impl Condition {
    pub fn key(&self) -> &Blob {
        match self {
            Condition::VersionEquals { key, .. } | Condition::ValueEquals { key, .. } => key,
        }
    }

    /// Whether the condition holds for a key whose current entry is `current`.
    pub fn holds(&self, current: Option<&VersionedValue>) -> bool {
        match self {
            Condition::VersionEquals { version, .. } => {
                current.map_or(0, |entry| entry.version) == *version
            }
            Condition::ValueEquals { value, .. } => {
                current.map(|entry| entry.value.as_slice()) == value.as_ref().map(Blob::as_slice)
            }
        }
    }
}

/// "Apply these operations only if all these conditions hold", atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub operations: Vec<Operation>,
}

impl Batch {
    /// A batch of one unconditional put.
    pub fn of_put(key: impl Into<Blob>, value: impl Into<Blob>) -> Self {
        let mut batch = Batch::default();
        batch.put(key, value);
        batch
    }

    /// A batch of one unconditional delete.
    pub fn of_delete(key: impl Into<Blob>) -> Self {
        let mut batch = Batch::default();
        batch.delete(key);
        batch
    }

    pub fn when(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }

    /// Adds the condition that `key` is at `version` (`0`: absent).
    pub fn require_version(&mut self, key: impl Into<Blob>, version: u64) -> &mut Self {
        self.conditions.push(Condition::VersionEquals {
            key: key.into(),
            version,
        });
        self
    }

    /// Adds the condition that `key` does not exist.
    pub fn require_absent(&mut self, key: impl Into<Blob>) -> &mut Self {
        self.require_version(key, 0)
    }

    pub fn put(&mut self, key: impl Into<Blob>, value: impl Into<Blob>) -> &mut Self {
        self.operations.push(Operation::Put {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    pub fn delete(&mut self, key: impl Into<Blob>) -> &mut Self {
        self.operations.push(Operation::Delete { key: key.into() });
        self
    }

    /// Conditions plus operations: what [`BATCH_ITEMS_MAX`] bounds.
    pub fn len(&self) -> usize {
        self.conditions.len() + self.operations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the limits a batch must respect before it may enter the log. A batch that
    /// passes here can always be applied (or cleanly refused by a condition) by every
    /// member, so a bad request can never wedge the state machine.
    pub fn validate(&self, value_bytes_max: usize) -> Result<(), BatchInvalid> {
        if self.operations.is_empty() {
            return Err(BatchInvalid::NoOperations);
        }
        let items = self.operations.len() + self.conditions.len();
        if items > BATCH_ITEMS_MAX {
            return Err(BatchInvalid::TooManyItems {
                items,
                limit: BATCH_ITEMS_MAX,
            });
        }
        let keys = self
            .operations
            .iter()
            .map(Operation::key)
            .chain(self.conditions.iter().map(Condition::key));
        for key in keys {
            validate_key(key.as_slice())?;
        }
        let values = self
            .operations
            .iter()
            .filter_map(|operation| match operation {
                Operation::Put { value, .. } => Some(value),
                Operation::Delete { .. } => None,
            });
        let compared = self
            .conditions
            .iter()
            .filter_map(|condition| match condition {
                Condition::ValueEquals { value, .. } => value.as_ref(),
                Condition::VersionEquals { .. } => None,
            });
        for value in values.chain(compared) {
            if value.len() > value_bytes_max {
                return Err(BatchInvalid::ValueTooLarge {
                    bytes: value.len(),
                    limit: value_bytes_max,
                });
            }
        }
        Ok(())
    }
}

pub fn validate_key(key: &[u8]) -> Result<(), BatchInvalid> {
    if key.is_empty() {
        return Err(BatchInvalid::EmptyKey);
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(BatchInvalid::KeyTooLong {
            bytes: key.len(),
            limit: KEY_BYTES_MAX,
        });
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchInvalid {
    #[error("a batch needs at least one operation")]
    NoOperations,
    #[error("batch has {items} operations and conditions; the limit is {limit}")]
    TooManyItems { items: usize, limit: usize },
    #[error("keys must not be empty")]
    EmptyKey,
    #[error("key is {bytes} bytes; the limit is {limit} (KEY_BYTES_MAX)")]
    KeyTooLong { bytes: usize, limit: usize },
    #[error("value is {bytes} bytes; the limit is {limit} (value_bytes_max)")]
    ValueTooLarge { bytes: usize, limit: usize },
}

/// A key's stored entry: its value and the revision that last wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionedValue {
    pub version: u64,
    pub value: Blob,
}

impl VersionedValue {
    /// On-disk form in the key-value column family: 8-byte big-endian version, then the
    /// value bytes. Fixed layout, so reading never allocates a parser.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(8 + self.value.len());
        bytes.extend_from_slice(&self.version.to_be_bytes());
        bytes.extend_from_slice(self.value.as_slice());
        bytes
    }

    /// `None` when the stored bytes are shorter than the version prefix: corruption that
    /// the caller reports instead of serving a wrong version.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (version, value) = bytes.split_first_chunk::<8>()?;
        Some(VersionedValue {
            version: u64::from_be_bytes(*version),
            value: Blob(value.to_vec()),
        })
    }
}

/// One page of a range scan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanPage {
    pub entries: Vec<(Blob, VersionedValue)>,
    /// The key to pass as `start_after` for the next page; `None` at the end.
    pub next_start_after: Option<Blob>,
}

/// The result of one batch, in the order the batches were proposed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BatchOutcome {
    /// Every operation was applied; written keys now carry `version`.
    Applied { version: u64 },
    /// Nothing was applied: condition number `condition_index` did not hold.
    ConditionFailed {
        condition_index: usize,
        key: Blob,
        actual_version: u64,
    },
}

/// One raft log entry's payload: the batches of many concurrent clients (group commit).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub batches: Vec<Batch>,
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Proposal({} batches)", self.batches.len())
    }
}

/// The outcomes of a proposal's batches, index for index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalOutcome {
    pub outcomes: Vec<BatchOutcome>,
}

/// Decides a batch against the current entries of the keys its conditions name. Pure:
/// the state machine calls it with what it read (including earlier batches of the same
/// entry) and writes only when it returns `Ok`.
pub fn check_conditions(
    batch: &Batch,
    mut current: impl FnMut(&[u8]) -> Option<VersionedValue>,
) -> Result<(), BatchOutcome> {
    for (condition_index, condition) in batch.conditions.iter().enumerate() {
        let entry = current(condition.key().as_slice());
        if !condition.holds(entry.as_ref()) {
            return Err(BatchOutcome::ConditionFailed {
                condition_index,
                key: condition.key().clone(),
                actual_version: entry.map_or(0, |entry| entry.version),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(version: u64, value: &str) -> Option<VersionedValue> {
        Some(VersionedValue {
            version,
            value: value.into(),
        })
    }

    #[test]
    fn version_zero_means_absent() {
        let condition = Condition::VersionEquals {
            key: "k".into(),
            version: 0,
        };
        assert!(condition.holds(None));
        assert!(!condition.holds(entry(3, "v").as_ref()));
    }

    #[test]
    fn failed_condition_names_its_index_and_the_actual_version() {
        let batch = Batch::of_put("a", "1")
            .when(Condition::ValueEquals {
                key: "a".into(),
                value: None,
            })
            .when(Condition::VersionEquals {
                key: "b".into(),
                version: 4,
            });
        let outcome =
            check_conditions(&batch, |key| if key == b"b" { entry(7, "x") } else { None });
        assert_eq!(
            outcome,
            Err(BatchOutcome::ConditionFailed {
                condition_index: 1,
                key: "b".into(),
                actual_version: 7
            })
        );
    }

    #[test]
    fn limits_are_enforced_with_named_reasons() {
        assert_eq!(
            Batch::default().validate(10),
            Err(BatchInvalid::NoOperations)
        );
        assert!(matches!(
            Batch::of_put("k", "01234567890").validate(10),
            Err(BatchInvalid::ValueTooLarge {
                bytes: 11,
                limit: 10
            })
        ));
        assert_eq!(
            Batch::of_put("", "v").validate(10),
            Err(BatchInvalid::EmptyKey)
        );
        let long_key = vec![b'k'; KEY_BYTES_MAX + 1];
        assert!(matches!(
            Batch::of_put(long_key, "v").validate(10),
            Err(BatchInvalid::KeyTooLong { .. })
        ));
    }

    #[test]
    fn versioned_value_round_trips_and_rejects_truncation() {
        let value = VersionedValue {
            version: 42,
            value: "hello".into(),
        };
        assert_eq!(VersionedValue::decode(&value.encode()), Some(value));
        assert_eq!(VersionedValue::decode(&[1, 2, 3]), None);
    }
}
