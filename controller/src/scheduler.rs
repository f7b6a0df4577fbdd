//! Parallel reconstruction: start as many repairs as possible at once, across
//! different source and target nodes, without overloading any node.
//!
//! Greedy in priority order (the caller sorts with [`crate::repair::order_repairs`]):
//! a plan starts when every node it touches has fewer than `per_node_max` operations in
//! flight and the total is below `in_flight_max`. A plan that cannot start does not
//! block the ones behind it that use other nodes, which is what keeps hundreds of
//! nodes busy after a failure instead of one queue draining behind the busiest node.

use std::collections::BTreeMap;

use shardlet_core::NodeId;

use crate::repair::RepairPlan;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub per_node_max: usize,
    pub in_flight_max: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            per_node_max: 2,
            in_flight_max: 1_024,
        }
    }
}

/// Which of `queue` to start now, given what each node is already doing. Returns
/// queue positions, in order; `in_flight` is updated to include them.
pub fn schedule(
    queue: &[RepairPlan],
    in_flight: &mut BTreeMap<NodeId, usize>,
    running: usize,
    config: SchedulerConfig,
) -> Vec<usize> {
    let mut started = Vec::new();
    for (position, plan) in queue.iter().enumerate() {
        if running + started.len() >= config.in_flight_max {
            break;
        }
        let nodes = plan.nodes();
        let free = nodes
            .iter()
            .all(|node| in_flight.get(node).copied().unwrap_or(0) < config.per_node_max);
        if free {
            for node in nodes {
                *in_flight.entry(node).or_default() += 1;
            }
            started.push(position);
        }
    }
    started
}

/// Releases a finished plan's nodes.
pub fn finish(plan: &RepairPlan, in_flight: &mut BTreeMap<NodeId, usize>) {
    for node in plan.nodes() {
        if let Some(count) = in_flight.get_mut(&node) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&node);
            }
        }
    }
}
