//! Garbage collection of fragments nobody references: abandoned or failed uploads,
//! overwritten and deleted objects, replaced and aborted multipart parts.
//!
//! Everything starts from an intent record (`i/{object id}`):
//! - `Uploading` intents are written before an upload's first fragment and deleted in
//!   its commit batch. One older than the cluster's upload deadline (meta-raft's
//!   settings, default one hour; see [`crate::object::upload_deadline`]) is abandoned:
//!   its own gateway refuses to commit it by then anyway.
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
//!
//! **Sweeps.** Every `sweep_interval` one page of at most [`INTENTS_PER_SWEEP_MAX`]
//! intents is looked at, starting after the last key the previous sweep reached and
//! wrapping to the first intent after the last page: however many young intents sort
//! before an old one, it is reached within `⌈intents / 256⌉` sweeps. An intent whose
//! collection fails (a node unreachable, metadata timing out) is parked
//! ([`parked::ParkedIntents`]: capped exponential backoff, counted in
//! `shardlet_gateway_gc_failures_total` and `shardlet_gateway_gc_parked_intents`) and
//! the sweep goes on with the next one. An intent this build cannot decode (a newer
//! format) is skipped with a warning: a newer gateway collects it.

pub mod parked;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use shardlet_core::ObjectId;
use shardlet_model::schema::{encode, keys, IntentRecord, IntentState, ShardletRecord};
use shardlet_model::settings::SettingsCache;
use shardlet_model::store::{Batch, BatchOutcome, SCAN_LIMIT_MAX};
use tokio::sync::mpsc;
use tokio::time::Instant;

use self::parked::ParkedIntents;
use crate::metrics::Metrics;
use crate::object::catalog::{Catalog, CatalogError, Stored};
use crate::object::fragments::{FragmentError, FragmentStore};
use crate::object::topology_source::TopologySource;
use crate::object::unix_ms_now;
use crate::object::upload_deadline::UploadClock;

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
    pub sweep_interval: Duration,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            sweep_interval: Duration::from_secs(60),
        }
    }
}

/// What one sweep did (for tests and the log).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Intents on the page.
    pub looked_at: usize,
    pub collected: usize,
    /// Intents skipped because they wait for their backoff.
    pub parked: usize,
    /// Intents whose collection failed this sweep.
    pub failed: usize,
    /// Intents this build cannot decode, left alone.
    pub undecodable: usize,
    /// True when the page was the last: the next sweep starts from the first intent.
    pub wrapped: bool,
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
    /// The cluster settings (the upload deadline), kept fresh by the gateway.
    settings: Arc<SettingsCache>,
    queue: mpsc::Sender<ObjectId>,
    receiver: Mutex<Option<mpsc::Receiver<ObjectId>>>,
    /// The last intent key the previous sweep reached (`None`: start from the first).
    cursor: Mutex<Option<Vec<u8>>>,
    parked: Mutex<ParkedIntents>,
    /// Monotonic time for the parking backoffs (a fake one in tests).
    now: fn() -> Instant,
}

impl Collector {
    pub fn new(
        catalog: Catalog,
        fragments: Arc<dyn FragmentStore>,
        topology: Arc<TopologySource>,
        metrics: Arc<Metrics>,
        config: CollectorConfig,
        settings: Arc<SettingsCache>,
    ) -> Self {
        let (queue, receiver) = mpsc::channel(COLLECT_QUEUE_MAX);
        Self {
            catalog,
            fragments,
            topology,
            metrics,
            config,
            settings,
            queue,
            receiver: Mutex::new(Some(receiver)),
            cursor: Mutex::new(None),
            parked: Mutex::new(ParkedIntents::default()),
            now: Instant::now,
        }
    }

    /// The same collector on another clock (tests that let backoffs pass).
    #[cfg(test)]
    pub(crate) fn with_clock(mut self, now: fn() -> Instant) -> Self {
        self.now = now;
        self
    }

    /// The cluster settings this gateway enforces.
    pub fn settings(&self) -> &Arc<SettingsCache> {
        &self.settings
    }

    /// A clock for a new upload, measured against the cluster's upload deadline.
    pub fn start_upload_clock(&self) -> UploadClock {
        UploadClock::start(self.settings.clone(), self.metrics.clone())
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
            if u128::from(age_ms) < self.settings.upload_deadline().as_millis() {
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

    /// Collects `object_id` unless it waits for its backoff; a failure parks it. Never
    /// fails: whatever happens is counted, logged and retried later.
    async fn attempt(&self, object_id: ObjectId) -> Attempt {
        let now = (self.now)();
        if self.lock_parked().is_waiting(&object_id, now) {
            return Attempt::Parked;
        }
        match self.collect(object_id).await {
            Ok(collected) => {
                self.unpark(&object_id);
                if collected {
                    Attempt::Collected
                } else {
                    Attempt::NotDue
                }
            }
            // Someone else changed the intent (its upload committed, another gateway
            // collected it): nothing failed, the next look decides again.
            Err(CollectError::Raced) => {
                tracing::debug!(%object_id, "intent changed while being collected");
                self.unpark(&object_id);
                Attempt::NotDue
            }
            Err(error) => {
                self.metrics.gc_failures_total.inc();
                let (backoff, failures) = {
                    let mut parked = self.lock_parked();
                    let backoff = parked.failed(object_id, now);
                    self.metrics.gc_parked_intents.set(parked.len() as i64);
                    (backoff, parked.failures(&object_id))
                };
                tracing::warn!(%object_id, %error, failures, ?backoff, "collection failed; parked, retried after the backoff");
                Attempt::Failed
            }
        }
    }

    fn unpark(&self, object_id: &ObjectId) {
        let mut parked = self.lock_parked();
        if parked.failures(object_id) > 0 {
            parked.succeeded(object_id);
            self.metrics.gc_parked_intents.set(parked.len() as i64);
        }
    }

    fn lock_parked(&self) -> std::sync::MutexGuard<'_, ParkedIntents> {
        // A table of backoffs, valid after any panic.
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One page of (at most [`INTENTS_PER_SWEEP_MAX`]) intents, from where the previous
    /// sweep stopped; after the last page the next sweep starts from the first intent.
    pub async fn sweep(&self) -> Result<SweepReport, CollectError> {
        let start_after = self
            .cursor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (page, next) = self
            .catalog
            .metadata()
            .page_scan::<IntentRecord>(
                keys::INTENT_PREFIX.as_bytes(),
                start_after.as_deref(),
                INTENTS_PER_SWEEP_MAX.min(SCAN_LIMIT_MAX),
            )
            .await
            .map_err(CatalogError::from)?;
        let mut report = SweepReport {
            looked_at: page.records.len() + page.undecodable.len(),
            undecodable: page.undecodable.len(),
            wrapped: next.is_none(),
            ..SweepReport::default()
        };
        for (key, error) in &page.undecodable {
            tracing::warn!(key = %String::from_utf8_lossy(key), %error, "an intent this build cannot read is left to a newer gateway");
        }
        for (_, stored) in page.records {
            match self.attempt(stored.record.object_id).await {
                Attempt::Collected => report.collected += 1,
                Attempt::NotDue => {}
                Attempt::Parked => report.parked += 1,
                Attempt::Failed => report.failed += 1,
            }
        }
        *self.cursor.lock().unwrap_or_else(PoisonError::into_inner) = next;
        self.metrics
            .gc_sweeps_total
            .with_label_values(&[if report.wrapped { "wrapped" } else { "page" }])
            .inc();
        Ok(report)
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
                    self.attempt(object_id).await;
                }
                _ = ticker.tick() => {
                    if let Err(error) = self.sweep().await {
                        tracing::warn!(%error, "GC sweep could not read intents; the next one retries");
                    }
                }
            }
        }
    }
}

/// How one attempt at an intent went.
enum Attempt {
    Collected,
    /// Young, gone, or changed by someone else: nothing to do now.
    NotDue,
    /// Waiting for its backoff after earlier failures.
    Parked,
    Failed,
}
