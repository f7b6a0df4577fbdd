//! Buckets and credentials: CreateBucket, the default redundancy level, DeleteBucket,
//! S3 keys.

use shardlet_core::RedundancyLevel;
use shardlet_model::permission;
use shardlet_model::schema::{
    encode, keys, BucketRecord, BucketTag, CredentialRecord, GrantPermission, SecretKey,
};
use shardlet_model::store::{Batch, BatchOutcome};

use crate::object::catalog::{Catalog, CatalogError};
use crate::object::unix_ms_now;

/// Compare-and-set attempts of a bucket record update before giving up with `Conflict`.
const BUCKET_UPDATE_ATTEMPTS_MAX: usize = 8;

/// The commits of buckets and credentials. They need no garbage collection (no data
/// hangs off them), so tools (`shardlet admin`, `shardlet dev`) use them without a
/// gateway.
#[derive(Clone)]
pub struct Buckets {
    catalog: Catalog,
}

impl Buckets {
    pub fn new(catalog: Catalog) -> Self {
        Self { catalog }
    }

    pub(super) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Creates a bucket; `BucketExists` whoever owns it (the caller tells S3's two
    /// answers apart).
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
            created_unix_ms: unix_ms_now(),
            deleting: false,
            grants: Vec::new(),
            tags: Vec::new(),
        };
        let mut batch = Batch::default();
        batch
            .require_absent(keys::bucket(name))
            .put(keys::bucket(name), encode(&record));
        // Whatever the outcome (even an unknown one), this gateway's next read is fresh.
        let outcome = self.catalog.apply(batch).await;
        self.catalog.forget_bucket(name);
        match outcome? {
            BatchOutcome::Applied { .. } => Ok(()),
            BatchOutcome::ConditionFailed { .. } => Err(CatalogError::BucketExists(name.into())),
        }
    }

    /// Sets the redundancy level PutObject / CreateMultipartUpload use for this bucket
    /// when a request names no storage class. A compare-and-set on the bucket record
    /// (bounded retries when something else changed it meanwhile); objects already
    /// stored keep their level. Writes whose commit read the old version re-read the
    /// bucket and commit normally.
    ///
    /// This gateway's bucket cache forgets the bucket once the update is over, so its
    /// next PUT uses the new level; other gateways' within the cache's TTL.
    pub async fn set_bucket_redundancy(
        &self,
        name: &str,
        level: RedundancyLevel,
    ) -> Result<BucketRecord, CatalogError> {
        self.update_bucket(name, |bucket| {
            let changed = bucket.default_redundancy != level;
            bucket.default_redundancy = level;
            changed
        })
        .await
    }

    /// Gives `access_key` (a key of any owner) `permission` on the bucket, replacing
    /// the grant it had; `None` revokes. The key must exist to be granted (a typo must
    /// not leave a grant waiting for whoever creates that key); revoking works for a
    /// deleted key too. Effective on this gateway at once, on others within the bucket
    /// cache's TTL.
    pub async fn set_grant(
        &self,
        name: &str,
        access_key: &str,
        permission: Option<GrantPermission>,
    ) -> Result<BucketRecord, CatalogError> {
        if permission.is_some() && self.catalog.credential(access_key).await?.is_none() {
            return Err(CatalogError::NoSuchCredential(access_key.to_string()));
        }
        self.update_bucket(name, |bucket| {
            permission::set_grant(bucket, access_key, permission)
        })
        .await
    }

    /// Replaces the bucket's tags (PutBucketTagging; an empty list is DeleteBucketTagging),
    /// already validated by the caller. A compare-and-set on the bucket record like the
    /// other bucket changes: one meta-raft write, so after a crash the bucket has either
    /// its old tags or the new ones, never a mix. Seen by this gateway at once, by
    /// others within the bucket cache's TTL.
    pub async fn set_bucket_tags(
        &self,
        name: &str,
        tags: Vec<BucketTag>,
    ) -> Result<BucketRecord, CatalogError> {
        self.update_bucket(name, |bucket| {
            let changed = bucket.tags != tags;
            bucket.tags = tags.clone();
            changed
        })
        .await
    }

    /// A compare-and-set of the bucket record with `change` (which says whether it
    /// changed anything; nothing changed writes nothing), retried a bounded number of
    /// times when something else changed the bucket meanwhile. A bucket marked
    /// `deleting` is not there. This gateway's bucket cache forgets the bucket after.
    async fn update_bucket(
        &self,
        name: &str,
        mut change: impl FnMut(&mut BucketRecord) -> bool,
    ) -> Result<BucketRecord, CatalogError> {
        let result = async {
            for _ in 0..BUCKET_UPDATE_ATTEMPTS_MAX {
                let bucket = self.catalog.existing_bucket(name).await?;
                let mut updated = bucket.record.clone();
                if !change(&mut updated) {
                    return Ok(updated);
                }
                let mut batch = Batch::default();
                batch
                    .require_version(keys::bucket(name), bucket.version)
                    .put(keys::bucket(name), encode(&updated));
                if let BatchOutcome::Applied { .. } = self.catalog.apply(batch).await? {
                    return Ok(updated);
                }
            }
            Err(CatalogError::Conflict(format!("bucket {name}")))
        }
        .await;
        self.catalog.forget_bucket(name);
        result
    }

    /// Deletes an empty bucket in steps so no object commit can slip in between the
    /// emptiness check and the delete: (1) mark it `deleting` (this changes its version,
    /// and every object commit is conditioned on the version it read of an active
    /// bucket), (2) check it holds no objects and no uploads, (3) delete it, conditioned
    /// on the marked version. Not empty, or the check failed: the mark is undone, so a
    /// failed DeleteBucket leaves the bucket as it was. A crash between (1) and (3)
    /// leaves the bucket marked: it answers NoSuchBucket until `DeleteBucket` is retried.
    ///
    /// This gateway's bucket cache forgets the bucket once the delete is over (deleted,
    /// refused or failed); other gateways' cached copies fail their commit's condition.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), CatalogError> {
        let result = self.mark_and_delete_bucket(name).await;
        self.catalog.forget_bucket(name);
        result
    }

    async fn mark_and_delete_bucket(&self, name: &str) -> Result<(), CatalogError> {
        let bucket = self.catalog.existing_bucket(name).await?;
        let mut marked = bucket.record.clone();
        marked.deleting = true;
        let mut mark = Batch::default();
        mark.require_version(keys::bucket(name), bucket.version)
            .put(keys::bucket(name), encode(&marked));
        let marked_version = match self.catalog.apply(mark).await? {
            BatchOutcome::Applied { version } => version,
            BatchOutcome::ConditionFailed { .. } => {
                return Err(CatalogError::Conflict(format!("bucket {name}")))
            }
        };
        let empty = match self.catalog.bucket_is_empty(name).await {
            Ok(empty) => empty,
            Err(error) => {
                self.unmark_bucket(&bucket.record, marked_version).await;
                return Err(error);
            }
        };
        let mut finish = Batch::default();
        finish.require_version(keys::bucket(name), marked_version);
        if empty {
            finish.delete(keys::bucket(name));
        } else {
            finish.put(keys::bucket(name), encode(&bucket.record));
        }
        match self.catalog.apply(finish).await? {
            BatchOutcome::Applied { .. } if empty => Ok(()),
            BatchOutcome::Applied { .. } => Err(CatalogError::BucketNotEmpty(name.into())),
            BatchOutcome::ConditionFailed { .. } => {
                Err(CatalogError::Conflict(format!("bucket {name}")))
            }
        }
    }

    /// Puts the bucket back as it was before the `deleting` mark (if the mark is still
    /// the one we set). Best effort: a bucket left marked is repaired by a retried
    /// DeleteBucket.
    async fn unmark_bucket(&self, original: &BucketRecord, marked_version: u64) {
        let mut batch = Batch::default();
        batch
            .require_version(keys::bucket(&original.name), marked_version)
            .put(keys::bucket(&original.name), encode(original));
        if let Err(error) = self.catalog.apply(batch).await {
            tracing::warn!(bucket = %original.name, %error, "could not undo a delete mark; a retried DeleteBucket will");
        }
    }

    /// Stores a credential made elsewhere (`shardlet dev` keeps its key in its data
    /// directory); an existing identical record is success, a different one an error.
    pub async fn ensure_credential(&self, record: &CredentialRecord) -> Result<(), CatalogError> {
        let conflict = || CatalogError::Conflict(format!("access key {}", record.access_key));
        if let Some(existing) = self.catalog.credential(&record.access_key).await? {
            return if existing.secret_key == record.secret_key {
                Ok(())
            } else {
                Err(conflict())
            };
        }
        let key = keys::credential(&record.access_key);
        let mut batch = Batch::default();
        batch.require_absent(key.clone()).put(key, encode(record));
        match self.catalog.apply(batch).await? {
            BatchOutcome::Applied { .. } => Ok(()),
            BatchOutcome::ConditionFailed { .. } => Err(conflict()),
        }
    }

    /// Creates a new access key + secret for `owner` and stores it.
    pub async fn create_credential(&self, owner: &str) -> Result<CredentialRecord, CatalogError> {
        let record = new_credential(owner);
        let key = keys::credential(&record.access_key);
        let mut batch = Batch::default();
        batch.require_absent(key.clone()).put(key, encode(&record));
        match self.catalog.apply(batch).await? {
            BatchOutcome::Applied { .. } => Ok(record),
            BatchOutcome::ConditionFailed { .. } => Err(CatalogError::Conflict(
                "access key (random collision)".into(),
            )),
        }
    }
}

impl Buckets {
    /// Deletes the S3 access key `access_key` (a leaked or retired key): every gateway
    /// refuses it once its credential cache entry expires (at most
    /// `CREDENTIAL_CACHE_TTL`, 10 s). Its owner's buckets and objects stay; grants that
    /// named it grant nothing any more. `None`: no such key.
    pub async fn delete_credential(
        &self,
        access_key: &str,
    ) -> Result<Option<CredentialRecord>, CatalogError> {
        let key = keys::credential(access_key);
        let Some(stored) = self.catalog.read::<CredentialRecord>(&key).await? else {
            return Ok(None);
        };
        let mut batch = Batch::default();
        batch
            .require_version(key.clone(), stored.version)
            .delete(key);
        match self.catalog.apply(batch).await? {
            BatchOutcome::Applied { .. } => Ok(Some(stored.record)),
            BatchOutcome::ConditionFailed { .. } => Err(CatalogError::Conflict(
                "the access key changed while it was being deleted; run the command again".into(),
            )),
        }
    }
}

/// A new random credential (not stored).
pub fn new_credential(owner: &str) -> CredentialRecord {
    CredentialRecord {
        access_key: random_text(ACCESS_KEY_ALPHABET, 20),
        secret_key: SecretKey(random_text(SECRET_KEY_ALPHABET, 40)),
        owner: owner.to_string(),
        created_unix_ms: unix_ms_now(),
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
