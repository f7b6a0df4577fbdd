//! The rebalance: when the layout in use is newer than the version a shardlet record
//! was placed under, move what placement moved ([`crate::rebalance`] decides what and
//! where; this file reads, runs and reports).
//!
//! Pass: node states and the layout in use → every shardlet record → candidates (old
//! `layout_version`, every fragment on an up node) → [`plan_pass`] (only towards nodes
//! short of data, most-needed first) → moves under the background [`IoBudget`] shared
//! with transitions, a few at once → progress in `g/rebalance` and metrics.
//!
//! Order between workers ("most-needed first"): a pass does nothing while the repair
//! worker has work queued (lost redundancy, then draining nodes — the repair worker
//! evacuates those); shardlets with a fragment on a node that is not up are the repair
//! worker's alone, so one shardlet never has two plans.
//!
//! Crash and hand-over: nothing here lives only in memory. The work is re-derived each
//! pass from the records; each move is copy → verify → commit (compare-and-set on the
//! record, guarded by the lease token) → delete, so a `kill -9` at any line leaves the
//! committed layout complete (old or new) and at worst orphan copies (before the
//! commit: the scrub collects them after its grace) or stale old fragments (after it:
//! the scrub deletes them). A controller taking over re-plans; what it finds already
//! copied it overwrites with the same bytes. `g/rebalance` is a report written after
//! each pass (a lost write only makes `status` lag one pass).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use shardlet_meta::{Batch, BatchOutcome};
use shardlet_model::schema::{encode, keys, RebalanceRecord, ShardletRecord};
use shardlet_model::Stored;

use super::clock::unix_ms_now;
use super::executor::{Executor, Outcome};
use super::leader::LeaderPass;
use super::records::state_of;
use super::shared::ServiceShared;
use crate::budget::{Grant, IoBudget, Urgency};
use crate::rebalance::{candidate, plan_pass, Candidate, Move, RebalanceView, Skip};

/// Records read per pass (the rest waits for the next pass).
const RECORDS_PER_PASS_MAX: usize = 1_000_000;
/// Moves started per pass; the rest are re-planned next pass.
const MOVES_PER_PASS_MAX: usize = 10_000;
/// Moves running at once (each copies a fragment or a few between two nodes).
pub const MOVES_IN_FLIGHT_MAX: usize = 4;

pub struct RebalanceWorker {
    pub shared: Arc<ServiceShared>,
    pub executor: Arc<Executor>,
    /// Shared with transitions: background work spends one budget.
    pub budget: Arc<Mutex<IoBudget>>,
    /// The progress as last written (or read at the first pass).
    progress: tokio::sync::Mutex<Option<RebalanceRecord>>,
}

#[async_trait]
impl LeaderPass for RebalanceWorker {
    const NAME: &'static str = "rebalance";

    async fn leader_pass(&self) -> anyhow::Result<()> {
        self.pass().await.map(drop)
    }
}

impl RebalanceWorker {
    pub fn new(
        shared: Arc<ServiceShared>,
        executor: Arc<Executor>,
        budget: Arc<Mutex<IoBudget>>,
    ) -> Self {
        Self {
            shared,
            executor,
            budget,
            progress: tokio::sync::Mutex::new(None),
        }
    }

    /// One pass; returns how many moves committed.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let view = self.shared.cluster_view().await?;
        if view.layout_version == 0 {
            return Ok(0);
        }
        let mut progress = self.progress_towards(view.layout_version).await?;
        let scan = self
            .shared
            .shardlet_records(RECORDS_PER_PASS_MAX, "rebalance")
            .await?;
        // Planning is pure and synchronous (the closures the planner takes are not
        // `Send`, so they must not live across an await).
        let (moves, starts, left_to_repair) = {
            let state = |node| view.state(node);
            let domains = |node| view.zones_and_regions.get(&node).copied();
            let planner = RebalanceView {
                layout_version: view.layout_version,
                map: &view.map,
                state: &state,
                domains: &domains,
            };
            let mut candidates: Vec<Candidate> = Vec::new();
            let mut starts = std::collections::BTreeMap::new();
            let mut left_to_repair = 0u64;
            for (_, stored) in &scan.records {
                let shardlet = state_of(&stored.record);
                match candidate(&shardlet, stored.record.layout_version, &planner) {
                    Ok(found) => {
                        starts.insert(shardlet.id, stored.clone());
                        candidates.push(found);
                    }
                    Err(Skip::LeftToRepair(_) | Skip::Incomplete) => left_to_repair += 1,
                    Err(Skip::Unplaceable(reason)) => {
                        tracing::warn!(shardlet = %shardlet.id, %reason, "cannot place under the layout in use")
                    }
                    Err(Skip::Current | Skip::Unchanged) => {}
                }
            }
            let moves = plan_pass(&candidates, &planner);
            (moves, starts, left_to_repair)
        };
        progress.shardlets_left_to_repair = left_to_repair;
        progress.shardlets_remaining = moves.len() as u64;
        progress.bytes_remaining = moves.iter().map(|m| m.bytes).sum();
        progress.waiting_for = None;
        let repairs = self.shared.metrics.repairs_queued.get();
        let committed = if moves.is_empty() {
            0
        } else if repairs > 0 {
            // Lost redundancy and draining nodes first.
            progress.waiting_for = Some(format!("{repairs} repairs or evacuations first"));
            0
        } else {
            self.run(moves, &starts, &mut progress).await
        };
        self.report(progress).await;
        Ok(committed)
    }

    /// Runs `moves` in order, up to [`MOVES_IN_FLIGHT_MAX`] at once, while the budget
    /// grants them and the lease is held.
    async fn run(
        &self,
        moves: Vec<Move>,
        starts: &std::collections::BTreeMap<shardlet_core::ShardletId, Stored<ShardletRecord>>,
        progress: &mut RebalanceRecord,
    ) -> usize {
        let mut granted = Vec::new();
        for planned in moves.into_iter().take(MOVES_PER_PASS_MAX) {
            let grant = self
                .budget
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .request(planned.bytes, Urgency::Background, unix_ms_now());
            if let Grant::WaitUntil { .. } = grant {
                progress.waiting_for = Some("I/O budget".into());
                break;
            }
            granted.push(planned);
        }
        let jobs: Vec<(Move, Stored<ShardletRecord>)> = granted
            .into_iter()
            .filter_map(|planned| {
                let start = starts.get(&planned.shardlet)?.clone();
                Some((planned, start))
            })
            .collect();
        let outcomes: Vec<(u64, anyhow::Result<Outcome>)> = futures::stream::iter(jobs)
            .map(|(planned, start)| {
                let executor = self.executor.clone();
                let lease = self.shared.lease.clone();
                async move {
                    if !lease.is_active() {
                        return (planned.bytes, Err(anyhow::anyhow!("lease lost")));
                    }
                    tracing::info!(shardlet = %planned.shardlet, fragments = planned.moves.len(), version = planned.layout_version, "rebalance move");
                    let state = state_of(&start.record);
                    let result = executor
                        .execute_stamped(
                            &start,
                            &state,
                            &planned.actions,
                            &BTreeSet::new(),
                            Some(planned.layout_version),
                        )
                        .await;
                    (planned.bytes, result)
                }
            })
            .buffer_unordered(MOVES_IN_FLIGHT_MAX)
            .collect()
            .await;
        let metrics = &self.shared.metrics;
        let mut committed = 0;
        for (bytes, outcome) in outcomes {
            let label = match outcome {
                Ok(Outcome::Committed { bytes_moved }) => {
                    committed += 1;
                    metrics.rebalance_moved_bytes_total.inc_by(bytes_moved);
                    progress.shardlets_moved += 1;
                    progress.bytes_moved += bytes;
                    progress.shardlets_remaining = progress.shardlets_remaining.saturating_sub(1);
                    progress.bytes_remaining = progress.bytes_remaining.saturating_sub(bytes);
                    "committed"
                }
                // The object was rewritten, deleted, repaired or re-coded meanwhile:
                // the copies are orphans for the scrub, the next pass re-plans.
                Ok(Outcome::Conflict) => "conflict",
                Err(error) => {
                    tracing::warn!(%error, "rebalance move failed; re-planned next pass");
                    "failed"
                }
            };
            metrics
                .rebalance_moves_total
                .with_label_values(&[label])
                .inc();
        }
        committed
    }

    /// The progress towards `version`: the one in memory, else `g/rebalance` if it is
    /// about the same version (a controller taking over keeps counting), else new.
    async fn progress_towards(&self, version: u64) -> anyhow::Result<RebalanceRecord> {
        let mut held = self.progress.lock().await;
        if held.is_none() {
            // A report, never needed for correctness: one this build cannot decode (a
            // newer format, or damaged) must not stop the rebalance, so it is logged and
            // replaced by a fresh count; a failed read is retried next pass.
            *held = match self
                .shared
                .metadata
                .read::<RebalanceRecord>(keys::CLUSTER_REBALANCE.as_bytes())
                .await
            {
                Ok(stored) => stored.map(|stored| stored.record),
                Err(shardlet_model::MetadataError::Corrupt(reason)) => {
                    tracing::warn!(%reason, "g/rebalance does not decode; counting progress afresh");
                    None
                }
                Err(error) => return Err(error.into()),
            };
        }
        Ok(match held.as_ref() {
            Some(record) if record.layout_version == version => record.clone(),
            _ => RebalanceRecord {
                layout_version: version,
                started_unix_ms: unix_ms_now(),
                ..RebalanceRecord::default()
            },
        })
    }

    /// Metrics and `g/rebalance` (one write per pass, with the lease's fencing token so
    /// a deposed controller cannot overwrite its successor's report).
    async fn report(&self, mut progress: RebalanceRecord) {
        progress.updated_unix_ms = unix_ms_now();
        let metrics = &self.shared.metrics;
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        metrics
            .rebalance_layout_version
            .set(gauge(progress.layout_version));
        metrics
            .rebalance_shardlets_moved
            .set(gauge(progress.shardlets_moved));
        metrics
            .rebalance_moved_bytes
            .set(gauge(progress.bytes_moved));
        metrics
            .rebalance_shardlets_remaining
            .set(gauge(progress.shardlets_remaining));
        metrics
            .rebalance_remaining_bytes
            .set(gauge(progress.bytes_remaining));
        *self.progress.lock().await = Some(progress.clone());
        let Some(fence) = self.shared.lease.fence_condition() else {
            return;
        };
        let mut batch = Batch::of_put(
            keys::CLUSTER_REBALANCE.as_bytes().to_vec(),
            encode(&progress),
        );
        batch.conditions.push(fence);
        match self.shared.meta.batch(batch).await {
            Ok(BatchOutcome::Applied { .. }) => {}
            Ok(BatchOutcome::ConditionFailed { .. }) => {
                tracing::debug!("lease fence moved; progress not written")
            }
            Err(error) => tracing::warn!(%error, "rebalance progress not written"),
        }
    }
}
