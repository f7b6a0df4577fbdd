//! What every commit shares: the [`Commit`] handle, its errors and limits, the intent
//! that opens a write, shardlet records, and garbage intents.

use std::sync::Arc;

use shardlet_core::ObjectId;
use shardlet_model::schema::{
    encode, keys, IntentRecord, IntentState, ObjectRecord, ShardletRecord,
};
use shardlet_model::store::{Batch, BatchOutcome, BATCH_ITEMS_MAX};

use super::bucket::Buckets;
use super::error::CommitError;
use super::guard::Written;
use crate::object::catalog::Catalog;
use crate::object::gc::Collector;
use crate::object::unix_ms_now;

/// Commit retries when another writer changed the key in between (last writer wins).
pub const COMMIT_ATTEMPTS_MAX: usize = 8;
/// Shardlet records + index entries per metadata batch, leaving room for conditions.
pub const RECORD_BATCH_ITEMS_MAX: usize = BATCH_ITEMS_MAX - 8;

/// The gateway's metadata commits (see the module documentation).
pub struct Commit {
    pub(super) catalog: Catalog,
    pub(super) collector: Arc<Collector>,
    buckets: Buckets,
}

impl Commit {
    pub fn new(catalog: Catalog, collector: Arc<Collector>) -> Self {
        Self {
            buckets: Buckets::new(catalog.clone()),
            catalog,
            collector,
        }
    }

    /// Bucket and credential commits.
    pub fn buckets(&self) -> &Buckets {
        &self.buckets
    }

    pub fn collector(&self) -> &Arc<Collector> {
        &self.collector
    }

    /// Step 1: the `Uploading` intent that makes `object_id`'s fragments findable.
    /// Returns its version (every later batch of the write is conditioned on it).
    pub async fn open_intent(
        &self,
        bucket: &str,
        key: &str,
        object_id: ObjectId,
    ) -> Result<u64, CommitError> {
        let intent = IntentRecord {
            object_id,
            state: IntentState::Uploading,
            bucket: bucket.to_string(),
            key: key.to_string(),
            created_unix_ms: unix_ms_now(),
            object_ids: Vec::new(),
            records_complete: false,
        };
        let mut batch = Batch::default();
        batch
            .require_absent(keys::intent(object_id))
            .put(keys::intent(object_id), encode(&intent));
        match self.catalog.apply(batch).await? {
            BatchOutcome::Applied { version } => Ok(version),
            // 128 random bits collided: astronomically unlikely, but never overwrite.
            BatchOutcome::ConditionFailed { .. } => Err(CommitError::Contended { attempts: 1 }),
        }
    }

    /// Step 3: shardlet records and node index entries, in as many batches as needed,
    /// each conditioned on the intent still being ours. Invisible until the object (or
    /// part) record that references them is committed.
    pub async fn record_shardlets(&self, written: &Written) -> Result<(), CommitError> {
        let mut batch = Batch::default();
        batch.require_version(keys::intent(written.object_id), written.intent_version);
        for record in &written.shardlets {
            if batch.len() + 1 + record.fragments.len() > RECORD_BATCH_ITEMS_MAX {
                written.check_deadline()?;
                self.apply_record_batch(std::mem::take(&mut batch)).await?;
                batch.require_version(keys::intent(written.object_id), written.intent_version);
            }
            put_shardlet_record(&mut batch, record);
        }
        if batch.operations.is_empty() {
            return Ok(());
        }
        written.check_deadline()?;
        self.apply_record_batch(batch).await
    }

    async fn apply_record_batch(&self, batch: Batch) -> Result<(), CommitError> {
        match self.catalog.apply(batch).await? {
            BatchOutcome::Applied { .. } => Ok(()),
            BatchOutcome::ConditionFailed { .. } => Err(CommitError::Abandoned),
        }
    }

    /// Records the shardlets now unless they fit beside a commit batch's own items
    /// (every small object): returns whether the commit batch must carry them. Inline,
    /// the object costs one metadata write instead of two and stays all-or-nothing: a
    /// crash before the batch leaves only the intent, after it the complete object.
    pub(super) async fn records_inline_or_written(
        &self,
        written: &Written,
    ) -> Result<bool, CommitError> {
        // Room for the commit's own conditions and operations (3 + 2 + garbage intents).
        let inline = written.record_items() + 8 <= RECORD_BATCH_ITEMS_MAX;
        if !inline {
            self.record_shardlets(written).await?;
        }
        Ok(inline)
    }
}

/// A shardlet record and the index entries of its fragments on their nodes.
pub(super) fn put_shardlet_record(batch: &mut Batch, record: &ShardletRecord) {
    batch.put(keys::shardlet(record.id), encode(record));
    for location in &record.fragments {
        batch.put(
            keys::node_fragment(location.node, record.fragment_id(location)),
            Vec::new(),
        );
    }
}

pub(super) fn add_shardlet_records(batch: &mut Batch, written: &Written) {
    for record in &written.shardlets {
        put_shardlet_record(batch, record);
    }
}

/// The `Garbage` intent that makes a replaced or deleted object's data collectable.
pub(super) fn garbage_intent_for(old: &ObjectRecord) -> (Vec<u8>, Vec<u8>) {
    let mut ids: Vec<ObjectId> = old.shardlets.iter().map(|s| s.id.object).collect();
    ids.push(old.id);
    ids.sort();
    ids.dedup();
    garbage_intent(old.id, ids, &old.bucket, &old.key)
}

/// A `Garbage` intent under `intent_id` covering `object_ids`.
pub(super) fn garbage_intent(
    intent_id: ObjectId,
    object_ids: Vec<ObjectId>,
    bucket: &str,
    key: &str,
) -> (Vec<u8>, Vec<u8>) {
    let intent = IntentRecord {
        object_id: intent_id,
        state: IntentState::Garbage,
        bucket: bucket.to_string(),
        key: key.to_string(),
        created_unix_ms: unix_ms_now(),
        object_ids,
        records_complete: true,
    };
    (keys::intent(intent_id), encode(&intent))
}
