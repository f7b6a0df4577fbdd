//! Access heat, reported off the request path: a GET hands shardlet ids to a bounded
//! channel (never waiting: a full queue drops the report and counts it), and a flusher
//! task adds the counts to the shardlets' access counters in meta-raft every
//! [`HEAT_FLUSH_INTERVAL`]. The controller reads those counters to decide between
//! replication and erasure coding.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use shardlet_core::ShardletId;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::object::catalog::Catalog;
use crate::object::unix_ms_now;
use shardlet_model::schema::{encode, keys, ShardletRecord};
use shardlet_model::store::{Batch, BatchOutcome};

/// Reports waiting for the flusher; past this they are dropped (and counted).
pub const HEAT_QUEUE_MAX: usize = 65_536;
pub const HEAT_FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// Shardlets updated per flush; the rest of the counts carry over to the next flush.
pub const HEAT_SHARDLETS_PER_FLUSH_MAX: usize = 512;
/// Distinct shardlets held between flushes (bounds the flusher's memory).
pub const HEAT_PENDING_SHARDLETS_MAX: usize = 65_536;

#[derive(Clone)]
pub struct HeatReporter {
    sender: mpsc::Sender<ShardletId>,
    metrics: Arc<Metrics>,
}

impl HeatReporter {
    pub fn new(metrics: Arc<Metrics>) -> (Self, mpsc::Receiver<ShardletId>) {
        let (sender, receiver) = mpsc::channel(HEAT_QUEUE_MAX);
        (Self { sender, metrics }, receiver)
    }

    /// Never blocks: a full queue drops the report.
    pub fn report(&self, shardlet: ShardletId) {
        if self.sender.try_send(shardlet).is_err() {
            self.metrics.heat_reports_dropped_total.inc();
        }
    }
}

/// The flusher task.
pub async fn run_flusher(
    catalog: Catalog,
    metrics: Arc<Metrics>,
    mut receiver: mpsc::Receiver<ShardletId>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut pending: HashMap<ShardletId, u64> = HashMap::new();
    let mut ticker = tokio::time::interval(HEAT_FLUSH_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                flush(&catalog, &metrics, &mut pending).await;
                return;
            }
            Some(shardlet) = receiver.recv() => {
                if pending.len() < HEAT_PENDING_SHARDLETS_MAX || pending.contains_key(&shardlet) {
                    *pending.entry(shardlet).or_insert(0) += 1;
                } else {
                    metrics.heat_reports_dropped_total.inc();
                }
            }
            _ = ticker.tick() => flush(&catalog, &metrics, &mut pending).await,
        }
    }
}

/// Adds pending counts to the records, one compare-and-set each; a record changed
/// concurrently (controller, another gateway) keeps its count for the next flush.
pub async fn flush(catalog: &Catalog, metrics: &Metrics, pending: &mut HashMap<ShardletId, u64>) {
    let chosen: Vec<(ShardletId, u64)> = pending
        .iter()
        .take(HEAT_SHARDLETS_PER_FLUSH_MAX)
        .map(|(id, count)| (*id, *count))
        .collect();
    for (id, count) in chosen {
        let outcome = match catalog.read::<ShardletRecord>(&keys::shardlet(id)).await {
            Ok(Some(stored)) => {
                let mut record = stored.record;
                record.access.reads_total += count;
                record.access.last_access_unix_ms = unix_ms_now();
                let mut batch = Batch::default();
                batch
                    .require_version(keys::shardlet(id), stored.version)
                    .put(keys::shardlet(id), encode(&record));
                match catalog.apply(batch).await {
                    Ok(BatchOutcome::Applied { .. }) => "applied",
                    Ok(BatchOutcome::ConditionFailed { .. }) => "conflict",
                    Err(_) => "error",
                }
            }
            // Deleted since it was read: nothing to count.
            Ok(None) => "gone",
            Err(_) => "error",
        };
        metrics
            .heat_flushes_total
            .with_label_values(&[outcome])
            .inc();
        if outcome != "conflict" && outcome != "error" {
            pending.remove(&id);
        }
    }
}
