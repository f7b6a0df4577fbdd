//! [`MetadataStore`] over meta-raft's `MetaClient`: the production metadata backend.
//! Reads are linearizable (read-after-write across gateways); writes are CAS batches.

use async_trait::async_trait;
use shardlet_meta::command::{
    Batch as MetaBatch, BatchOutcome as MetaOutcome, Condition as MetaCondition,
    Operation as MetaOperation,
};
use shardlet_meta::{Blob, ClientError, MetaClient, ReadConsistency};

use crate::metadata::{
    Batch, BatchOutcome, Condition, MetadataError, MetadataStore, Operation, ScanPage, Versioned,
};

pub struct MetaStore {
    client: MetaClient,
}

impl MetaStore {
    pub fn new(client: MetaClient) -> Self {
        Self { client }
    }
}

fn map_error(error: ClientError) -> MetadataError {
    match error {
        ClientError::Unavailable { .. } => MetadataError::Unavailable(error.to_string()),
        ClientError::Ambiguous(reason) => MetadataError::Ambiguous(reason),
        ClientError::Rejected { .. } => MetadataError::Rejected(error.to_string()),
    }
}

#[async_trait]
impl MetadataStore for MetaStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Versioned>, MetadataError> {
        let found = self
            .client
            .get(key.to_vec(), ReadConsistency::Linearizable)
            .await
            .map_err(map_error)?;
        Ok(found.map(|entry| Versioned {
            version: entry.version,
            value: entry.value.0,
        }))
    }

    async fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage, MetadataError> {
        let page = self
            .client
            .scan(
                prefix.to_vec(),
                start_after.map(|after| Blob(after.to_vec())),
                limit,
                ReadConsistency::Linearizable,
            )
            .await
            .map_err(map_error)?;
        Ok(ScanPage {
            entries: page
                .entries
                .into_iter()
                .map(|(key, entry)| {
                    (
                        key.0,
                        Versioned {
                            version: entry.version,
                            value: entry.value.0,
                        },
                    )
                })
                .collect(),
            next_start_after: page.next_start_after.map(|blob| blob.0),
        })
    }

    async fn batch(&self, batch: Batch) -> Result<BatchOutcome, MetadataError> {
        let converted = MetaBatch {
            conditions: batch
                .conditions
                .into_iter()
                .map(
                    |Condition::VersionEquals { key, version }| MetaCondition::VersionEquals {
                        key: Blob(key),
                        version,
                    },
                )
                .collect(),
            operations: batch
                .operations
                .into_iter()
                .map(|operation| match operation {
                    Operation::Put { key, value } => MetaOperation::Put {
                        key: Blob(key),
                        value: Blob(value),
                    },
                    Operation::Delete { key } => MetaOperation::Delete { key: Blob(key) },
                })
                .collect(),
        };
        match self.client.batch(converted).await.map_err(map_error)? {
            MetaOutcome::Applied { version } => Ok(BatchOutcome::Applied { version }),
            MetaOutcome::ConditionFailed { key, .. } => {
                Ok(BatchOutcome::ConditionFailed { key: key.0 })
            }
        }
    }
}
