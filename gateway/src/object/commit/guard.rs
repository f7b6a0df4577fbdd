//! The uncommitted write: durable fragments that nothing references yet, and the guard
//! that gives them up unless a commit consumes it.

use std::sync::Arc;

use shardlet_core::ObjectId;
use shardlet_model::schema::{ShardletRecord, ShardletReference};

use super::error::CommitError;
use crate::object::gc::Collector;
use crate::object::upload_deadline::{RefusedAt, UploadClock};

/// What a finished stream produced: durable fragments, not yet visible anywhere.
#[derive(Debug)]
pub struct Written {
    pub object_id: ObjectId,
    pub intent_version: u64,
    pub size_bytes: u64,
    pub md5: [u8; 16],
    pub shardlets: Vec<ShardletRecord>,
    /// The upload's age against the cluster's upload deadline (started before its
    /// intent was written).
    pub clock: UploadClock,
}

impl Written {
    /// Refuses a write older than the upload deadline: checked before every metadata
    /// batch of its commit, so this gateway never publishes an upload the collectors
    /// may already be taking apart.
    pub(super) fn check_deadline(&self) -> Result<(), CommitError> {
        self.clock
            .check(RefusedAt::Commit)
            .map_err(CommitError::Deadline)
    }

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
    pub(super) fn record_items(&self) -> usize {
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

    /// Settles the write with the outcome of its commit: committed, or found already
    /// collected (nothing of ours is left to give up), it is done; any other failure
    /// gives it up before the caller answers, so a client's retry finds it marked.
    pub(super) async fn settle<T>(self, outcome: Result<T, CommitError>) -> Result<T, CommitError> {
        match outcome {
            Ok(_) | Err(CommitError::Abandoned) => {
                self.into_written();
            }
            Err(_) => self.abandon().await,
        }
        outcome
    }

    /// The write, for a commit that has just made it visible (or found its intent
    /// already collected): nothing is to be given up any more.
    pub(super) fn into_written(mut self) -> Written {
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
