//! The controller under test: the daemon's own decision functions, driven by events.
//! [`crate::detector::Detector`] for Up/Suspect/Down, [`policy::decide`] for layouts,
//! [`plan_transition`] + [`check_plan`] for re-encoding, [`plan_repair`] +
//! [`order_repairs`] for repair, [`scheduler::schedule`] / [`scheduler::finish`] for
//! which repairs run at once, [`plan_evacuation`] for predicted failures and
//! [`crate::budget::IoBudget`] for throttling. Only timing and bytes are modelled here.

use std::collections::BTreeSet;

use shardlet_core::{NodeId, NodeState, PlacementMap, ShardletId};

use super::events::{Event, MS_PER_HOUR};
use super::world::World;
use crate::budget::{Grant, Urgency};
use crate::detector::{Heartbeat, Liveness};
use crate::policy::{self, PolicyInput, Reason};
use crate::repair::{
    order_repairs, plan_evacuation, plan_repair, RepairError, RepairInput, RepairPlan,
};
use crate::scheduler;
use crate::transition::{check_plan, plan_transition};
use crate::view::{Action, FragmentLocation, StoredFragment};

/// Risk the simulated predictor reports for a flagged node, and for the others.
const RISK_FLAGGED: f64 = 0.8;
const RISK_BASELINE: f64 = 0.0015;
/// A granted transition or evacuation commits this long after its grant.
const BACKGROUND_COMMIT_DELAY_MS: u64 = 60_000;
/// Evacuation plans per step before yielding to other events.
const EVACUATION_BATCH_MAX: usize = 64;

impl World {
    pub(super) fn detector_tick(&mut self) {
        let alive: Vec<u32> = self
            .detector_tracked
            .iter()
            .copied()
            .filter(|node| self.nodes[*node as usize].online)
            .collect();
        for node in &alive {
            self.detector.observe(self.heartbeat(*node), self.now_ms);
        }
        for transition in self.detector.tick(self.now_ms) {
            let node = transition.node.0;
            match transition.to {
                Liveness::Down => {
                    self.report.nodes_declared_down += 1;
                    self.set_node_state(node, NodeState::Down);
                    let holding: Vec<u32> = self.holders[node as usize].iter().copied().collect();
                    self.plan_repairs(holding);
                }
                Liveness::Up if transition.from == Liveness::Down => {
                    let state = if self.nodes[node as usize].flagged {
                        NodeState::Draining
                    } else {
                        NodeState::Up
                    };
                    self.set_node_state(node, state);
                    let blocked: Vec<u32> = std::mem::take(&mut self.blocked).into_iter().collect();
                    self.plan_repairs(blocked);
                }
                _ => {}
            }
        }
        // A node up and quiet for longer than the flap window has no history worth
        // keeping; the detector forgets it (it stands for the thousands of healthy
        // nodes whose heartbeats the simulator does not replay one by one).
        let window = self.detector.config().flap_window_ms;
        let quiet: Vec<u32> = alive
            .into_iter()
            .filter(|node| {
                self.detector.liveness(NodeId(*node)) == Some(Liveness::Up)
                    && self.now_ms - self.nodes[*node as usize].last_failure_ms > window
            })
            .collect();
        for node in quiet {
            self.detector_tracked.remove(&node);
            self.detector.forget(NodeId(node));
        }
    }

    pub(super) fn heartbeat(&self, node: u32) -> Heartbeat {
        Heartbeat { node: NodeId(node) }
    }

    pub(super) fn set_node_state(&mut self, node: u32, state: NodeState) {
        let epoch = self.topology.epoch() + 1;
        if let Some(next) = self.topology.with_node_state(epoch, NodeId(node), state) {
            self.topology = next;
            self.map = PlacementMap::new(&self.topology);
        }
    }

    pub(super) fn node_risk(&self, node: NodeId) -> f64 {
        if self.nodes[node.0 as usize].flagged {
            RISK_FLAGGED
        } else {
            RISK_BASELINE
        }
    }

    // ---- repair ----

    pub(super) fn plan_repairs(&mut self, candidates: Vec<u32>) {
        let mut plans = Vec::new();
        for shardlet in candidates {
            let entry = &self.shardlets[shardlet as usize];
            if entry.lost || entry.busy {
                continue;
            }
            let spread = self.config.policy.spread(entry.state.level);
            let lost = |location: &FragmentLocation| !self.available(shardlet, location);
            let stored = |_: &StoredFragment| false;
            let risk = |node: NodeId| self.node_risk(node);
            let input = RepairInput {
                map: &self.map,
                domains: &self.domains,
                spread,
                lost: &lost,
                stored: &stored,
                node_risk: &risk,
            };
            match plan_repair(&entry.state, &input) {
                Ok(Some(plan)) => plans.push(plan),
                Ok(None) => {}
                // Not enough fragments readable right now (nodes offline): retry when
                // a node comes back.
                Err(RepairError::Unrecoverable { .. }) => {
                    self.blocked.insert(shardlet);
                }
                Err(RepairError::Placement(_)) => {
                    self.report.placement_failures += 1;
                    self.blocked.insert(shardlet);
                }
            }
        }
        for plan in &plans {
            if let Some(index) = self.index_of(plan.shardlet) {
                self.shardlets[index as usize].busy = true;
            }
        }
        self.repair_queue.extend(plans);
        order_repairs(&mut self.repair_queue);
        self.start_repairs();
    }

    /// Starts the queued repairs the daemon's scheduler would start now: most
    /// endangered first, each only while every node it touches has a free slot
    /// (`scheduler::schedule`; `scheduler::finish` frees them in `repair_done`).
    ///
    /// Timing is aggregated, because each sampled plan stands for `scale` real ones
    /// spread over the whole cluster: endangered plans (no spare left) run at the
    /// cluster's full repair speed, one after the other from now; the rest queue
    /// behind each other at the background budget's rate.
    pub(super) fn start_repairs(&mut self) {
        let started = scheduler::schedule(
            &self.repair_queue,
            &mut self.repair_in_flight,
            self.repairs.len(),
            self.config.scheduler,
        );
        let waiting = (self.repair_queue.len() - started.len()) as u64;
        self.report.repairs_waiting_max = self.report.repairs_waiting_max.max(waiting);
        if started.is_empty() {
            return;
        }
        // Remove from the back so earlier positions stay valid, then restore the
        // priority order for the timing below.
        let mut starting: Vec<_> = started
            .into_iter()
            .rev()
            .map(|position| self.repair_queue.remove(position))
            .collect();
        starting.reverse();
        let nodes_online = self.nodes.iter().filter(|n| n.online).count() as f64;
        let full_speed = self.config.repair_bytes_per_second_per_node * nodes_online;
        let budget_speed = full_speed.min(self.budget.bytes_per_second());
        let mut endangered_cursor = self.now_ms;
        self.repair_cursor_ms = self.repair_cursor_ms.max(self.now_ms);
        for plan in starting {
            let Some(index) = self.index_of(plan.shardlet) else {
                scheduler::finish(&plan, &mut self.repair_in_flight);
                continue;
            };
            let bytes = plan.bytes_moved(self.config.shardlet_bytes) as f64 * self.scale;
            let done = if plan.spare_fragments == 0 {
                endangered_cursor += (bytes / full_speed * 1000.0) as u64 + 1;
                endangered_cursor
            } else {
                self.repair_cursor_ms += (bytes / budget_speed * 1000.0) as u64 + 1;
                self.repair_cursor_ms
            };
            self.repairs.insert(index, plan);
            self.push(done, Event::RepairDone { shardlet: index });
        }
    }

    pub(super) fn repair_done(&mut self, shardlet: u32) {
        let Some(plan) = self.repairs.remove(&shardlet) else {
            return;
        };
        scheduler::finish(&plan, &mut self.repair_in_flight);
        self.finish_repair(shardlet, plan);
        // The plan's nodes are free again: queued plans that need them may start.
        self.start_repairs();
    }

    fn finish_repair(&mut self, shardlet: u32, plan: RepairPlan) {
        self.shardlets[shardlet as usize].busy = false;
        if self.shardlets[shardlet as usize].lost {
            return;
        }
        let still_degraded = self.shardlets[shardlet as usize]
            .degraded_since_ms
            .is_some();
        if !still_degraded {
            // The node came back before the repair finished: cancel it.
            self.report.repairs_cancelled += 1;
            return;
        }
        if self.apply(shardlet, &plan.actions) {
            self.refresh_degraded(shardlet, true);
        }
        if self.shardlets[shardlet as usize]
            .degraded_since_ms
            .is_some()
        {
            self.plan_repairs(vec![shardlet]);
        } else {
            self.evaluate(shardlet);
        }
    }

    /// Executes a plan's commit if its compare-and-set and its reads and writes would
    /// succeed now; updates the node → shardlet index. Returns whether it committed.
    pub(super) fn apply(&mut self, shardlet: u32, actions: &[Action]) -> bool {
        let readable = |fragment: &StoredFragment| {
            self.nodes[fragment.node.0 as usize].online
                && !self.destroyed.contains(&(shardlet, fragment.node))
        };
        let writable = |fragment: &StoredFragment| self.nodes[fragment.node.0 as usize].online;
        let mut commit = None;
        for action in actions {
            let ok = match action {
                Action::CopyFragment { source, target, .. } => readable(source) && writable(target),
                Action::Reconstruct {
                    sources, outputs, ..
                }
                | Action::Reencode {
                    sources, outputs, ..
                } => {
                    let needed = match action {
                        Action::Reencode { from, .. } => from.required_fragments(),
                        _ => sources.len(),
                    };
                    sources.iter().filter(|s| readable(s)).count() >= needed
                        && outputs.iter().all(writable)
                }
                Action::Verify { fragments, .. } => fragments.iter().all(writable),
                Action::CommitLayout { .. } => {
                    commit = Some(action);
                    true
                }
                Action::DeleteFragment { .. } => true,
            };
            if !ok {
                return false;
            }
        }
        let Some(Action::CommitLayout {
            expected_generation,
            new_generation,
            scheme,
            new_locations,
            ..
        }) = commit
        else {
            return false;
        };
        let state = &self.shardlets[shardlet as usize].state;
        if state.generation != *expected_generation {
            return false;
        }
        let old_nodes: BTreeSet<NodeId> = state.nodes().into_iter().collect();
        let new_nodes: BTreeSet<NodeId> = new_locations.iter().map(|l| l.node).collect();
        let scheme_changed = state.scheme != *scheme;
        for node in old_nodes.difference(&new_nodes) {
            self.holders[node.0 as usize].remove(&shardlet);
            self.destroyed.remove(&(shardlet, *node));
        }
        for node in new_nodes.difference(&old_nodes) {
            self.holders[node.0 as usize].insert(shardlet);
            self.destroyed.remove(&(shardlet, *node));
        }
        let now = self.now_ms;
        let state = &mut self.shardlets[shardlet as usize].state;
        state.generation = *new_generation;
        state.scheme = *scheme;
        state.fragments = new_locations.clone();
        if scheme_changed {
            state.layout_changed_at_ms = now;
        }
        true
    }

    /// Sample shardlets are created in id order (the object id starts with the
    /// index), so a plan's id finds its position by binary search.
    pub(super) fn index_of(&self, id: ShardletId) -> Option<u32> {
        self.shardlets
            .binary_search_by_key(&id, |s| s.state.id)
            .ok()
            .map(|position| position as u32)
    }

    // ---- policy and transitions ----

    pub(super) fn evaluate(&mut self, shardlet: u32) {
        let entry = &self.shardlets[shardlet as usize];
        if entry.lost || entry.busy || entry.degraded_since_ms.is_some() {
            return;
        }
        let risk = |node: NodeId| self.node_risk(node);
        let input = PolicyInput {
            state: &entry.state,
            class: entry.class,
            node_risk: &risk,
            now_ms: self.now_ms,
        };
        let target = match policy::decide(
            &self.config.policy,
            &self.table,
            &self.map,
            &self.domains,
            &input,
        ) {
            Ok(target) => target,
            Err(_) => {
                self.report.placement_failures += 1;
                return;
            }
        };
        match target.reason {
            Reason::Unchanged => return,
            Reason::Dwelling => {
                let at = entry.state.layout_changed_at_ms + self.config.policy.change_dwell_ms;
                if !entry.evaluate_scheduled {
                    self.shardlets[shardlet as usize].evaluate_scheduled = true;
                    self.push(at, Event::Evaluate { shardlet });
                }
                return;
            }
            _ => {}
        }
        let Ok(plan) = plan_transition(&entry.state, &target) else {
            self.report.placement_failures += 1;
            return;
        };
        if plan.is_empty() {
            return;
        }
        if check_plan(&entry.state, &plan).is_err() {
            self.report.durability_violations += 1;
            return;
        }
        let bytes: u64 = plan
            .iter()
            .map(|a| a.bytes_moved(entry.state.size_bytes))
            .sum();
        self.start_background(shardlet, plan, bytes);
    }

    /// Charges the budget; on a grant the plan commits shortly, otherwise the
    /// shardlet is re-evaluated when the tokens will be there.
    pub(super) fn start_background(
        &mut self,
        shardlet: u32,
        plan: Vec<Action>,
        bytes: u64,
    ) -> bool {
        match self.charge_background(shardlet, plan, bytes, false) {
            Grant::Granted => true,
            Grant::WaitUntil { at_ms } => {
                if !self.shardlets[shardlet as usize].evaluate_scheduled {
                    self.shardlets[shardlet as usize].evaluate_scheduled = true;
                    self.push(at_ms, Event::Evaluate { shardlet });
                }
                false
            }
        }
    }

    /// Charges `bytes` of background work to the budget; on a grant the shardlet is
    /// busy and its plan (a transition, or an evacuation) commits shortly. Either way
    /// the grant is returned, so the caller can retry when the tokens will be there.
    fn charge_background(
        &mut self,
        shardlet: u32,
        plan: Vec<Action>,
        bytes: u64,
        evacuation: bool,
    ) -> Grant {
        let real_bytes = bytes as f64 * self.scale;
        let grant = self
            .budget
            .request(real_bytes as u64, Urgency::Background, self.now_ms);
        if grant == Grant::Granted {
            *self
                .background_bytes_per_hour
                .entry(self.now_ms / MS_PER_HOUR)
                .or_default() += real_bytes;
            self.shardlets[shardlet as usize].busy = true;
            self.background.insert(shardlet, (plan, evacuation));
            self.push(
                self.now_ms + BACKGROUND_COMMIT_DELAY_MS,
                Event::BackgroundDone { shardlet },
            );
        }
        grant
    }

    pub(super) fn background_done(&mut self, shardlet: u32) {
        let Some((plan, evacuation)) = self.background.remove(&shardlet) else {
            return;
        };
        self.shardlets[shardlet as usize].busy = false;
        if self.shardlets[shardlet as usize].lost {
            return;
        }
        if self.apply(shardlet, &plan) {
            if evacuation {
                self.report.evacuations += 1;
            } else {
                self.report.transitions += 1;
            }
        }
        self.refresh_degraded(shardlet, false);
        if self.shardlets[shardlet as usize]
            .degraded_since_ms
            .is_some()
        {
            self.plan_repairs(vec![shardlet]);
        }
    }

    pub(super) fn evacuate(&mut self, node: u32) {
        if !self.nodes[node as usize].flagged || !self.nodes[node as usize].online {
            return;
        }
        let holding: Vec<u32> = self.holders[node as usize].iter().copied().collect();
        let mut started = 0;
        for shardlet in holding {
            if started == EVACUATION_BATCH_MAX {
                break;
            }
            let entry = &self.shardlets[shardlet as usize];
            if entry.lost || entry.busy || entry.degraded_since_ms.is_some() {
                continue;
            }
            let spread = self.config.policy.spread(entry.state.level);
            let Ok(Some(plan)) =
                plan_evacuation(&entry.state, NodeId(node), &self.map, &self.domains, spread)
            else {
                continue;
            };
            let bytes: u64 = plan
                .iter()
                .map(|a| a.bytes_moved(entry.state.size_bytes))
                .sum();
            match self.charge_background(shardlet, plan, bytes, true) {
                Grant::Granted => started += 1,
                Grant::WaitUntil { at_ms } => {
                    self.push(at_ms, Event::Evacuate { node });
                    return;
                }
            }
        }
        if !self.holders[node as usize].is_empty() {
            self.push(
                self.now_ms + BACKGROUND_COMMIT_DELAY_MS + 1,
                Event::Evacuate { node },
            );
        }
    }
}
