//! Where a write becomes visible: every compare-and-set batch an S3 request makes.
//!
//! The protocol, for every object write (PutObject, CopyObject, UploadPart; see
//! `write_path.rs` for the data half):
//!
//! 1. **Intent** ([`Commit::open_intent`]): before any fragment exists, an `Uploading`
//!    intent `i/{object id}` is created (condition: absent). From here on a crash
//!    leaves something the collector finds (`gc.rs`).
//! 2. **Fragments** (write path): every fragment is written and durable on its node.
//!    The result is an [`Uncommitted`] write: a guard that, unless a commit consumes
//!    it, turns its intent into garbage when dropped, so no error path can forget to
//!    give an upload up.
//! 3. **Records** ([`Commit::record_shardlets`], only when they do not fit in the
//!    commit batch): shardlet records and node index entries, each batch conditioned
//!    on the intent being untouched (a collector that claimed it wins).
//! 4. **Commit**: ONE batch makes the write visible and deletes the intent,
//!    conditioned on the intent, on what the write replaces (the key's version, the
//!    bucket's version, the upload's version) and on the request's own preconditions.
//!    What it replaces becomes a `Garbage` intent in that same batch:
//!    - PutObject and CopyObject: [`Commit::put_object`] (`object.rs`);
//!    - UploadPart: [`Commit::put_part`] (`multipart.rs`);
//!    - CompleteMultipartUpload: [`Commit::complete_upload`] (`multipart.rs`), which
//!      first marks the upload `closing` so no part can change under it (Abort too);
//!    - DeleteObject and DeleteObjects: [`Commit::delete_object`] (`object.rs`).
//!
//! Crash before the commit batch: the object was never visible; its fragments and
//! records are collected with the intent. Crash after it: the write is complete and
//! visible; what it replaced is collected by the next sweep.
//!
//! Buckets and credentials change here too ([`Buckets`], `bucket.rs`). The only other metadata
//! writers of the gateway are the collector (`gc.rs`: deleting what nothing
//! references) and the heat flusher (`heat.rs`: access counters).

mod bucket;
mod multipart;
mod object;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use shardlet_core::ObjectId;
use shardlet_model::schema::{
    encode, keys, IntentRecord, IntentState, ObjectRecord, ShardletRecord, ShardletReference,
};
use shardlet_model::store::{Batch, BatchOutcome, BATCH_ITEMS_MAX};

pub use self::bucket::{new_credential, Buckets};
pub use self::multipart::{CompleteError, Completion};
pub use self::object::CommitCondition;
use crate::object::catalog::{Catalog, CatalogError};
use crate::object::gc::Collector;
use crate::object::unix_ms_now;

/// Commit retries when another writer changed the key in between (last writer wins).
pub const COMMIT_ATTEMPTS_MAX: usize = 8;
/// Shardlet records + index entries per metadata batch, leaving room for conditions.
pub const RECORD_BATCH_ITEMS_MAX: usize = BATCH_ITEMS_MAX - 8;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("the upload was abandoned (its intent was collected) before it could commit")]
    Abandoned,
    #[error("the write lost {attempts} commit races in a row")]
    Contended { attempts: usize },
    #[error("the key's current state does not satisfy the request's condition")]
    PreconditionFailed,
    #[error("the multipart upload does not exist")]
    NoSuchUpload,
    #[error("the multipart upload is being completed or aborted")]
    UploadClosing,
}

/// What a finished stream produced: durable fragments, not yet visible anywhere.
#[derive(Debug)]
pub struct Written {
    pub object_id: ObjectId,
    pub intent_version: u64,
    pub size_bytes: u64,
    pub md5: [u8; 16],
    pub shardlets: Vec<ShardletRecord>,
}

impl Written {
    pub fn references(&self) -> Vec<ShardletReference> {
        self.shardlets
            .iter()
            .map(|record| ShardletReference {
                id: record.id,
                size_bytes: record.size_bytes,
            })
            .collect()
    }

    /// Metadata items its shardlet records and node index entries take in a batch.
    fn record_items(&self) -> usize {
        self.shardlets
            .iter()
            .map(|shardlet| 1 + shardlet.fragments.len())
            .sum()
    }
}

/// A write whose fragments are durable but which nothing references yet. Only a commit
/// of this module consumes it; dropped any other way (an error, a failed checksum, a
/// panic, a client that went away) it gives the upload up: its intent becomes
/// `Garbage` (if it is still the one this write created) and is collected.
#[must_use = "an uncommitted write is given up when dropped"]
pub struct Uncommitted {
    written: Option<Written>,
    collector: Arc<Collector>,
}

impl Uncommitted {
    pub(crate) fn new(written: Written, collector: Arc<Collector>) -> Self {
        Self {
            written: Some(written),
            collector,
        }
    }

    /// What the stream produced, once every fragment is durable.
    pub(crate) fn set_data(
        &mut self,
        size_bytes: u64,
        md5: [u8; 16],
        shardlets: Vec<ShardletRecord>,
    ) {
        if let Some(written) = self.written.as_mut() {
            written.size_bytes = size_bytes;
            written.md5 = md5;
            written.shardlets = shardlets;
        }
    }

    pub fn written(&self) -> &Written {
        // Only `into_written` and `Drop` take it, and both consume the guard.
        self.written
            .as_ref()
            .expect("an uncommitted write holds its data until consumed")
    }

    /// Gives the write up now and waits until its intent is marked (tests and callers
    /// that want the mark done before they answer).
    pub async fn abandon(mut self) {
        if let Some(written) = self.written.take() {
            abandon(&self.collector, written.object_id, written.intent_version).await;
        }
    }

    /// The write, for a commit that has just made it visible (or found its intent
    /// already collected): nothing is to be given up any more.
    fn into_written(mut self) -> Written {
        self.written
            .take()
            .expect("an uncommitted write holds its data until consumed")
    }
}

impl std::fmt::Debug for Uncommitted {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Uncommitted")
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl Drop for Uncommitted {
    fn drop(&mut self) {
        let Some(written) = self.written.take() else {
            return;
        };
        let collector = self.collector.clone();
        // Drop cannot wait; the mark runs as a task. Without a runtime (process
        // shutting down) the intent stays `Uploading` and the timeout sweep collects it.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    abandon(&collector, written.object_id, written.intent_version).await;
                });
            }
            Err(_) => tracing::warn!(
                object_id = %written.object_id,
                "uncommitted write dropped without a runtime; the sweep will collect it"
            ),
        }
    }
}

/// Marks an upload's intent as garbage (if it is still at `intent_version`) and asks
/// for its collection. Best effort: a failure leaves the intent to the timeout sweep.
async fn abandon(collector: &Collector, object_id: ObjectId, intent_version: u64) {
    if let Err(error) = collector.mark_garbage(object_id, intent_version).await {
        tracing::warn!(%object_id, %error, "could not mark an abandoned upload; the sweep will");
        return;
    }
    collector.collect_soon(object_id);
}

/// The gateway's metadata commits (see the module documentation).
pub struct Commit {
    catalog: Catalog,
    collector: Arc<Collector>,
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
                self.apply_record_batch(std::mem::take(&mut batch)).await?;
                batch.require_version(keys::intent(written.object_id), written.intent_version);
            }
            put_shardlet_record(&mut batch, record);
        }
        if batch.operations.is_empty() {
            return Ok(());
        }
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
    async fn records_inline_or_written(&self, written: &Written) -> Result<bool, CommitError> {
        // Room for the commit's own conditions and operations (3 + 2 + garbage intents).
        let inline = written.record_items() + 8 <= RECORD_BATCH_ITEMS_MAX;
        if !inline {
            self.record_shardlets(written).await?;
        }
        Ok(inline)
    }
}

/// A shardlet record and the index entries of its fragments on their nodes.
fn put_shardlet_record(batch: &mut Batch, record: &ShardletRecord) {
    batch.put(keys::shardlet(record.id), encode(record));
    for location in &record.fragments {
        batch.put(
            keys::node_fragment(location.node, record.fragment_id(location)),
            Vec::new(),
        );
    }
}

fn add_shardlet_records(batch: &mut Batch, written: &Written) {
    for record in &written.shardlets {
        put_shardlet_record(batch, record);
    }
}

/// The `Garbage` intent that makes a replaced or deleted object's data collectable.
fn garbage_intent_for(old: &ObjectRecord) -> (Vec<u8>, Vec<u8>) {
    let mut ids: Vec<ObjectId> = old.shardlets.iter().map(|s| s.id.object).collect();
    ids.push(old.id);
    ids.sort();
    ids.dedup();
    garbage_intent(old.id, ids, &old.bucket, &old.key)
}

/// A `Garbage` intent under `intent_id` covering `object_ids`.
fn garbage_intent(
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
