//! A `BTreeMap` with versions behind [`MetadataStore`], for unit tests of one module
//! (feature `test-support`). Servers and end-to-end tests always talk to a real
//! meta-raft: this fake only has to agree with it on the contract (strictly growing
//! versions, absent = version 0, all-or-nothing batches, the same limits).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use shardlet_meta::command::check_conditions;
use shardlet_meta::config::VALUE_BYTES_MAX_DEFAULT;

use crate::store::{
    Batch, BatchOutcome, Blob, MetadataError, MetadataStore, Operation, ScanPage, VersionedValue,
};

#[derive(Default)]
pub struct InMemoryMetadata {
    /// The last version handed out, and the entries.
    state: Mutex<(u64, BTreeMap<Vec<u8>, VersionedValue>)>,
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
    async fn get(&self, key: &[u8]) -> Result<Option<VersionedValue>, MetadataError> {
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
        let mut page = ScanPage::default();
        for (key, value) in state.1.range(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            if start_after.is_some_and(|after| key.as_slice() <= after) {
                continue;
            }
            if page.entries.len() == limit {
                page.next_start_after = page.entries.last().map(|(key, _)| key.clone());
                break;
            }
            page.entries.push((Blob(key.clone()), value.clone()));
        }
        Ok(page)
    }

    async fn batch(&self, batch: Batch) -> Result<BatchOutcome, MetadataError> {
        batch
            .validate(VALUE_BYTES_MAX_DEFAULT)
            .map_err(|invalid| MetadataError::Rejected(invalid.to_string()))?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(failed) = check_conditions(&batch, |key| state.1.get(key).cloned()) {
            return Ok(failed);
        }
        state.0 += 1;
        let version = state.0;
        for operation in batch.operations {
            match operation {
                Operation::Put { key, value } => {
                    state.1.insert(key.0, VersionedValue { version, value });
                }
                Operation::Delete { key } => {
                    state.1.remove(key.as_slice());
                }
            }
        }
        Ok(BatchOutcome::Applied { version })
    }
}
