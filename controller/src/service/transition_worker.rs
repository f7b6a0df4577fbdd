//! Heat-driven transitions: access counters from the shardlet records (the gateways
//! add their GET counts every few seconds) → decayed heat and a class per shardlet
//! ([`HeatTracker`]) → the policy's target ([`decide`]) → a write-verify-commit-delete
//! plan ([`plan_transition`]) run under the background I/O budget ([`IoBudget`]).
//!
//! The pass reads every shardlet record, so it also sums the cluster's stocks
//! ([`crate::stocks`]: scheme mix, bytes by scheme and level, modelled MTTDL) and,
//! with one scan of the object records, objects and bytes per bucket.
//!
//! Heat lives in memory. A controller that starts (or takes over) sees each record's
//! counters for the first time; it counts them decayed by the time since the record's
//! last access, so data read long ago does not look hot after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use shardlet_core::{NodeId, NodeState, ShardletId};
use shardlet_model::schema::{keys, ObjectRecord, ShardletRecord};
use shardlet_model::Stored;
use tokio::sync::Mutex;

use super::clock::unix_ms_now;
use super::executor::{Executor, Outcome};
use super::leader::LeaderPass;
use super::records::{level_of, state_of};
use super::shared::ServiceShared;
use crate::budget::{Grant, IoBudget, Urgency};
use crate::heat::{HeatConfig, HeatReport, HeatTracker};
use crate::policy::{decide, PolicyConfig, PolicyInput, Reason, SchemeTable};
use crate::stocks::{scheme_label, tally_buckets, ShardletStocks, BUCKETS_MAX};
use crate::transition::plan_transition;

/// Records read per pass.
const RECORDS_PER_PASS_MAX: usize = 1_000_000;
/// Transitions started per pass; the rest wait for the next pass.
const TRANSITIONS_PER_PASS_MAX: usize = 1_000;
/// Object records read per pass for the per-bucket stocks; beyond it the sums cover
/// the first ones in key order (logged).
const OBJECTS_PER_PASS_MAX: usize = 1_000_000;

pub struct TransitionWorker {
    /// What the passes learn (heat, totals seen) and spend (the I/O budget).
    state: Mutex<TransitionState>,
    pub shared: Arc<ServiceShared>,
    pub executor: Arc<Executor>,
    pub policy: PolicyConfig,
    pub heat_config: HeatConfig,
    /// Shared with the rebalance: background work spends one budget.
    pub budget: Arc<std::sync::Mutex<IoBudget>>,
}

struct TransitionState {
    heat: HeatTracker,
    /// Access totals last seen per shardlet (bounded like the tracker).
    seen_totals: BTreeMap<ShardletId, u64>,
}

#[async_trait]
impl LeaderPass for TransitionWorker {
    const NAME: &'static str = "transitions";

    async fn leader_pass(&self) -> anyhow::Result<()> {
        self.pass().await.map(drop)
    }
}

impl TransitionWorker {
    pub fn new(
        shared: Arc<ServiceShared>,
        executor: Arc<Executor>,
        policy: PolicyConfig,
        heat_config: HeatConfig,
        budget: Arc<std::sync::Mutex<IoBudget>>,
    ) -> Self {
        Self {
            shared,
            executor,
            policy,
            state: Mutex::new(TransitionState {
                heat: HeatTracker::new(heat_config),
                seen_totals: BTreeMap::new(),
            }),
            heat_config,
            budget,
        }
    }

    pub async fn pass(&self) -> anyhow::Result<usize> {
        let view = self.shared.cluster_view().await?;
        // Undecodable records are counted and left alone; the others proceed.
        let scan = self
            .shared
            .shardlet_records(RECORDS_PER_PASS_MAX, "transitions")
            .await?;
        let entries = scan.records;
        self.publish_stocks(&entries).await;
        let table = match SchemeTable::new(&self.policy, &view.map) {
            Ok(table) => table,
            Err(error) => {
                tracing::warn!(%error, "no policy table for this topology; transitions paused");
                return Ok(0);
            }
        };
        let now = unix_ms_now();
        let mut state = self.state.lock().await;
        self.observe_heat(&mut state, &entries, now);
        let risk = self.shared.node_risk();
        let node_risk = |node: NodeId| risk.get(&node).copied().unwrap_or(0.0);
        let mut started = 0;
        let mut committed = 0;
        for (_, versioned) in &entries {
            if started >= TRANSITIONS_PER_PASS_MAX || !self.shared.lease.is_active() {
                break;
            }
            let shardlet = state_of(&versioned.record);
            // Repair first: never re-encode a shardlet with a fragment on a node that
            // is not plainly up.
            if shardlet
                .fragments
                .iter()
                .any(|location| view.state(location.node) != NodeState::Up)
            {
                continue;
            }
            let class = state.heat.class(shardlet.id);
            let decided = {
                let input = PolicyInput {
                    state: &shardlet,
                    class,
                    node_risk: &node_risk,
                    now_ms: now,
                };
                decide(&self.policy, &table, &view.map, &view.domains, &input)
            };
            let target = match decided {
                Ok(target) => target,
                Err(error) => {
                    tracing::debug!(shardlet = %shardlet.id, %error, "no target");
                    continue;
                }
            };
            if matches!(target.reason, Reason::Unchanged | Reason::Dwelling) {
                continue;
            }
            let actions = match plan_transition(&shardlet, &target) {
                Ok(actions) if actions.is_empty() => continue,
                Ok(actions) => actions,
                Err(error) => {
                    tracing::warn!(shardlet = %shardlet.id, %error, "transition not planned");
                    continue;
                }
            };
            let bytes: u64 = actions
                .iter()
                .map(|action| action.bytes_moved(shardlet.size_bytes))
                .sum();
            let urgency = if target.reason == Reason::BelowTarget {
                Urgency::Endangered
            } else {
                Urgency::Background
            };
            let grant = self
                .budget
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .request(bytes, urgency, now);
            if let Grant::WaitUntil { .. } = grant {
                tracing::debug!("I/O budget spent; transitions continue next pass");
                break;
            }
            started += 1;
            tracing::info!(shardlet = %shardlet.id, from = %shardlet.scheme, to = %target.scheme, reason = ?target.reason, "transition");
            match self
                .executor
                .execute(versioned, &shardlet, &actions, &Default::default())
                .await
            {
                Ok(Outcome::Committed { bytes_moved }) => {
                    committed += 1;
                    self.shared
                        .metrics
                        .transitions_total
                        .with_label_values(&[scheme_label(target.scheme), "done"])
                        .inc();
                    self.shared
                        .metrics
                        .transition_moved_bytes_total
                        .inc_by(bytes_moved);
                }
                Ok(Outcome::Conflict) => {}
                Err(error) => {
                    self.shared
                        .metrics
                        .transitions_total
                        .with_label_values(&[scheme_label(target.scheme), "failed"])
                        .inc();
                    tracing::warn!(shardlet = %shardlet.id, %error, "transition failed");
                }
            }
        }
        Ok(committed)
    }

    /// Sums the stocks of the records this pass read, and of the object records (one
    /// bounded scan), into the stock gauges. A failed object scan keeps the last
    /// per-bucket values (logged); the pass goes on.
    async fn publish_stocks(&self, entries: &[(Vec<u8>, Stored<ShardletRecord>)]) {
        let model = &self.policy.durability;
        let stocks = ShardletStocks::tally(
            entries.iter().map(|(_, versioned)| {
                let record = &versioned.record;
                (record.scheme, level_of(record), record.size_bytes)
            }),
            model,
        );
        self.shared.metrics.stocks.publish_shardlets(&stocks, model);
        let scan = match self
            .shared
            .metadata
            .scan::<ObjectRecord>(keys::OBJECT_PREFIX.as_bytes(), OBJECTS_PER_PASS_MAX)
            .await
        {
            Ok(scan) => scan,
            Err(error) => {
                tracing::warn!(%error, "cannot scan object records; per-bucket stocks unchanged");
                return;
            }
        };
        if scan.truncated {
            tracing::warn!(
                objects = scan.records.len(),
                "per-bucket stocks cover the first objects only"
            );
        }
        let buckets = tally_buckets(
            scan.records.iter().map(|(_, versioned)| {
                (
                    versioned.record.bucket.as_str(),
                    versioned.record.size_bytes,
                )
            }),
            BUCKETS_MAX,
        );
        self.shared.metrics.stocks.publish_buckets(&buckets);
    }

    /// Folds the growth of each record's access counters into the heat tracker.
    fn observe_heat(
        &self,
        state: &mut TransitionState,
        entries: &[(Vec<u8>, Stored<ShardletRecord>)],
        now: u64,
    ) {
        let half_life_ms = self.heat_config.half_life_ms.max(1) as f64;
        let mut reports = Vec::new();
        for (_, versioned) in entries {
            let record = &versioned.record;
            let total = record.access.reads_total + record.access.writes_total;
            let delta = match state.seen_totals.get(&record.id) {
                Some(seen) => total.saturating_sub(*seen),
                None => {
                    let age_ms = now.saturating_sub(record.access.last_access_unix_ms) as f64;
                    (total as f64 * 0.5f64.powf(age_ms / half_life_ms)).round() as u64
                }
            };
            if state.seen_totals.len() < self.heat_config.tracked_max
                || state.seen_totals.contains_key(&record.id)
            {
                state.seen_totals.insert(record.id, total);
            }
            if delta > 0 {
                reports.push(HeatReport {
                    shardlet: record.id,
                    reads: delta,
                    writes: 0,
                });
            }
        }
        state.heat.observe(&reports, now);
        state.heat.decay_all(now);
    }
}
