//! Reactive repair and evacuation: every pass re-derives the work from meta-raft (node
//! states, the node → fragment index, shardlet records) plus the scrub's findings, so
//! a controller that takes over after a crash continues exactly where the previous
//! one stopped: nothing lives only in memory, and every commit is a compare-and-set.
//!
//! Pass: read node states → list what Down and Draining nodes hold (`x/nf/{node}/`)
//! → plan each shardlet with [`plan_repair`] (or [`plan_evacuation`] for draining
//! nodes) → most endangered first ([`order_repairs`]) → run plans in parallel under
//! per-node and total limits ([`schedule`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use shardlet_core::{NodeId, NodeState, ShardletId};
use shardlet_model::schema::{keys, ShardletRecord};
use shardlet_model::{MetadataError, Stored};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::clock::unix_ms_now;
use super::cluster::{Cluster, ClusterView};
use super::executor::{Executor, Outcome};
use super::leader::LeaderPass;
use super::metrics::Metrics;
use super::records::{self, state_of};
use super::shared::ServiceShared;
use crate::repair::{order_repairs, plan_evacuation, plan_repair, RepairInput, RepairPlan};
use crate::scheduler::{finish, schedule, SchedulerConfig};
use crate::view::{FragmentLocation, ShardletState};

/// Index entries read per down/draining node per pass; the rest waits a pass.
const INDEX_KEYS_PER_NODE_MAX: usize = 100_000;
/// Shardlets planned per pass (bounds the memory of one pass).
const SHARDLETS_PER_PASS_MAX: usize = 20_000;
/// Shardlet records read from meta-raft at once while planning.
const RECORD_READS_IN_FLIGHT: usize = 32;

/// One planned repair with everything needed to run it.
struct Job {
    plan: RepairPlan,
    start: Stored<ShardletRecord>,
    state: ShardletState,
    evacuation: bool,
    /// The layout version an evacuation commits as the record's `layout_version` (see
    /// `plan_one`); `None` for repairs, which keep the record's.
    stamp: Option<u64>,
}

pub struct RepairWorker {
    pub shared: Arc<ServiceShared>,
    pub executor: Arc<Executor>,
    pub scheduler: SchedulerConfig,
    /// Woken by the scrub when it finds lost fragments.
    pub wake: Arc<Notify>,
    /// When this controller first found each shardlet waiting for repair, for
    /// `repair_backlog_oldest_seconds` (at most `SHARDLETS_PER_PASS_MAX` entries: only
    /// the shardlets of the last pass are kept). In memory: a controller that takes over
    /// counts ages from its own first pass.
    pub backlog: std::sync::Mutex<Backlog>,
}

/// Shardlets waiting for repair and when each was first found waiting.
#[derive(Default)]
pub struct Backlog {
    first_seen_ms: BTreeMap<ShardletId, u64>,
}

impl Backlog {
    /// The shardlets waiting now (`waiting`) replace the last pass's; ones already
    /// waiting keep their first-seen time.
    pub fn update(&mut self, waiting: impl IntoIterator<Item = ShardletId>, now_ms: u64) {
        let previous = std::mem::take(&mut self.first_seen_ms);
        for shardlet in waiting {
            let first = previous.get(&shardlet).copied().unwrap_or(now_ms);
            self.first_seen_ms.insert(shardlet, first);
        }
    }

    pub fn repaired(&mut self, shardlet: &ShardletId) {
        self.first_seen_ms.remove(shardlet);
    }

    /// Age of the oldest waiting shardlet, 0 when none waits.
    pub fn oldest_seconds(&self, now_ms: u64) -> f64 {
        self.first_seen_ms
            .values()
            .min()
            .map_or(0.0, |first| now_ms.saturating_sub(*first) as f64 / 1000.0)
    }
}

#[async_trait]
impl LeaderPass for RepairWorker {
    const NAME: &'static str = "repair";

    async fn leader_pass(&self) -> anyhow::Result<()> {
        self.pass().await.map(drop)
    }

    /// The scrub found lost fragments: repair them now, not at the next interval.
    async fn wait_for_work(&self) {
        self.wake.notified().await
    }
}

impl RepairWorker {
    fn cluster(&self) -> &Cluster {
        &self.shared.cluster
    }

    fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// One pass; returns how many plans committed.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let metadata = &self.shared.metadata;
        let records = self.cluster().node_records(metadata).await?;
        if records.len() < self.cluster().members().topology.nodes().len() {
            self.cluster()
                .register_nodes(metadata, unix_ms_now())
                .await?;
        }
        let view = self.cluster().view(&records);
        let scrub_lost = self.shared.take_scrub_lost();
        let mut shardlets: BTreeSet<ShardletId> =
            scrub_lost.iter().map(|(shardlet, _)| *shardlet).collect();
        let mut draining = BTreeSet::new();
        for (node, state) in &view.states {
            if !matches!(state, NodeState::Down | NodeState::Draining) {
                continue;
            }
            if *state == NodeState::Draining {
                draining.insert(*node);
            }
            let keys = records::index_keys(
                metadata,
                &keys::fragments_of_node(*node),
                INDEX_KEYS_PER_NODE_MAX,
            )
            .await?;
            shardlets.extend(
                keys.iter()
                    .filter_map(|key| keys::fragment_of_index_key(key))
                    .map(|fragment| fragment.shardlet),
            );
            if shardlets.len() >= SHARDLETS_PER_PASS_MAX {
                break;
            }
        }
        let risk = self.shared.node_risk();
        let mut jobs = Vec::new();
        let mut unrecoverable = 0;
        // Records are read a few at a time: one round trip each would serialise the
        // whole pass behind metadata latency before any repair starts.
        let fetched: Vec<Result<Option<Stored<ShardletRecord>>, MetadataError>> =
            futures::stream::iter(shardlets.into_iter().take(SHARDLETS_PER_PASS_MAX))
                .map(|shardlet| records::shardlet(metadata, shardlet))
                .buffered(RECORD_READS_IN_FLIGHT)
                .collect()
                .await;
        let (fetched, undecodable) = usable_records(fetched)?;
        if undecodable > 0 {
            self.metrics()
                .undecodable_records_total
                .with_label_values(&["repair"])
                .inc_by(undecodable);
        }
        for start in fetched {
            let shardlet = start.record.id;
            match plan_one(&view, &start, &scrub_lost, &draining, &risk) {
                Ok(Some(job)) => jobs.push(job),
                Ok(None) => {}
                Err(error) => {
                    unrecoverable += 1;
                    tracing::error!(%shardlet, %error, "cannot repair");
                }
            }
        }
        let below_target = jobs.iter().filter(|job| !job.evacuation).count();
        self.metrics()
            .shardlets_below_target
            .set(below_target as i64);
        self.metrics().unrecoverable_shardlets.set(unrecoverable);
        self.backlog_update(|backlog| {
            backlog.update(
                jobs.iter()
                    .filter(|job| !job.evacuation)
                    .map(|job| job.plan.shardlet),
                unix_ms_now(),
            )
        });
        if jobs.is_empty() {
            self.metrics().repairs_queued.set(0);
            return Ok(0);
        }
        let lost_nodes: BTreeSet<NodeId> = view
            .states
            .keys()
            .copied()
            .filter(|node| view.is_lost(*node))
            .collect();
        let committed = self.run_jobs(jobs, lost_nodes).await;
        // Scrub findings that did not get repaired are found again by the next scrub.
        Ok(committed)
    }

    /// Changes the backlog and sets its gauge.
    fn backlog_update(&self, change: impl FnOnce(&mut Backlog)) {
        let mut backlog = self
            .backlog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut backlog);
        self.metrics()
            .repair_backlog_oldest_seconds
            .set(backlog.oldest_seconds(unix_ms_now()));
    }

    /// Runs jobs in priority order, as many at once as the per-node limits allow.
    async fn run_jobs(&self, jobs: Vec<Job>, lost: BTreeSet<NodeId>) -> usize {
        let mut plans: Vec<RepairPlan> = jobs.iter().map(|job| job.plan.clone()).collect();
        order_repairs(&mut plans);
        let mut by_shardlet: BTreeMap<ShardletId, Job> = jobs
            .into_iter()
            .map(|job| (job.plan.shardlet, job))
            .collect();
        let mut queue: Vec<RepairPlan> = plans;
        self.metrics().repairs_queued.set(queue.len() as i64);
        let lost = Arc::new(lost);
        let mut in_flight: BTreeMap<NodeId, usize> = BTreeMap::new();
        type Finished = (
            RepairPlan,
            bool,
            anyhow::Result<Outcome>,
            std::time::Duration,
        );
        let mut running: JoinSet<Finished> = JoinSet::new();
        let mut committed = 0;
        loop {
            if self.shared.lease.is_active() {
                let started = schedule(&queue, &mut in_flight, running.len(), self.scheduler);
                // Remove from the back so earlier positions stay valid.
                for position in started.into_iter().rev() {
                    let plan = queue.remove(position);
                    let Some(job) = by_shardlet.remove(&plan.shardlet) else {
                        finish(&plan, &mut in_flight);
                        continue;
                    };
                    let executor = self.executor.clone();
                    let lost = lost.clone();
                    running.spawn(async move {
                        let started = std::time::Instant::now();
                        let result = executor
                            .execute_stamped(
                                &job.start,
                                &job.state,
                                &job.plan.actions,
                                &lost,
                                job.stamp,
                            )
                            .await;
                        (plan, job.evacuation, result, started.elapsed())
                    });
                }
            } else {
                queue.clear();
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let Ok((plan, evacuation, result, took)) = joined else {
                continue;
            };
            finish(&plan, &mut in_flight);
            match result {
                Ok(Outcome::Committed { bytes_moved }) => {
                    committed += 1;
                    self.metrics().repair_moved_bytes_total.inc_by(bytes_moved);
                    self.metrics()
                        .repair_duration_seconds
                        .observe(took.as_secs_f64());
                    self.backlog_update(|backlog| backlog.repaired(&plan.shardlet));
                    if evacuation {
                        self.metrics().evacuations_done_total.inc();
                    } else {
                        self.metrics().repairs_done_total.inc();
                    }
                }
                Ok(Outcome::Conflict) => {
                    tracing::debug!(shardlet = %plan.shardlet, "record changed; re-planned next pass");
                }
                Err(error) => {
                    self.metrics().repairs_failed_total.inc();
                    tracing::warn!(shardlet = %plan.shardlet, %error, "repair failed; retried next pass");
                }
            }
            self.metrics()
                .repairs_queued
                .set((queue.len() + running.len()) as i64);
        }
        self.metrics().repairs_queued.set(0);
        committed
    }
}

/// The repair (or, failing that, the evacuation) of one shardlet.
fn plan_one(
    view: &ClusterView,
    start: &Stored<ShardletRecord>,
    scrub_lost: &BTreeSet<(ShardletId, FragmentLocation)>,
    draining: &BTreeSet<NodeId>,
    risk: &BTreeMap<NodeId, f64>,
) -> anyhow::Result<Option<Job>> {
    let state = state_of(&start.record);
    let spread = shardlet_core::Spread::for_level(state.level);
    let lost = |location: &FragmentLocation| {
        view.is_lost(location.node) || scrub_lost.contains(&(state.id, *location))
    };
    let node_risk = |node: NodeId| risk.get(&node).copied().unwrap_or(0.0);
    let input = RepairInput {
        map: &view.map,
        domains: &view.domains,
        spread,
        lost: &lost,
        stored: &|_| false,
        node_risk: &node_risk,
    };
    if let Some(plan) = plan_repair(&state, &input)? {
        return Ok(Some(Job {
            plan,
            start: start.clone(),
            state,
            evacuation: false,
            stamp: None,
        }));
    }
    let Some(node) = state
        .fragments
        .iter()
        .map(|location| location.node)
        .find(|node| draining.contains(node))
    else {
        return Ok(None);
    };
    let Some(actions) = plan_evacuation(&state, node, &view.map, &view.domains, spread)? else {
        return Ok(None);
    };
    Ok(Some(Job {
        plan: RepairPlan {
            shardlet: state.id,
            spare_fragments: state.scheme.tolerated_losses(),
            holder_risk_max: node_risk(node),
            actions,
        },
        start: start.clone(),
        state,
        evacuation: true,
        // The evacuated fragment goes where the layout in use allows it, so the record
        // is placed under that version, and the rebalance does not move the shardlet a
        // second time: without the stamp a drain moved ~5 % more than the node held (the
        // rebalance bench), with it ~1 %. The cost: a shardlet evacuated while an earlier
        // layout change's rebalance had not reached it yet skips that move (balance only;
        // its redundancy is whole either way).
        stamp: (start.record.layout_version < view.layout_version).then_some(view.layout_version),
    }))
}

/// The records read for a pass: the ones that decoded, and how many did not (logged;
/// the pass repairs the others). Any other error fails the pass.
fn usable_records(
    fetched: Vec<Result<Option<Stored<ShardletRecord>>, MetadataError>>,
) -> Result<(Vec<Stored<ShardletRecord>>, u64), MetadataError> {
    let mut usable = Vec::with_capacity(fetched.len());
    let mut undecodable = 0;
    for result in fetched {
        match result {
            Ok(Some(record)) => usable.push(record),
            Ok(None) => {}
            Err(MetadataError::Corrupt(what)) => {
                undecodable += 1;
                tracing::error!(%what, "undecodable shardlet record; not repaired");
            }
            Err(error) => return Err(error),
        }
    }
    Ok((usable, undecodable))
}

#[cfg(test)]
mod tests {
    use shardlet_core::ObjectId;

    use super::*;

    #[test]
    fn backlog_age_is_the_oldest_still_waiting_and_zero_when_none() {
        let shardlet = |index| ShardletId::new(ObjectId([7; 16]), index);
        let mut backlog = Backlog::default();
        assert_eq!(backlog.oldest_seconds(5_000), 0.0);
        backlog.update([shardlet(1)], 1_000);
        backlog.update([shardlet(1), shardlet(2)], 3_000);
        assert_eq!(backlog.oldest_seconds(5_000), 4.0);
        backlog.repaired(&shardlet(1));
        assert_eq!(backlog.oldest_seconds(5_000), 2.0);
        // Gone from the next pass's work: no longer waiting.
        backlog.update([], 6_000);
        assert_eq!(backlog.oldest_seconds(6_000), 0.0);
    }
}
