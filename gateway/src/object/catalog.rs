//! The gateway's reads of its metadata: buckets (through the bucket cache), objects,
//! multipart uploads and parts, credentials, over the model's typed access layer
//! ([`Metadata`]). Every change is a compare-and-set batch built in
//! [`crate::object::commit`] (and, for unreferenced data and access counters, in
//! [`crate::object::gc`] and [`crate::object::heat`]); [`Catalog::apply`] is visible to
//! the object layer only, so the S3 layer cannot write metadata around them.

use std::sync::Arc;

use prometheus::IntCounterVec;
use shardlet_model::schema::{
    keys, BucketRecord, CredentialRecord, MultipartUploadRecord, ObjectRecord, PartRecord, Record,
};
use shardlet_model::store::{Batch, BatchOutcome, SCAN_LIMIT_MAX};
pub use shardlet_model::Stored;
use shardlet_model::{Metadata, MetadataError, MetadataStore};

use crate::object::bucket_cache::BucketCache;

/// Most buckets `ListBuckets` returns (S3's default account quota is 10 000).
pub const BUCKETS_LIST_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("bucket {0} already exists")]
    BucketExists(String),
    #[error("bucket {0} does not exist")]
    NoSuchBucket(String),
    #[error("bucket {0} is not empty")]
    BucketNotEmpty(String),
    #[error("access key {0} does not exist")]
    NoSuchCredential(String),
    #[error("a concurrent change to {0} won; retry")]
    Conflict(String),
}

#[derive(Clone)]
pub struct Catalog {
    metadata: Metadata,
    /// Live buckets recently read fresh, for [`Catalog::existing_bucket_recent`]; shared
    /// by every clone of this catalog (one per gateway process).
    buckets: Arc<BucketCache>,
    /// `shardlet_gateway_bucket_cache_total{outcome}` when the catalog serves a gateway.
    bucket_cache_total: Option<IntCounterVec>,
}

impl Catalog {
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self {
            metadata: Metadata::new(store),
            buckets: Arc::new(BucketCache::default()),
            bucket_cache_total: None,
        }
    }

    /// Counts [`Self::existing_bucket_recent`]'s hits and misses in `counter` (labels:
    /// `result`). Clones made after this call count too.
    pub fn counting_bucket_cache(mut self, counter: IntCounterVec) -> Self {
        self.bucket_cache_total = Some(counter);
        self
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub async fn read<R: Record>(&self, key: &[u8]) -> Result<Option<Stored<R>>, CatalogError> {
        Ok(self.metadata.read(key).await?)
    }

    /// One page of records under `prefix`, decoded, with the next `start_after`.
    #[allow(clippy::type_complexity)]
    pub async fn scan<R: Record>(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<(Vec<u8>, Stored<R>)>, Option<Vec<u8>>), CatalogError> {
        Ok(self.metadata.page(prefix, start_after, limit).await?)
    }

    /// Applies a compare-and-set batch. Object layer only: the S3 layer changes
    /// metadata through [`crate::object::commit`].
    pub(in crate::object) async fn apply(
        &self,
        batch: Batch,
    ) -> Result<BatchOutcome, CatalogError> {
        Ok(self.metadata.apply(batch).await?)
    }

    /// Drops a bucket from this gateway's cache, so its next read is fresh (after a
    /// change to the bucket, whatever its outcome).
    pub(in crate::object) fn forget_bucket(&self, name: &str) {
        self.buckets.forget(name);
    }

    // --- buckets ---------------------------------------------------------------------

    /// The bucket as stored now (a linearizable read). A live bucket refreshes the
    /// bucket cache; an absent one or one being deleted drops it from the cache.
    pub async fn bucket(&self, name: &str) -> Result<Option<Stored<BucketRecord>>, CatalogError> {
        let ticket = self.buckets.ticket();
        let found = self.read::<BucketRecord>(&keys::bucket(name)).await?;
        match &found {
            Some(bucket) if !bucket.record.deleting => self.buckets.remember(name, bucket, ticket),
            _ => self.buckets.forget(name),
        }
        Ok(found)
    }

    /// The bucket, or `NoSuchBucket` (also while it is being deleted). Read fresh.
    pub async fn existing_bucket(&self, name: &str) -> Result<Stored<BucketRecord>, CatalogError> {
        match self.bucket(name).await? {
            Some(bucket) if !bucket.record.deleting => Ok(bucket),
            _ => Err(CatalogError::NoSuchBucket(name.to_string())),
        }
    }

    /// The live bucket `name` as authorization sees it: from the bucket cache when this
    /// gateway read it less than [`BUCKET_CACHE_TTL`](crate::object::bucket_cache::BUCKET_CACHE_TTL)
    /// ago, else read fresh; `None` when there is no such bucket (or it is being
    /// deleted). A grant revoked through another gateway may still be honoured here for
    /// up to that TTL, as IAM changes take a moment in any S3; through this gateway the
    /// revocation forgets the cached bucket, so it holds at once.
    pub async fn bucket_to_authorize(
        &self,
        name: &str,
    ) -> Result<Option<Stored<BucketRecord>>, CatalogError> {
        match self.existing_bucket_recent(name).await {
            Ok(bucket) => Ok(Some(bucket)),
            Err(CatalogError::NoSuchBucket(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// [`Self::existing_bucket`], served from the bucket cache when this gateway read
    /// the bucket less than [`BUCKET_CACHE_TTL`](crate::object::bucket_cache::BUCKET_CACHE_TTL)
    /// ago. The record may be stale (changed or deleted through another gateway), so use
    /// this ONLY where a later metadata batch requires the bucket's version to be the
    /// one returned here and, when that condition fails, re-reads the bucket with
    /// [`Self::existing_bucket`] (which corrects the cache).
    /// Absence and buckets being deleted are never cached: they always cost a read.
    pub async fn existing_bucket_recent(
        &self,
        name: &str,
    ) -> Result<Stored<BucketRecord>, CatalogError> {
        let cached = self.buckets.recent(name);
        if let Some(counter) = &self.bucket_cache_total {
            let result = if cached.is_some() { "hit" } else { "miss" };
            counter.with_label_values(&[result]).inc();
        }
        match cached {
            Some(bucket) => Ok(bucket),
            None => self.existing_bucket(name).await,
        }
    }

    pub async fn list_buckets(&self) -> Result<Vec<BucketRecord>, CatalogError> {
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (page, next) = self
                .scan::<BucketRecord>(
                    keys::BUCKET_PREFIX.as_bytes(),
                    after.as_deref(),
                    SCAN_LIMIT_MAX,
                )
                .await?;
            out.extend(
                page.into_iter()
                    .map(|(_, stored)| stored.record)
                    .filter(|record| !record.deleting),
            );
            match next {
                Some(next) if out.len() < BUCKETS_LIST_MAX => after = Some(next),
                _ => break,
            }
        }
        out.truncate(BUCKETS_LIST_MAX);
        Ok(out)
    }

    /// Whether the bucket holds no object and no multipart upload.
    pub async fn bucket_is_empty(&self, name: &str) -> Result<bool, CatalogError> {
        let store = self.metadata.store();
        let objects = store.scan(&keys::objects_of_bucket(name), None, 1).await?;
        let uploads = store.scan(&keys::uploads_of_bucket(name), None, 1).await?;
        Ok(objects.entries.is_empty() && uploads.entries.is_empty())
    }

    // --- objects ---------------------------------------------------------------------

    pub async fn object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Stored<ObjectRecord>>, CatalogError> {
        self.read(&keys::object(bucket, key)).await
    }

    // --- multipart -------------------------------------------------------------------

    pub async fn upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<Stored<MultipartUploadRecord>>, CatalogError> {
        self.read(&keys::upload(bucket, key, upload_id)).await
    }

    pub async fn part(
        &self,
        upload_id: &str,
        part_number: u16,
    ) -> Result<Option<Stored<PartRecord>>, CatalogError> {
        self.read(&keys::part(upload_id, part_number)).await
    }

    /// Parts after `after_part_number`, ascending, at most `limit`, with whether more
    /// follow.
    pub async fn parts(
        &self,
        upload_id: &str,
        after_part_number: u16,
        limit: usize,
    ) -> Result<(Vec<Stored<PartRecord>>, bool), CatalogError> {
        let after = (after_part_number > 0).then(|| keys::part(upload_id, after_part_number));
        let (page, next) = self
            .scan::<PartRecord>(&keys::parts_of_upload(upload_id), after.as_deref(), limit)
            .await?;
        Ok((
            page.into_iter().map(|(_, stored)| stored).collect(),
            next.is_some(),
        ))
    }

    // --- credentials -----------------------------------------------------------------

    pub async fn credential(
        &self,
        access_key: &str,
    ) -> Result<Option<CredentialRecord>, CatalogError> {
        Ok(self
            .read::<CredentialRecord>(&keys::credential(access_key))
            .await?
            .map(|stored| stored.record))
    }
}

#[cfg(test)]
impl Catalog {
    /// The names [`Catalog::list_buckets`] returns (for tests).
    pub(crate) async fn bucket_names(&self) -> Vec<String> {
        match self.list_buckets().await {
            Ok(buckets) => buckets.into_iter().map(|bucket| bucket.name).collect(),
            Err(error) => panic!("list_buckets: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use shardlet_core::RedundancyLevel;
    use shardlet_model::memory::InMemoryMetadata;
    use shardlet_model::schema::encode;

    use super::*;

    fn catalog() -> Catalog {
        Catalog::new(Arc::new(InMemoryMetadata::default()))
    }

    fn bucket(name: &str, deleting: bool) -> BucketRecord {
        BucketRecord {
            name: name.into(),
            owner: "alice".into(),
            default_redundancy: RedundancyLevel::Medium,
            created_unix_ms: 0,
            deleting,
            grants: Vec::new(),
            tags: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_corrupt_record_is_an_error_not_a_panic() {
        let catalog = catalog();
        let mut batch = Batch::default();
        batch.put(keys::bucket("x"), vec![9, 9, 9]);
        catalog.apply(batch).await.unwrap();
        assert!(matches!(
            catalog.bucket("x").await,
            Err(CatalogError::Metadata(MetadataError::Corrupt(_)))
        ));
    }

    #[tokio::test]
    async fn a_bucket_being_deleted_is_no_such_bucket_and_not_listed() {
        let catalog = catalog();
        let mut batch = Batch::default();
        batch
            .put(keys::bucket("live"), encode(&bucket("live", false)))
            .put(keys::bucket("going"), encode(&bucket("going", true)));
        catalog.apply(batch).await.unwrap();
        assert!(catalog.existing_bucket("live").await.is_ok());
        assert!(matches!(
            catalog.existing_bucket("going").await,
            Err(CatalogError::NoSuchBucket(_))
        ));
        assert_eq!(catalog.bucket_names().await, ["live"]);
    }
}
