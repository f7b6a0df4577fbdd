//! The narrow slice of the metadata service the gateway uses: a linearizable key-value
//! store with prefix scans and atomic compare-and-set batches. It is exactly the shape
//! of `shardlet-meta`'s `MetaClient` (get / scan / batch), so the production
//! implementation is a thin adapter and every typed operation in `catalog.rs` runs the
//! same code in unit tests and in production.
//!
//! `InMemoryMetadata` (tests only) exists for unit tests of single modules; servers and
//! end-to-end tests always talk to a real meta-raft.

use async_trait::async_trait;

/// Largest page a scan may ask for (the metadata service caps it at 10 000 too).
pub const SCAN_LIMIT_MAX: usize = 1000;
/// Most conditions + operations in one batch (the metadata service's `BATCH_ITEMS_MAX`).
pub const BATCH_ITEMS_MAX: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// Strictly increasing across the store; never reused.
    pub version: u64,
    pub value: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The key's version is `version`; 0 means the key is absent.
    VersionEquals { key: Vec<u8>, version: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

/// Applied all together, if and only if every condition holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub conditions: Vec<Condition>,
    pub operations: Vec<Operation>,
}

impl Batch {
    pub fn require_version(&mut self, key: Vec<u8>, version: u64) -> &mut Self {
        self.conditions
            .push(Condition::VersionEquals { key, version });
        self
    }

    pub fn require_absent(&mut self, key: Vec<u8>) -> &mut Self {
        self.require_version(key, 0)
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> &mut Self {
        self.operations.push(Operation::Put { key, value });
        self
    }

    pub fn delete(&mut self, key: Vec<u8>) -> &mut Self {
        self.operations.push(Operation::Delete { key });
        self
    }

    pub fn len(&self) -> usize {
        self.conditions.len() + self.operations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    Applied {
        version: u64,
    },
    /// Nothing was applied; `key` is the first condition that did not hold.
    ConditionFailed {
        key: Vec<u8>,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    pub entries: Vec<(Vec<u8>, Versioned)>,
    /// Pass as `start_after` for the next page; `None` when the prefix is exhausted.
    pub next_start_after: Option<Vec<u8>>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MetadataError {
    /// Nothing was applied; retrying is safe.
    #[error("metadata service unavailable: {0}")]
    Unavailable(String),
    /// A write may or may not have been applied.
    #[error("metadata write outcome unknown: {0}")]
    Ambiguous(String),
    /// The request itself was refused (too large, malformed); a gateway bug or limit.
    #[error("metadata request rejected: {0}")]
    Rejected(String),
    /// A stored record could not be decoded.
    #[error("corrupt metadata record: {0}")]
    Corrupt(String),
}

#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    async fn get(&self, key: &[u8]) -> Result<Option<Versioned>, MetadataError>;

    /// Keys starting with `prefix`, ascending, strictly after `start_after`.
    async fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage, MetadataError>;

    async fn batch(&self, batch: Batch) -> Result<BatchOutcome, MetadataError>;
}

#[cfg(test)]
pub use in_memory::InMemoryMetadata;

#[cfg(test)]
mod in_memory {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// A `BTreeMap` with versions, for unit tests of single modules only.
    #[derive(Default)]
    pub struct InMemoryMetadata {
        state: Mutex<(u64, BTreeMap<Vec<u8>, Versioned>)>,
    }

    impl InMemoryMetadata {
        pub fn keys_with_prefix(&self, prefix: &[u8]) -> Vec<Vec<u8>> {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state
                .1
                .keys()
                .filter(|key| key.starts_with(prefix))
                .cloned()
                .collect()
        }
    }

    #[async_trait]
    impl MetadataStore for InMemoryMetadata {
        async fn get(&self, key: &[u8]) -> Result<Option<Versioned>, MetadataError> {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            Ok(state.1.get(key).cloned())
        }

        async fn scan(
            &self,
            prefix: &[u8],
            start_after: Option<&[u8]>,
            limit: usize,
        ) -> Result<ScanPage, MetadataError> {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let mut entries = Vec::new();
            let mut more = false;
            for (key, value) in state.1.range(prefix.to_vec()..) {
                if !key.starts_with(prefix) {
                    break;
                }
                if start_after.is_some_and(|after| key.as_slice() <= after) {
                    continue;
                }
                if entries.len() == limit {
                    more = true;
                    break;
                }
                entries.push((key.clone(), value.clone()));
            }
            let next_start_after = if more {
                entries.last().map(|(key, _)| key.clone())
            } else {
                None
            };
            Ok(ScanPage {
                entries,
                next_start_after,
            })
        }

        async fn batch(&self, batch: Batch) -> Result<BatchOutcome, MetadataError> {
            if batch.len() > BATCH_ITEMS_MAX {
                return Err(MetadataError::Rejected("batch too large".into()));
            }
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            for Condition::VersionEquals { key, version } in &batch.conditions {
                let actual = state.1.get(key).map_or(0, |value| value.version);
                if actual != *version {
                    return Ok(BatchOutcome::ConditionFailed { key: key.clone() });
                }
            }
            state.0 += 1;
            let version = state.0;
            for operation in batch.operations {
                match operation {
                    Operation::Put { key, value } => {
                        state.1.insert(key, Versioned { version, value });
                    }
                    Operation::Delete { key } => {
                        state.1.remove(&key);
                    }
                }
            }
            Ok(BatchOutcome::Applied { version })
        }
    }
}
