//! The key-value API every layer above the metadata service uses: linearizable point
//! reads, prefix scans in pages, and atomic compare-and-set batches. It is exactly the
//! shape of `shardlet_meta::MetaClient` (which implements it), so the typed layer in
//! [`crate::access`] runs the same code against the real service and against the
//! in-memory fake of unit tests.

use async_trait::async_trait;
pub use shardlet_meta::command::BATCH_ITEMS_MAX;
pub use shardlet_meta::{
    Batch, BatchOutcome, Blob, Condition, Operation, ScanPage, VersionedValue,
};
use shardlet_meta::{ClientError, MetaClient, ReadConsistency};

/// Keys per scan page the layers above ask for (the service allows up to 10,000; pages
/// of 1,000 keep one response below a few MB of records).
pub const SCAN_LIMIT_MAX: usize = 1000;

#[derive(Debug, Clone, thiserror::Error)]
pub enum MetadataError {
    /// Nothing was applied; retrying is safe.
    #[error("metadata service unavailable: {0}")]
    Unavailable(String),
    /// A write may or may not have been applied: re-read before retrying.
    #[error("metadata write outcome unknown: {0}")]
    Ambiguous(String),
    /// The request itself was refused (too large, malformed): a bug or a limit.
    #[error("metadata request rejected: {0}")]
    Rejected(String),
    /// A stored record could not be decoded.
    #[error("corrupt metadata record: {0}")]
    Corrupt(String),
}

impl From<ClientError> for MetadataError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Unavailable { .. } => MetadataError::Unavailable(error.to_string()),
            ClientError::Ambiguous(reason) => MetadataError::Ambiguous(reason),
            ClientError::Rejected { .. } => MetadataError::Rejected(error.to_string()),
        }
    }
}

#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// The key's entry as of now (linearizable: reflects every acknowledged write).
    async fn get(&self, key: &[u8]) -> Result<Option<VersionedValue>, MetadataError>;

    /// Keys starting with `prefix`, ascending, strictly after `start_after`, at most
    /// `limit` (at most [`SCAN_LIMIT_MAX`] is asked for).
    async fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage, MetadataError>;

    /// Applies every operation if and only if every condition holds.
    async fn batch(&self, batch: Batch) -> Result<BatchOutcome, MetadataError>;
}

#[async_trait]
impl MetadataStore for MetaClient {
    async fn get(&self, key: &[u8]) -> Result<Option<VersionedValue>, MetadataError> {
        Ok(MetaClient::get(self, key.to_vec(), ReadConsistency::Linearizable).await?)
    }

    async fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage, MetadataError> {
        Ok(MetaClient::scan(
            self,
            prefix.to_vec(),
            start_after.map(Blob::from),
            limit,
            ReadConsistency::Linearizable,
        )
        .await?)
    }

    async fn batch(&self, batch: Batch) -> Result<BatchOutcome, MetadataError> {
        Ok(MetaClient::batch(self, batch).await?)
    }
}
