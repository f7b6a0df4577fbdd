//! Typed access to the metadata the gateway owns: buckets, objects, multipart uploads,
//! credentials and upload intents, over the key-value [`MetadataStore`].
//!
//! Every multi-record change is one atomic batch guarded by version conditions, so a
//! reader never sees half of it and two writers never both win.

use std::sync::Arc;

use prometheus::IntCounterVec;
use shardlet_core::RedundancyLevel;

use crate::bucket_cache::BucketCache;
use crate::metadata::{Batch, BatchOutcome, MetadataError, MetadataStore, SCAN_LIMIT_MAX};
use shardlet_meta::schema::{
    decode, encode, keys, BucketRecord, CredentialRecord, MultipartUploadRecord, ObjectRecord,
    PartRecord, Record, SecretKey,
};

/// A record with the version it was read at (for compare-and-set).
#[derive(Clone, Debug)]
pub struct Stored<R> {
    pub record: R,
    pub version: u64,
}

/// Compare-and-set attempts of a bucket record update before giving up with `Conflict`.
const BUCKET_UPDATE_ATTEMPTS_MAX: usize = 8;
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
    #[error("a concurrent change to {0} won; retry")]
    Conflict(String),
}

#[derive(Clone)]
pub struct Catalog {
    store: Arc<dyn MetadataStore>,
    /// Live buckets recently read fresh, for [`Catalog::existing_bucket_recent`]; shared
    /// by every clone of this catalog (one per gateway process).
    buckets: Arc<BucketCache>,
    /// `shardlet_gateway_bucket_cache_total{result}` when the catalog serves a gateway.
    bucket_cache_total: Option<IntCounterVec>,
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

pub fn unix_ms_now() -> u64 {
    now_unix_ms()
}

impl Catalog {
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self {
            store,
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

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    pub async fn read<R: Record>(&self, key: &[u8]) -> Result<Option<Stored<R>>, CatalogError> {
        let Some(found) = self.store.get(key).await? else {
            return Ok(None);
        };
        let record = decode::<R>(&found.value)
            .map_err(|error| MetadataError::Corrupt(format!("{}: {error}", key_text(key))))?;
        Ok(Some(Stored {
            record,
            version: found.version,
        }))
    }

    /// One page of records under `prefix`, decoded, with the next `start_after`.
    pub async fn scan<R: Record>(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<(Vec<u8>, Stored<R>)>, Option<Vec<u8>>), CatalogError> {
        let page = self
            .store
            .scan(prefix, start_after, limit.min(SCAN_LIMIT_MAX))
            .await?;
        let mut out = Vec::with_capacity(page.entries.len());
        for (key, value) in page.entries {
            let record = decode::<R>(&value.value)
                .map_err(|error| MetadataError::Corrupt(format!("{}: {error}", key_text(&key))))?;
            out.push((
                key,
                Stored {
                    record,
                    version: value.version,
                },
            ));
        }
        Ok((out, page.next_start_after))
    }

    pub async fn apply(&self, batch: Batch) -> Result<BatchOutcome, CatalogError> {
        Ok(self.store.batch(batch).await?)
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

    /// [`Self::existing_bucket`], served from the bucket cache when this gateway read
    /// the bucket less than [`BUCKET_CACHE_TTL`](crate::bucket_cache::BUCKET_CACHE_TTL)
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

    /// Creates a bucket; `BucketExists` carries whether the caller owns it.
    pub async fn create_bucket(
        &self,
        name: &str,
        owner: &str,
        default_redundancy: RedundancyLevel,
    ) -> Result<(), CatalogError> {
        let record = BucketRecord {
            name: name.to_string(),
            owner: owner.to_string(),
            default_redundancy,
            created_unix_ms: now_unix_ms(),
            deleting: false,
        };
        let mut batch = Batch::default();
        batch
            .require_absent(keys::bucket(name))
            .put(keys::bucket(name), encode(&record));
        // Whatever the outcome (even an unknown one), this gateway's next read is fresh.
        let outcome = self.apply(batch).await;
        self.buckets.forget(name);
        match outcome? {
            BatchOutcome::Applied { .. } => Ok(()),
            BatchOutcome::ConditionFailed { .. } => Err(CatalogError::BucketExists(name.into())),
        }
    }

    /// Sets the redundancy level PutObject / CreateMultipartUpload use for this bucket when
    /// a request names no storage class. A compare-and-set on the bucket record (bounded
    /// retries when something else changed it meanwhile); objects already stored keep
    /// their level. Writes whose commit read the old version re-read the bucket and
    /// commit normally.
    ///
    /// This gateway's bucket cache forgets the bucket once the update is over, so its
    /// next PUT uses the new level; other gateways' within the cache's TTL.
    pub async fn set_bucket_redundancy(
        &self,
        name: &str,
        level: RedundancyLevel,
    ) -> Result<BucketRecord, CatalogError> {
        let result = self.update_bucket_redundancy(name, level).await;
        self.buckets.forget(name);
        result
    }

    async fn update_bucket_redundancy(
        &self,
        name: &str,
        level: RedundancyLevel,
    ) -> Result<BucketRecord, CatalogError> {
        for _ in 0..BUCKET_UPDATE_ATTEMPTS_MAX {
            let bucket = self.existing_bucket(name).await?;
            let mut updated = bucket.record.clone();
            updated.default_redundancy = level;
            let mut batch = Batch::default();
            batch
                .require_version(keys::bucket(name), bucket.version)
                .put(keys::bucket(name), encode(&updated));
            if let BatchOutcome::Applied { .. } = self.apply(batch).await? {
                return Ok(updated);
            }
        }
        Err(CatalogError::Conflict(format!("bucket {name}")))
    }

    /// Deletes an empty bucket in two steps so no object commit can slip in between the
    /// emptiness check and the delete: (1) mark it `deleting` (this changes its version,
    /// and every object commit is conditioned on the version it read of an active
    /// bucket), (2) check it holds no objects and no uploads, (3) delete it, conditioned
    /// on the marked version. Not empty: the mark is undone. A crash between (1) and (3)
    /// leaves the bucket marked: it answers NoSuchBucket until `DeleteBucket` is retried.
    ///
    /// This gateway's bucket cache forgets the bucket once the delete is over (deleted,
    /// refused or failed); other gateways' cached copies fail their commit's condition.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), CatalogError> {
        let result = self.mark_and_delete_bucket(name).await;
        self.buckets.forget(name);
        result
    }

    async fn mark_and_delete_bucket(&self, name: &str) -> Result<(), CatalogError> {
        let bucket = self.existing_bucket(name).await?;
        let mut marked = bucket.record.clone();
        marked.deleting = true;
        let mut mark = Batch::default();
        mark.require_version(keys::bucket(name), bucket.version)
            .put(keys::bucket(name), encode(&marked));
        let marked_version = match self.apply(mark).await? {
            BatchOutcome::Applied { version } => version,
            BatchOutcome::ConditionFailed { .. } => {
                return Err(CatalogError::Conflict(format!("bucket {name}")))
            }
        };
        let objects = self
            .store
            .scan(&keys::objects_of_bucket(name), None, 1)
            .await?;
        let uploads = self
            .store
            .scan(&keys::uploads_of_bucket(name), None, 1)
            .await?;
        let mut finish = Batch::default();
        finish.require_version(keys::bucket(name), marked_version);
        let empty = objects.entries.is_empty() && uploads.entries.is_empty();
        if empty {
            finish.delete(keys::bucket(name));
        } else {
            finish.put(keys::bucket(name), encode(&bucket.record));
        }
        match self.apply(finish).await? {
            BatchOutcome::Applied { .. } if empty => Ok(()),
            BatchOutcome::Applied { .. } => Err(CatalogError::BucketNotEmpty(name.into())),
            BatchOutcome::ConditionFailed { .. } => {
                Err(CatalogError::Conflict(format!("bucket {name}")))
            }
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

    /// Parts after `after_part_number`, ascending, at most `limit`.
    pub async fn parts(
        &self,
        upload_id: &str,
        after_part_number: u16,
        limit: usize,
    ) -> Result<(Vec<PartRecord>, bool), CatalogError> {
        let after = (after_part_number > 0).then(|| keys::part(upload_id, after_part_number));
        let (page, next) = self
            .scan::<PartRecord>(&keys::parts_of_upload(upload_id), after.as_deref(), limit)
            .await?;
        Ok((
            page.into_iter().map(|(_, stored)| stored.record).collect(),
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

    /// Stores a credential made elsewhere (`shardlet dev` keeps its key in its data
    /// directory); an existing identical record is success, a different one an error.
    pub async fn ensure_credential(&self, record: &CredentialRecord) -> Result<(), CatalogError> {
        if let Some(existing) = self.credential(&record.access_key).await? {
            return if existing.secret_key == record.secret_key {
                Ok(())
            } else {
                Err(CatalogError::Conflict(format!(
                    "access key {}",
                    record.access_key
                )))
            };
        }
        let key = keys::credential(&record.access_key);
        let mut batch = Batch::default();
        batch.require_absent(key.clone()).put(key, encode(record));
        match self.apply(batch).await? {
            BatchOutcome::Applied { .. } => Ok(()),
            BatchOutcome::ConditionFailed { .. } => Err(CatalogError::Conflict(format!(
                "access key {}",
                record.access_key
            ))),
        }
    }

    /// A new random credential (not stored).
    pub fn new_credential(owner: &str) -> CredentialRecord {
        CredentialRecord {
            access_key: random_text(ACCESS_KEY_ALPHABET, 20),
            secret_key: SecretKey(random_text(SECRET_KEY_ALPHABET, 40)),
            owner: owner.to_string(),
            created_unix_ms: now_unix_ms(),
        }
    }

    /// Creates a new access key + secret for `owner` and stores it.
    pub async fn create_credential(&self, owner: &str) -> Result<CredentialRecord, CatalogError> {
        let record = CredentialRecord {
            access_key: random_text(ACCESS_KEY_ALPHABET, 20),
            secret_key: SecretKey(random_text(SECRET_KEY_ALPHABET, 40)),
            owner: owner.to_string(),
            created_unix_ms: now_unix_ms(),
        };
        let key = keys::credential(&record.access_key);
        let mut batch = Batch::default();
        batch.require_absent(key.clone()).put(key, encode(&record));
        match self.apply(batch).await? {
            BatchOutcome::Applied { .. } => Ok(record),
            BatchOutcome::ConditionFailed { .. } => Err(CatalogError::Conflict(
                "access key (random collision)".into(),
            )),
        }
    }
}

const ACCESS_KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_KEY_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Random text in the shape of AWS keys (20 upper-case, 40 mixed): tools that check key
/// shapes accept them.
fn random_text(alphabet: &[u8], length: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..length)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// A key for messages: lossy, bounded, with NUL made visible.
pub fn key_text(key: &[u8]) -> String {
    String::from_utf8_lossy(&key[..key.len().min(200)]).replace('\0', "\\0")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::metadata::InMemoryMetadata;

    fn catalog() -> Catalog {
        Catalog::new(Arc::new(InMemoryMetadata::default()))
    }

    #[tokio::test]
    async fn a_bucket_is_created_once() {
        let catalog = catalog();
        catalog
            .create_bucket("photos", "alice", RedundancyLevel::Medium)
            .await
            .unwrap();
        assert!(matches!(
            catalog
                .create_bucket("photos", "bob", RedundancyLevel::Medium)
                .await,
            Err(CatalogError::BucketExists(_))
        ));
        let names: Vec<_> = catalog
            .list_buckets()
            .await
            .unwrap()
            .into_iter()
            .map(|bucket| bucket.name)
            .collect();
        assert_eq!(names, ["photos"]);
    }

    #[tokio::test]
    async fn only_an_empty_bucket_is_deleted_and_a_refused_delete_leaves_it_usable() {
        let catalog = catalog();
        catalog
            .create_bucket("b", "alice", RedundancyLevel::Medium)
            .await
            .unwrap();
        let mut batch = Batch::default();
        batch.put(keys::object("b", "k"), vec![1, b'{', b'}']);
        catalog.apply(batch).await.unwrap();
        assert!(matches!(
            catalog.delete_bucket("b").await,
            Err(CatalogError::BucketNotEmpty(_))
        ));
        assert!(catalog.existing_bucket("b").await.is_ok());
        let mut batch = Batch::default();
        batch.delete(keys::object("b", "k"));
        catalog.apply(batch).await.unwrap();
        catalog.delete_bucket("b").await.unwrap();
        assert!(matches!(
            catalog.existing_bucket("b").await,
            Err(CatalogError::NoSuchBucket(_))
        ));
    }

    #[tokio::test]
    async fn a_buckets_default_redundancy_is_set_and_kept_and_a_missing_bucket_is_named() {
        let catalog = catalog();
        catalog
            .create_bucket("b", "alice", RedundancyLevel::Medium)
            .await
            .unwrap();
        let updated = catalog
            .set_bucket_redundancy("b", RedundancyLevel::High)
            .await
            .unwrap();
        assert_eq!(updated.default_redundancy, RedundancyLevel::High);
        let stored = catalog.existing_bucket("b").await.unwrap().record;
        assert_eq!(stored.default_redundancy, RedundancyLevel::High);
        assert_eq!(stored.owner, "alice");
        assert!(matches!(
            catalog
                .set_bucket_redundancy("missing", RedundancyLevel::Low)
                .await,
            Err(CatalogError::NoSuchBucket(_))
        ));
    }

    #[tokio::test]
    async fn credentials_are_created_with_aws_shapes_and_found_again() {
        let catalog = catalog();
        let created = catalog.create_credential("alice").await.unwrap();
        assert_eq!(created.access_key.len(), 20);
        assert_eq!(created.secret_key.0.len(), 40);
        let found = catalog
            .credential(&created.access_key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found, created);
        assert!(catalog.credential("NOPE").await.unwrap().is_none());
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
}
