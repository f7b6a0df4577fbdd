//! From the layout (what the operator decided) and the node records' liveness (what the
//! controller observed) to the placement topology (`shardlet_core::Topology`) that
//! gateways and controllers place fragments on.
//!
//! A node's placement state is the most restrictive of the two:
//!
//! | layout | liveness | placement state |
//! |---|---|---|
//! | decommissioned | any | decommissioned |
//! | any other | down | down |
//! | draining | up, suspect | draining |
//! | active | draining (the controller drains a failing disk or a risky node) | draining |
//! | active | suspect | suspect (still takes fragments: a flapping heartbeat moves nothing) |
//! | active | up, or no record yet | up |
//!
//! The topology's epoch is the layout version, so a placement computed under one
//! version is recognisably computed under it.

use std::collections::BTreeMap;

use shardlet_core::{InvalidTopology, Node, NodeId, NodeState, Topology};

use super::record::{AdminState, LayoutRecord};

/// Each node's liveness from its node record (absent: up).
pub type Liveness = BTreeMap<NodeId, NodeState>;

/// The placement state of a node with `admin` state and `liveness` (table above).
pub fn placement_state(admin: AdminState, liveness: Option<NodeState>) -> NodeState {
    match (admin, liveness.unwrap_or(NodeState::Up)) {
        (AdminState::Decommissioned, _) | (_, NodeState::Decommissioned) => {
            NodeState::Decommissioned
        }
        (_, NodeState::Down) => NodeState::Down,
        (AdminState::Draining, _) | (_, NodeState::Draining) => NodeState::Draining,
        (AdminState::Active, NodeState::Suspect) => NodeState::Suspect,
        (AdminState::Active, NodeState::Up) => NodeState::Up,
    }
}

/// The placement topology of `layout` with `liveness` (every node of the layout,
/// decommissioned ones included: their slots stay where they are). An empty layout
/// gives the empty topology, on which every placement fails naming the missing nodes.
pub fn to_topology(
    layout: &LayoutRecord,
    liveness: &Liveness,
) -> Result<Topology, InvalidTopology> {
    if layout.nodes.is_empty() {
        return Ok(Topology::empty(layout.version));
    }
    let nodes = layout
        .nodes
        .iter()
        .map(|node| Node {
            id: node.id,
            name: node.name.clone(),
            address: node.address.clone(),
            region: node.region.clone(),
            zone: node.zone.clone(),
            capacity_bytes: node.capacity_bytes,
            // Free space is the controller's to measure; placement of new shardlets
            // only uses weights.
            free_bytes: node.capacity_bytes,
            weight: node.effective_weight(),
            state: placement_state(node.state, liveness.get(&node.id).copied()),
            latency_us: None,
        })
        .collect();
    Topology::new(layout.version, nodes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_placement_state_is_the_most_restrictive_of_layout_and_liveness() {
        use AdminState::*;
        use NodeState::*;
        let cases = [
            (Active, None, Up),
            (Active, Some(Up), Up),
            (Active, Some(Suspect), Suspect),
            (Active, Some(Down), Down),
            (Active, Some(NodeState::Draining), NodeState::Draining),
            (AdminState::Draining, Some(Up), NodeState::Draining),
            (AdminState::Draining, Some(Suspect), NodeState::Draining),
            (AdminState::Draining, Some(Down), Down),
            (
                AdminState::Decommissioned,
                Some(Up),
                NodeState::Decommissioned,
            ),
            (
                AdminState::Decommissioned,
                Some(Down),
                NodeState::Decommissioned,
            ),
        ];
        for (admin, liveness, expected) in cases {
            assert_eq!(
                placement_state(admin, liveness),
                expected,
                "{admin:?} {liveness:?}"
            );
        }
    }
}
