//! Garbage collection of fragments nobody references: abandoned or failed uploads,
//! overwritten and deleted objects, replaced and aborted multipart parts.
//!
//! Everything starts from an intent record (`i/{object id}`):
//! - `Uploading` intents are written before an upload's first fragment and deleted in
//!   its commit batch. One older than [`CollectorConfig::upload_timeout`] (default one
//!   hour, longer than any upload of the 5 GiB single-PUT limit at a sane speed) is
//!   abandoned.
//! - `Garbage` intents are written in the same batch that unreferences data (overwrite,
//!   delete, abort), or by an upload that failed; they are collected at once.
//!
//! Collecting one intent, in an order where a crash at any step is simply redone by the
//! next sweep:
//! 1. an expired `Uploading` intent is first turned into `Garbage` with a version
//!    condition, so an upload still alive fails its commit instead of publishing
//!    fragments that are being deleted;
//! 2. for every shardlet record named after the intent's object ids: delete its
//!    fragments on their nodes, then (one batch) the record and its node index entries;
//! 3. for uploads that may have written fragments before recording them
//!    (`records_complete == false`): list every node for fragments named after the id
//!    and delete them;
//! 4. delete the intent (version condition: only the one we collected).

use std::sync::Arc;
use std::time::Duration;

use shardlet_core::ObjectId;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::object::catalog::{Catalog, CatalogError, Stored};
use crate::object::fragments::{FragmentError, FragmentStore};
use crate::object::topology_source::TopologySource;
use crate::object::unix_ms_now;
use shardlet_model::schema::{encode, keys, IntentRecord, IntentState, ShardletRecord};
use shardlet_model::store::{Batch, BatchOutcome, SCAN_LIMIT_MAX};

/// Intents waiting for immediate collection; beyond this they wait for the sweep.
pub const COLLECT_QUEUE_MAX: usize = 1024;
/// Intents looked at per sweep.
pub const INTENTS_PER_SWEEP_MAX: usize = 256;
/// Fragments listed per node per request while looking for unrecorded fragments.
pub const FRAGMENTS_PER_LIST_MAX: usize = 1000;
/// List-and-delete rounds per node per object id (bounds one collection).
pub const LIST_ROUNDS_MAX: usize = 64;

#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub upload_timeout: Duration,
    pub sweep_interval: Duration,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            upload_timeout: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("storage node: {0}")]
    Fragment(#[from] FragmentError),
    #[error("the intent changed while being collected")]
    Raced,
}

pub struct Collector {
    catalog: Catalog,
    fragments: Arc<dyn FragmentStore>,
    topology: Arc<TopologySource>,
    metrics: Arc<Metrics>,
    config: CollectorConfig,
    queue: mpsc::Sender<ObjectId>,
    receiver: std::sync::Mutex<Option<mpsc::Receiver<ObjectId>>>,
}

impl Collector {
    pub fn new(
        catalog: Catalog,
        fragments: Arc<dyn FragmentStore>,
        topology: Arc<TopologySource>,
        metrics: Arc<Metrics>,
        config: CollectorConfig,
    ) -> Self {
        let (queue, receiver) = mpsc::channel(COLLECT_QUEUE_MAX);
        Self {
            catalog,
            fragments,
            topology,
            metrics,
            config,
            queue,
            receiver: std::sync::Mutex::new(Some(receiver)),
        }
    }

    /// Asks for `object_id`'s intent to be collected soon; never blocks. A full queue
    /// leaves it to the periodic sweep.
    pub fn collect_soon(&self, object_id: ObjectId) {
        if self.queue.try_send(object_id).is_err() {
            tracing::debug!(%object_id, "collect queue full; the sweep will get it");
        }
    }

    /// Turns our own `Uploading` intent into `Garbage` (if it is still at the version
    /// we wrote).
    pub async fn mark_garbage(
        &self,
        object_id: ObjectId,
        version: u64,
    ) -> Result<(), CollectError> {
        let Some(stored) = self
            .catalog
            .read::<IntentRecord>(&keys::intent(object_id))
            .await?
        else {
            return Ok(());
        };
        if stored.version != version {
            return Err(CollectError::Raced);
        }
        self.mark(stored).await.map(|_| ())
    }

    async fn mark(
        &self,
        stored: Stored<IntentRecord>,
    ) -> Result<Stored<IntentRecord>, CollectError> {
        let mut record = stored.record;
        record.state = IntentState::Garbage;
        let key = keys::intent(record.object_id);
        let mut batch = Batch::default();
        batch
            .require_version(key.clone(), stored.version)
            .put(key, encode(&record));
        match self.catalog.apply(batch).await? {
            BatchOutcome::Applied { version } => Ok(Stored { record, version }),
            BatchOutcome::ConditionFailed { .. } => Err(CollectError::Raced),
        }
    }

    /// Collects one intent if it is garbage or an expired upload; otherwise nothing.
    pub async fn collect(&self, object_id: ObjectId) -> Result<bool, CollectError> {
        let Some(mut stored) = self
            .catalog
            .read::<IntentRecord>(&keys::intent(object_id))
            .await?
        else {
            return Ok(false);
        };
        let state = stored.record.state;
        if state == IntentState::Uploading {
            let age_ms = unix_ms_now().saturating_sub(stored.record.created_unix_ms);
            if u128::from(age_ms) < self.config.upload_timeout.as_millis() {
                return Ok(false);
            }
            stored = self.mark(stored).await?;
        }
        for id in stored.record.collected_ids() {
            self.collect_recorded(id).await?;
            if !stored.record.records_complete {
                self.collect_unrecorded(id).await?;
            }
        }
        let mut batch = Batch::default();
        batch
            .require_version(keys::intent(object_id), stored.version)
            .delete(keys::intent(object_id));
        match self.catalog.apply(batch).await? {
            BatchOutcome::Applied { .. } => {
                let label = match state {
                    IntentState::Uploading => "uploading",
                    IntentState::Garbage => "garbage",
                };
                self.metrics
                    .gc_collected_total
                    .with_label_values(&[label])
                    .inc();
                tracing::info!(%object_id, ?state, "collected");
                Ok(true)
            }
            BatchOutcome::ConditionFailed { .. } => Err(CollectError::Raced),
        }
    }

    /// Step 2: fragments listed in shardlet records, then the records themselves.
    async fn collect_recorded(&self, id: ObjectId) -> Result<(), CollectError> {
        loop {
            let (page, _) = self
                .catalog
                .scan::<ShardletRecord>(&keys::shardlets_of_object(id), None, 64)
                .await?;
            if page.is_empty() {
                return Ok(());
            }
            for (key, stored) in page {
                let record = stored.record;
                for location in &record.fragments {
                    match self
                        .fragments
                        .delete(location.node, record.fragment_id(location))
                        .await
                    {
                        Ok(()) | Err(FragmentError::NotFound) => {}
                        // A node that left the topology holds nothing we can reach.
                        Err(FragmentError::UnknownNode(_)) => {}
                        Err(error) => return Err(error.into()),
                    }
                }
                let mut batch = Batch::default();
                batch
                    .require_version(key.clone(), stored.version)
                    .delete(key);
                for location in &record.fragments {
                    batch.delete(keys::node_fragment(
                        location.node,
                        record.fragment_id(location),
                    ));
                }
                if let BatchOutcome::ConditionFailed { .. } = self.catalog.apply(batch).await? {
                    return Err(CollectError::Raced);
                }
            }
        }
    }

    /// Step 3: fragments written before any record said where they are.
    async fn collect_unrecorded(&self, id: ObjectId) -> Result<(), CollectError> {
        let snapshot = self.topology.snapshot();
        for node in snapshot.topology.nodes() {
            for _ in 0..LIST_ROUNDS_MAX {
                let found = match self
                    .fragments
                    .list_of_object(node.id, id, FRAGMENTS_PER_LIST_MAX)
                    .await
                {
                    Ok(found) => found,
                    Err(error) => return Err(error.into()),
                };
                if found.is_empty() {
                    break;
                }
                for fragment in found {
                    match self.fragments.delete(node.id, fragment).await {
                        Ok(()) | Err(FragmentError::NotFound) => {}
                        Err(error) => return Err(error.into()),
                    }
                }
            }
        }
        Ok(())
    }

    /// One pass over (at most `INTENTS_PER_SWEEP_MAX`) intents.
    pub async fn sweep(&self) -> Result<usize, CollectError> {
        let (page, _) = self
            .catalog
            .scan::<IntentRecord>(
                keys::INTENT_PREFIX.as_bytes(),
                None,
                INTENTS_PER_SWEEP_MAX.min(SCAN_LIMIT_MAX),
            )
            .await?;
        let mut collected = 0;
        for (_, stored) in page {
            match self.collect(stored.record.object_id).await {
                Ok(true) => collected += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(object_id = %stored.record.object_id, %error, "collection failed; retrying next sweep")
                }
            }
        }
        Ok(collected)
    }

    /// The background worker: immediate requests, plus a sweep every interval.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let receiver = self.receiver.lock().ok().and_then(|mut slot| slot.take());
        let Some(mut receiver) = receiver else {
            tracing::error!("the collector is already running");
            return;
        };
        let mut ticker = tokio::time::interval(self.config.sweep_interval);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(object_id) = receiver.recv() => {
                    if let Err(error) = self.collect(object_id).await {
                        tracing::warn!(%object_id, %error, "collection failed; the sweep retries");
                    }
                }
                _ = ticker.tick() => {
                    if let Err(error) = self.sweep().await {
                        tracing::warn!(%error, "GC sweep failed");
                    }
                }
            }
        }
    }
}
