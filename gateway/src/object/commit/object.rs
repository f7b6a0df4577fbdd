//! PutObject / CopyObject and DeleteObject(s): the commits of whole objects.

use shardlet_model::schema::{encode, keys, BucketRecord, ObjectRecord};
use shardlet_model::store::{Batch, BatchOutcome};
use shardlet_model::Stored;

use super::error::CommitError;
use super::guard::{Uncommitted, Written};
use super::shared::{add_shardlet_records, garbage_intent_for, Commit, COMMIT_ATTEMPTS_MAX};
use crate::object::etag;

/// A conditional write (`If-None-Match: *` / `If-Match: etag` on PUT), checked in the
/// commit batch itself, so it holds at the instant the object becomes visible.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CommitCondition {
    #[default]
    Always,
    /// The key must not exist.
    Absent,
    /// The key must exist with this (bare) ETag.
    EtagMatches(String),
}

impl CommitCondition {
    fn holds(&self, current: Option<&ObjectRecord>) -> bool {
        match (self, current) {
            (CommitCondition::Always, _) => true,
            (CommitCondition::Absent, current) => current.is_none(),
            (CommitCondition::EtagMatches(wanted), Some(current)) => {
                etag::bare(&current.etag) == wanted
            }
            (CommitCondition::EtagMatches(_), None) => false,
        }
    }
}

impl Commit {
    /// Makes a single-request object (PutObject, CopyObject) visible under its key; the
    /// last writer wins. `record.shardlets` is filled from the write. Returns the
    /// committed record.
    ///
    /// `known_bucket` is the bucket as the caller already read it (possibly from the
    /// bucket cache): the first attempt is conditioned on that version instead of
    /// reading it again; if the bucket changed since, the condition fails and the next
    /// attempt re-reads it fresh (answering NoSuchBucket if it is going away).
    ///
    /// The batch: conditions on the intent, the bucket and the key's current version;
    /// puts the object record (and, for small objects, its shardlet records), deletes
    /// the intent, and turns a replaced version into a `Garbage` intent.
    pub async fn put_object(
        &self,
        write: Uncommitted,
        record: ObjectRecord,
        condition: CommitCondition,
        known_bucket: Option<Stored<BucketRecord>>,
    ) -> Result<ObjectRecord, CommitError> {
        let outcome = self
            .try_put_object(write.written(), record, condition, known_bucket)
            .await;
        write.settle(outcome).await
    }

    async fn try_put_object(
        &self,
        written: &Written,
        mut record: ObjectRecord,
        condition: CommitCondition,
        known_bucket: Option<Stored<BucketRecord>>,
    ) -> Result<ObjectRecord, CommitError> {
        let records_inline = self.records_inline_or_written(written).await?;
        record.shardlets = written.references();
        let object_key = keys::object(&record.bucket, &record.key);
        let intent_key = keys::intent(written.object_id);
        let bucket_key = keys::bucket(&record.bucket);
        let mut known_bucket = known_bucket;
        for attempt in 1..=COMMIT_ATTEMPTS_MAX {
            // Before every attempt: reads and lost races take time too.
            written.check_deadline()?;
            let bucket = match known_bucket.take() {
                Some(bucket) => bucket,
                // Always fresh, never the bucket cache: the caller's copy may have come
                // from it, and this read is what corrects (and refreshes) a stale one.
                None => self.catalog.existing_bucket(&record.bucket).await?,
            };
            let current = self.catalog.object(&record.bucket, &record.key).await?;
            if !condition.holds(current.as_ref().map(|stored| &stored.record)) {
                return Err(CommitError::PreconditionFailed);
            }
            let mut batch = Batch::default();
            batch
                .require_version(intent_key.clone(), written.intent_version)
                .require_version(bucket_key.clone(), bucket.version)
                .require_version(
                    object_key.clone(),
                    current.as_ref().map_or(0, |stored| stored.version),
                )
                .put(object_key.clone(), encode(&record))
                .delete(intent_key.clone());
            if records_inline {
                add_shardlet_records(&mut batch, written);
            }
            let replaced = current.map(|stored| stored.record);
            if let Some(old) = &replaced {
                let (key, value) = garbage_intent_for(old);
                batch.put(key, value);
            }
            match self.catalog.apply(batch).await? {
                BatchOutcome::Applied { .. } => {
                    if let Some(old) = replaced {
                        self.collector.collect_soon(old.id);
                    }
                    return Ok(record);
                }
                BatchOutcome::ConditionFailed { key, .. } if key.as_slice() == intent_key => {
                    return Err(CommitError::Abandoned);
                }
                BatchOutcome::ConditionFailed { key, .. } if key.as_slice() == bucket_key => {
                    // The bucket changed since it was read (its settings, or a delete
                    // marking it): the next attempt re-reads it.
                    tracing::debug!(attempt, bucket = %record.bucket, "bucket changed since it was read; retrying");
                }
                BatchOutcome::ConditionFailed { .. } => {
                    tracing::debug!(attempt, key = %record.key, "commit raced another writer; retrying");
                }
            }
        }
        Err(CommitError::Contended {
            attempts: COMMIT_ATTEMPTS_MAX,
        })
    }

    /// Removes a key (absent is success, as in S3). The removed version's data becomes
    /// a `Garbage` intent in the same batch and is collected right after.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), CommitError> {
        let object_key = keys::object(bucket, key);
        for _ in 0..COMMIT_ATTEMPTS_MAX {
            let Some(current) = self.catalog.object(bucket, key).await? else {
                return Ok(());
            };
            let (intent_key, intent) = garbage_intent_for(&current.record);
            let mut batch = Batch::default();
            batch
                .require_version(object_key.clone(), current.version)
                .delete(object_key.clone())
                .put(intent_key, intent);
            if let BatchOutcome::Applied { .. } = self.catalog.apply(batch).await? {
                self.collector.collect_soon(current.record.id);
                return Ok(());
            }
        }
        Err(CommitError::Contended {
            attempts: COMMIT_ATTEMPTS_MAX,
        })
    }
}
