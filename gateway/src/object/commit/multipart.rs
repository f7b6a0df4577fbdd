//! Multipart uploads: each part is written through the write path under its own object
//! id (so a re-uploaded part never collides with the one it replaces) and committed as
//! a part record; CompleteMultipartUpload then publishes ONE object record that
//! references the chosen parts' shardlets — no data is copied.
//!
//! **Completion, abort and concurrent parts.** A part commit is conditioned on the
//! version of the upload record it read. Complete and Abort first mark the upload
//! `closing` (which changes that version), and only then read the parts: a part
//! committed before the mark is seen; one that tries after it fails its condition and
//! is refused (`UploadClosing`). So the parts a completion publishes cannot be replaced
//! — and their data collected — between its read and its commit, and an abort turns
//! every part into garbage, none left behind; however many parts there are (a
//! condition per part would not fit a batch beyond ~1,000 parts).
//!
//! Crash windows: parts not chosen by Complete, replaced parts and aborted uploads
//! become `Garbage` intents in the batch that unreferences them. Part records are
//! deleted after Complete / Abort in follow-up batches; a crash in between leaves
//! invisible part records behind (a few hundred bytes each), never data. A crash after
//! the `closing` mark leaves the upload marked: parts are refused, Complete (retried)
//! and Abort work.

use std::collections::BTreeMap;

use shardlet_core::ObjectId;
use shardlet_model::schema::{
    encode, keys, MultipartUploadRecord, ObjectRecord, PartRecord, StoredChecksums,
};
use shardlet_model::store::{Batch, BatchOutcome, SCAN_LIMIT_MAX};
use shardlet_model::Stored;

use super::error::CommitError;
use super::guard::{Uncommitted, Written};
use super::shared::{
    garbage_intent, garbage_intent_for, Commit, COMMIT_ATTEMPTS_MAX, RECORD_BATCH_ITEMS_MAX,
};
use crate::object::{etag, unix_ms_now};

/// Pages of part records one upload may have (10,000 parts at most, in pages of
/// [`SCAN_LIMIT_MAX`]), with room to spare.
const PART_PAGES_MAX: usize = 16;

/// What a completion publishes, decided by the caller from the stored parts.
pub struct Completion {
    /// The object record, with its shardlets (the chosen parts', in order).
    pub record: ObjectRecord,
    /// The part numbers it uses; every other stored part becomes garbage.
    pub chosen: Vec<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompleteError<E> {
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// The caller refused the stored parts (its own reason); the mark was taken back.
    #[error("the part list was refused")]
    Refused(E),
}

impl Commit {
    /// Creates a multipart upload in a bucket that still is the version the caller read.
    pub async fn create_upload(
        &self,
        bucket_version: u64,
        record: &MultipartUploadRecord,
    ) -> Result<(), CommitError> {
        let key = keys::upload(&record.bucket, &record.key, &record.upload_id);
        let mut batch = Batch::default();
        batch
            .require_version(keys::bucket(&record.bucket), bucket_version)
            .require_absent(key.clone())
            .put(key, encode(record));
        match self.catalog.apply(batch).await? {
            BatchOutcome::Applied { .. } => Ok(()),
            BatchOutcome::ConditionFailed { .. } => Err(CommitError::Contended { attempts: 1 }),
        }
    }

    /// Commits a written part: its shardlet records, then the part record and the
    /// intent's deletion in one batch conditioned on the intent, the upload's version
    /// and the part's current version. A replaced part becomes garbage in that batch.
    pub async fn put_part(
        &self,
        write: Uncommitted,
        upload: &Stored<MultipartUploadRecord>,
        number: u16,
        checksums: StoredChecksums,
    ) -> Result<PartRecord, CommitError> {
        let outcome = self
            .try_put_part(write.written(), upload, number, checksums)
            .await;
        write.settle(outcome).await
    }

    async fn try_put_part(
        &self,
        written: &Written,
        upload: &Stored<MultipartUploadRecord>,
        number: u16,
        checksums: StoredChecksums,
    ) -> Result<PartRecord, CommitError> {
        // Marked at the version the caller read: the condition below would hold.
        if upload.record.closing {
            return Err(CommitError::UploadClosing);
        }
        self.record_shardlets(written).await?;
        let upload_id = &upload.record.upload_id;
        let record = PartRecord {
            upload_id: upload_id.clone(),
            part_number: number,
            size_bytes: written.size_bytes,
            etag: etag::single_part(written.md5),
            shardlets: written.references(),
            uploaded_unix_ms: unix_ms_now(),
            part_object_id: written.object_id,
            checksums,
        };
        let upload_key = keys::upload(&upload.record.bucket, &upload.record.key, upload_id);
        let part_key = keys::part(upload_id, number);
        let intent_key = keys::intent(written.object_id);
        let mut upload_version = upload.version;
        for _ in 0..COMMIT_ATTEMPTS_MAX {
            written.check_deadline()?;
            let current = self.catalog.part(upload_id, number).await?;
            let mut batch = Batch::default();
            batch
                .require_version(intent_key.clone(), written.intent_version)
                .require_version(upload_key.clone(), upload_version)
                .require_version(
                    part_key.clone(),
                    current.as_ref().map_or(0, |part| part.version),
                )
                .put(part_key.clone(), encode(&record))
                .delete(intent_key.clone());
            if let Some(old) = &current {
                let (key, value) = garbage_intent(
                    ObjectId::random(),
                    vec![old.record.part_object_id],
                    &upload.record.bucket,
                    &upload.record.key,
                );
                batch.put(key, value);
            }
            match self.catalog.apply(batch).await? {
                BatchOutcome::Applied { .. } => {
                    if current.is_some() {
                        // Collected by the sweep: its intent id is random, not the part's.
                        tracing::debug!(part = number, "replaced part queued for collection");
                    }
                    return Ok(record);
                }
                BatchOutcome::ConditionFailed { key, .. } if key.as_slice() == upload_key => {
                    // Completed, aborted, or being completed since it was read: refuse.
                    // Only a completion that was refused (mark taken back) lets the part
                    // go on, at the upload's new version.
                    match self
                        .catalog
                        .upload(&upload.record.bucket, &upload.record.key, upload_id)
                        .await?
                    {
                        None => return Err(CommitError::NoSuchUpload),
                        Some(now) if now.record.closing => return Err(CommitError::UploadClosing),
                        Some(now) => upload_version = now.version,
                    }
                }
                BatchOutcome::ConditionFailed { key, .. } if key.as_slice() == intent_key => {
                    return Err(CommitError::Abandoned);
                }
                BatchOutcome::ConditionFailed { .. } => {}
            }
        }
        Err(CommitError::Contended {
            attempts: COMMIT_ATTEMPTS_MAX,
        })
    }

    /// Every part record of an upload, by part number.
    pub async fn all_parts(
        &self,
        upload_id: &str,
    ) -> Result<BTreeMap<u16, PartRecord>, CommitError> {
        Ok(self
            .all_parts_versioned(upload_id)
            .await?
            .into_iter()
            .map(|(number, part)| (number, part.record))
            .collect())
    }

    /// Every part record of an upload with its version, by part number.
    async fn all_parts_versioned(
        &self,
        upload_id: &str,
    ) -> Result<BTreeMap<u16, Stored<PartRecord>>, CommitError> {
        let mut parts = BTreeMap::new();
        let mut after = 0u16;
        for _ in 0..PART_PAGES_MAX {
            let (page, more) = self.catalog.parts(upload_id, after, SCAN_LIMIT_MAX).await?;
            let Some(last) = page.last().map(|part| part.record.part_number) else {
                break;
            };
            for part in page {
                parts.insert(part.record.part_number, part);
            }
            if !more {
                break;
            }
            after = last;
        }
        Ok(parts)
    }

    /// CompleteMultipartUpload: marks the upload `closing`, reads its parts, lets
    /// `choose` validate the request against them and build the object record (S3's
    /// rules live with the caller), then commits: the object record replaces the key
    /// (conditions: the marked upload, the bucket, the key's version), the upload is
    /// deleted, a replaced object and the unchosen parts become garbage. `choose`
    /// refusing takes the mark back.
    pub async fn complete_upload<E>(
        &self,
        upload: Stored<MultipartUploadRecord>,
        choose: impl FnOnce(&BTreeMap<u16, PartRecord>) -> Result<Completion, E>,
    ) -> Result<ObjectRecord, CompleteError<E>> {
        let marked = self.mark_closing(upload).await?;
        let versioned = self.all_parts_versioned(&marked.record.upload_id).await?;
        let stored: BTreeMap<u16, PartRecord> = versioned
            .iter()
            .map(|(number, part)| (*number, part.record.clone()))
            .collect();
        let completion = match choose(&stored) {
            Ok(completion) => completion,
            Err(refusal) => {
                self.unmark_closing(&marked).await;
                return Err(CompleteError::Refused(refusal));
            }
        };
        let upload = &marked.record;
        let record = completion.record;
        let unchosen: Vec<ObjectId> = stored
            .values()
            .filter(|part| !completion.chosen.contains(&part.part_number))
            .map(|part| part.part_object_id)
            .collect();
        let upload_key = keys::upload(&upload.bucket, &upload.key, &upload.upload_id);
        let object_key = keys::object(&upload.bucket, &upload.key);
        for attempt in 0..COMMIT_ATTEMPTS_MAX {
            // Conditioned on the bucket's version, so the first attempt may take it
            // from the cache (the caller just read it fresh); a retry reads it fresh.
            let bucket = if attempt == 0 {
                self.catalog.existing_bucket_recent(&upload.bucket).await
            } else {
                self.catalog.existing_bucket(&upload.bucket).await
            }
            .map_err(CommitError::from)?;
            let current = self
                .catalog
                .object(&upload.bucket, &upload.key)
                .await
                .map_err(CommitError::from)?;
            let mut batch = Batch::default();
            batch
                .require_version(upload_key.clone(), marked.version)
                .require_version(keys::bucket(&upload.bucket), bucket.version)
                .require_version(
                    object_key.clone(),
                    current.as_ref().map_or(0, |stored| stored.version),
                )
                .put(object_key.clone(), encode(&record))
                .delete(upload_key.clone());
            // The closing mark already stops UploadPart from committing (it conditions
            // on the upload's version); conditioning on each chosen part's version too
            // means the object can only ever name the parts that were validated.
            for number in &completion.chosen {
                if let Some(part) = versioned.get(number) {
                    batch.require_version(keys::part(&upload.upload_id, *number), part.version);
                }
            }
            if let Some(old) = &current {
                let (key, value) = garbage_intent_for(&old.record);
                batch.put(key, value);
            }
            if !unchosen.is_empty() {
                let (key, value) = garbage_intent(
                    ObjectId::random(),
                    unchosen.clone(),
                    &upload.bucket,
                    &upload.key,
                );
                batch.put(key, value);
            }
            match self.catalog.apply(batch).await.map_err(CommitError::from)? {
                BatchOutcome::Applied { .. } => {
                    if let Some(old) = current {
                        self.collector.collect_soon(old.record.id);
                    }
                    self.forget_parts(&upload.upload_id, stored.keys().copied().collect())
                        .await;
                    return Ok(record);
                }
                BatchOutcome::ConditionFailed { key, .. } if key.as_slice() == upload_key => {
                    // Another Complete or an Abort won.
                    return Err(CommitError::NoSuchUpload.into());
                }
                BatchOutcome::ConditionFailed { .. } => {}
            }
        }
        Err(CommitError::Contended {
            attempts: COMMIT_ATTEMPTS_MAX,
        }
        .into())
    }

    /// Sets `closing` (compare-and-set on the upload's version); an upload already
    /// marked (a retried or concurrent Complete or Abort) is taken as it is.
    async fn mark_closing(
        &self,
        mut upload: Stored<MultipartUploadRecord>,
    ) -> Result<Stored<MultipartUploadRecord>, CommitError> {
        for _ in 0..COMMIT_ATTEMPTS_MAX {
            if upload.record.closing {
                return Ok(upload);
            }
            if let Some(marked) = self.set_closing(&upload, true).await? {
                return Ok(marked);
            }
            upload = self
                .catalog
                .upload(
                    &upload.record.bucket,
                    &upload.record.key,
                    &upload.record.upload_id,
                )
                .await?
                .ok_or(CommitError::NoSuchUpload)?;
        }
        Err(CommitError::Contended {
            attempts: COMMIT_ATTEMPTS_MAX,
        })
    }

    /// Takes a refused completion's mark back, if nothing changed the upload since.
    /// Best effort: left marked, the upload still completes or aborts.
    async fn unmark_closing(&self, marked: &Stored<MultipartUploadRecord>) {
        if let Err(error) = self.set_closing(marked, false).await {
            tracing::warn!(upload_id = %marked.record.upload_id, %error, "could not take back a completion mark");
        }
    }

    /// Writes `upload` with `closing` set to `closing`, if it is still at the version it
    /// was read at; `None` when it changed since.
    async fn set_closing(
        &self,
        upload: &Stored<MultipartUploadRecord>,
        closing: bool,
    ) -> Result<Option<Stored<MultipartUploadRecord>>, CommitError> {
        let mut record = upload.record.clone();
        record.closing = closing;
        let key = keys::upload(&record.bucket, &record.key, &record.upload_id);
        let mut batch = Batch::default();
        batch
            .require_version(key.clone(), upload.version)
            .put(key, encode(&record));
        Ok(match self.catalog.apply(batch).await? {
            BatchOutcome::Applied { version } => Some(Stored { record, version }),
            BatchOutcome::ConditionFailed { .. } => None,
        })
    }

    /// AbortMultipartUpload: marks the upload `closing`, then deletes it; every stored
    /// part becomes garbage in the same batch.
    pub async fn abort_upload(
        &self,
        mut upload: Stored<MultipartUploadRecord>,
    ) -> Result<(), CommitError> {
        for _ in 0..COMMIT_ATTEMPTS_MAX {
            let marked = self.mark_closing(upload).await?;
            let record = &marked.record;
            let stored = self.all_parts(&record.upload_id).await?;
            let upload_key = keys::upload(&record.bucket, &record.key, &record.upload_id);
            let mut batch = Batch::default();
            batch
                .require_version(upload_key.clone(), marked.version)
                .delete(upload_key);
            if !stored.is_empty() {
                let (key, value) = garbage_intent(
                    ObjectId::random(),
                    stored.values().map(|part| part.part_object_id).collect(),
                    &record.bucket,
                    &record.key,
                );
                batch.put(key, value);
            }
            match self.catalog.apply(batch).await? {
                BatchOutcome::Applied { .. } => {
                    self.forget_parts(&record.upload_id, stored.keys().copied().collect())
                        .await;
                    return Ok(());
                }
                // Changed since marked (a refused completion took its mark back) or
                // gone (a concurrent Complete or Abort won).
                BatchOutcome::ConditionFailed { .. } => {
                    upload = self
                        .catalog
                        .upload(&record.bucket, &record.key, &record.upload_id)
                        .await?
                        .ok_or(CommitError::NoSuchUpload)?;
                }
            }
        }
        Err(CommitError::Contended {
            attempts: COMMIT_ATTEMPTS_MAX,
        })
    }

    /// Deletes part records in batches after Complete/Abort (best effort; see the
    /// module documentation).
    async fn forget_parts(&self, upload_id: &str, numbers: Vec<u16>) {
        for chunk in numbers.chunks(RECORD_BATCH_ITEMS_MAX) {
            let mut batch = Batch::default();
            for number in chunk {
                batch.delete(keys::part(upload_id, *number));
            }
            if let Err(error) = self.catalog.apply(batch).await {
                tracing::warn!(%upload_id, %error, "part records left behind");
                return;
            }
        }
    }
}
