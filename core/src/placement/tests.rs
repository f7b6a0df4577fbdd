#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::topology::Node;

/// `shape[r][z]` = node count of zone z in region r; weights all 1.0; ids 1, 2, ….
fn topology(shape: &[Vec<usize>]) -> Topology {
    let mut nodes = Vec::new();
    for (region, zones) in shape.iter().enumerate() {
        for (zone, count) in zones.iter().enumerate() {
            for _ in 0..*count {
                nodes.push(node(nodes.len() as u32 + 1, region, zone, 1.0));
            }
        }
    }
    Topology::new(1, nodes).unwrap()
}

fn node(id: u32, region: usize, zone: usize, weight: f64) -> Node {
    Node {
        id: NodeId(id),
        name: format!("node-{id}"),
        address: format!("127.0.0.1:{}", 20_000 + id),
        region: format!("r{region}"),
        zone: format!("r{region}-z{zone}"),
        capacity_bytes: 1 << 40,
        free_bytes: 1 << 40,
        weight,
        state: NodeState::Up,
        latency_us: None,
    }
}

fn keys(count: u64) -> impl Iterator<Item = u64> {
    (0..count).map(|k| mix64(k ^ 0x5eed))
}

const ZONE: Spread = Spread {
    survive: FailureDomain::Zone,
};
const REGION: Spread = Spread {
    survive: FailureDomain::Region,
};
const NODE: Spread = Spread {
    survive: FailureDomain::Node,
};

/// Checks a placement against the rules independently of the implementation.
fn assert_valid(topology: &Topology, placement: &Placement, scheme: Scheme, spread: Spread) {
    assert_eq!(placement.nodes.len(), scheme.width());
    let distinct: HashSet<_> = placement.nodes.iter().collect();
    assert_eq!(distinct.len(), placement.nodes.len(), "{placement}");
    let (mut zones, mut regions) = (HashMap::new(), HashMap::new());
    for id in &placement.nodes {
        let node = topology.node(*id).unwrap();
        assert!(node.state.accepts_fragments(), "{placement} uses {id}");
        *zones.entry(node.zone.clone()).or_insert(0) += 1;
        *regions.entry(node.region.clone()).or_insert(0) += 1;
    }
    let cap = scheme.tolerated_losses();
    if spread.survive != FailureDomain::Node {
        assert!(zones.values().all(|n| *n <= cap), "{placement}: {zones:?}");
    }
    if spread.survive == FailureDomain::Region {
        assert!(
            regions.values().all(|n| *n <= cap),
            "{placement}: {regions:?}"
        );
    }
}

/// The largest valid placement, computed independently: per region, the sum over its
/// zones of min(cap, accepting nodes), then min(cap, that) at region level.
fn best_possible(topology: &Topology, scheme: Scheme, spread: Spread) -> usize {
    let cap = scheme.tolerated_losses();
    let accepting = |zone: &crate::topology::Zone| {
        zone.nodes
            .iter()
            .filter(|id| topology.node(**id).unwrap().state.accepts_fragments())
            .count()
    };
    topology
        .regions()
        .iter()
        .map(|region| {
            let in_region: usize = region
                .zones
                .iter()
                .map(|zone| match spread.survive {
                    FailureDomain::Node => accepting(zone),
                    _ => accepting(zone).min(cap),
                })
                .sum();
            match spread.survive {
                FailureDomain::Region => in_region.min(cap),
                _ => in_region,
            }
        })
        .sum()
}

#[test]
fn dev_cluster_places_rs_8_4_across_four_zones() {
    let text = include_str!("../../../examples/topology.toml");
    let topology = Topology::from_toml_str(text, "example").unwrap();
    let map = PlacementMap::new(&topology);
    let scheme = Scheme::ErasureCoded { data: 8, parity: 4 };
    for key in keys(2_000) {
        let placement = map.place(key, scheme, ZONE).unwrap();
        assert_valid(&topology, &placement, scheme, ZONE);
        assert_eq!(placement.epoch, 1);
    }
    // Two regions cannot survive a region loss with RS(8,4): 6 + 6 > 4 + 4.
    let error = map.place(1, scheme, REGION).unwrap_err().to_string();
    assert!(error.contains("needs 12 distinct nodes"), "{error}");
    assert!(error.contains("only 8 are possible"), "{error}");
    let replicated = Scheme::Replicated { copies: 3 };
    for key in keys(2_000) {
        let placement = map.place(key, replicated, REGION).unwrap();
        assert_valid(&topology, &placement, replicated, REGION);
    }
}

#[test]
fn infeasible_spread_names_the_reason() {
    let topology = topology(&[vec![3, 3, 3]]);
    let scheme = Scheme::ErasureCoded { data: 8, parity: 4 };
    let error = place(&topology, 7, scheme, ZONE).unwrap_err().to_string();
    assert!(
        error.starts_with("rs(8,4) needs 12 distinct nodes with at most 4 per zone"),
        "{error}"
    );
    assert!(error.contains("only 9 are possible"), "{error}");
    assert!(error.contains("r0-z0: 3"), "{error}");

    let single = Scheme::Replicated { copies: 1 };
    let error = place(&topology, 7, single, ZONE).unwrap_err().to_string();
    assert!(error.contains("tolerates no lost fragment"), "{error}");
    assert!(place(&topology, 7, single, NODE).is_ok());
}

#[test]
fn tight_constraints_succeed_through_the_exhaustive_pass() {
    // Exactly one valid shape: 4 fragments per zone of 4 nodes, 3 zones.
    let topology = topology(&[vec![4, 4, 4]]);
    let map = PlacementMap::new(&topology);
    let scheme = Scheme::ErasureCoded { data: 8, parity: 4 };
    for key in keys(500) {
        let placement = map.place(key, scheme, ZONE).unwrap();
        assert_valid(&topology, &placement, scheme, ZONE);
    }
}

#[test]
fn adding_a_node_moves_about_one_in_n_plus_one() {
    // 20 equal nodes in 4 zones, then a 21st in zone 0.
    let before = topology(&[vec![5, 5], vec![5, 5]]);
    let mut nodes = before.nodes().to_vec();
    nodes.push(node(21, 0, 0, 1.0));
    let after = Topology::new(2, nodes).unwrap();
    for scheme in [
        Scheme::Replicated { copies: 3 },
        Scheme::ErasureCoded { data: 4, parity: 2 },
    ] {
        let (mut fragments, mut to_new_node, mut elsewhere) = (0usize, 0usize, 0usize);
        for (old, new) in placed_before_and_after(&before, &after, scheme, 10_000) {
            fragments += scheme.width();
            for (was, is) in moved_fragments(scheme, &old, &new) {
                let _ = was;
                if is == NodeId(21) {
                    to_new_node += 1;
                } else {
                    elsewhere += 1;
                }
            }
        }
        let ideal = fragments as f64 / 21.0;
        println!("{scheme}: moved to new node {to_new_node} of {fragments} (ideal {ideal:.0}), second-order {elsewhere}");
        // The new node should receive its fair share, 1/21 of all fragments: with
        // ≥ 30,000 fragments the binomial σ is ≈ 1 % of the ideal count... ±10 %
        // allows for that and for the weighting rounding; it fails for any scheme
        // that moves 2× or 0.5× too much.
        let share = to_new_node as f64 / ideal;
        assert!((0.9..=1.1).contains(&share), "{scheme}: {share}");
        // Second-order moves: the new node changed a zone count, so under the spread
        // rule (here binding: 3 or 6 fragments over 4 zones, at most 2 per zone) a
        // later fragment is refused or newly admitted; for erasure-coded fragments
        // also an earlier fragment's old node, free again, is taken by a later
        // fragment whose duplicate-refused attempt now succeeds (replicas are
        // interchangeable, so for them only the set counts). Measured ratios:
        // replicated(3) 0.10, rs(4,2) 0.79 (docs/placement.md); the bounds leave
        // room for sampling noise and catch any cascade that grows.
        let second_order = elsewhere as f64 / to_new_node as f64;
        let bound = match scheme {
            Scheme::Replicated { .. } => 0.2,
            Scheme::ErasureCoded { .. } => 1.0,
        };
        assert!(second_order <= bound, "{scheme}: {second_order}");
    }
}

#[test]
fn weights_are_roughly_respected() {
    let mut nodes = vec![node(1, 0, 0, 1.0), node(2, 0, 1, 2.0), node(3, 0, 2, 4.0)];
    nodes.push(node(4, 0, 3, 0.5));
    let topology = Topology::new(1, nodes).unwrap();
    let map = PlacementMap::new(&topology);
    let mut counts = [0f64; 5];
    let total = 100_000;
    for key in keys(total) {
        let placement = map
            .place(key, Scheme::Replicated { copies: 1 }, NODE)
            .unwrap();
        counts[placement.nodes[0].0 as usize] += 1.0;
    }
    let weights = [0.0, 1.0, 2.0, 4.0, 0.5];
    for id in 1..=4 {
        let expected = total as f64 * weights[id] / 7.5;
        // σ ≤ 0.5 % of the expected counts here; 5 % is a generous, still meaningful band.
        assert!((counts[id] / expected - 1.0).abs() < 0.05, "{counts:?}");
    }
}

#[test]
fn replacement_keeps_survivors_and_the_spread() {
    let topology = topology(&[vec![3, 3], vec![3, 3]]);
    let map = PlacementMap::new(&topology);
    let scheme = Scheme::ErasureCoded { data: 4, parity: 2 };
    for key in keys(300) {
        let placement = map.place(key, scheme, ZONE).unwrap();
        let lost = (key % 6) as usize;
        let dead = placement.nodes[lost];
        let down = topology.with_node_state(2, dead, NodeState::Down).unwrap();
        let down_map = PlacementMap::new(&down);
        let mut current: Vec<Option<NodeId>> = placement.nodes.iter().copied().map(Some).collect();
        current[lost] = None;
        let replacement = down_map
            .place_replacement(key, scheme, ZONE, &current, lost, &[dead])
            .unwrap();
        let mut repaired = placement.clone();
        repaired.nodes[lost] = replacement;
        assert_valid(&down, &repaired, scheme, ZONE);
        assert_ne!(replacement, dead);
        // When a fresh placement keeps the survivors, repair agrees with it.
        let fresh = down_map.place(key, scheme, ZONE).unwrap();
        let survivors_kept = (0..6).all(|i| i == lost || fresh.nodes[i] == placement.nodes[i]);
        if survivors_kept {
            assert_eq!(fresh.nodes[lost], replacement);
        }
    }
    let bad = map.place_replacement(1, scheme, ZONE, &[None; 3], 0, &[]);
    assert!(matches!(
        bad,
        Err(PlacementError::FragmentOutOfRange { .. })
    ));
}

#[test]
fn extra_targets_prefer_free_low_latency_nodes_and_keep_the_spread() {
    let mut nodes = Vec::new();
    for id in 1..=12u32 {
        let mut n = node(id, 0, (id as usize - 1) % 4, 1.0);
        n.latency_us = Some(if id <= 4 { 200 } else { 5_000 });
        n.free_bytes = if id % 2 == 0 { 1 << 40 } else { 1 << 36 };
        nodes.push(n);
    }
    nodes[11].state = NodeState::Suspect;
    let topology = Topology::new(1, nodes).unwrap();
    let map = PlacementMap::new(&topology);
    let scheme = Scheme::Replicated { copies: 3 };
    let mut first_choice = HashMap::new();
    for key in keys(2_000) {
        let current = map.place(key, scheme, ZONE).unwrap().nodes;
        let ranked = map
            .rank_extra_targets(key, scheme, ZONE, &current, &[NodeId(5)], 3)
            .unwrap();
        assert_eq!(ranked.len(), 3);
        assert!(ranked.iter().all(|n| !current.contains(n)));
        assert!(!ranked.contains(&NodeId(5)) && !ranked.contains(&NodeId(12)));
        let mut all = current.clone();
        all.extend(&ranked);
        let mut zones = HashMap::new();
        for id in &all {
            *zones.entry(&topology.node(*id).unwrap().zone).or_insert(0) += 1;
        }
        assert!(zones.values().all(|n| *n <= 2), "{zones:?}");
        *first_choice.entry(ranked[0]).or_insert(0) += 1;
    }
    // Nodes 2 and 4: empty and near. They should be first far more often than the
    // far, nearly full odd nodes, yet not always (load spreads).
    let good =
        first_choice.get(&NodeId(2)).unwrap_or(&0) + first_choice.get(&NodeId(4)).unwrap_or(&0);
    let poor: i32 = [7, 9, 11]
        .iter()
        .map(|id| first_choice.get(&NodeId(*id)).unwrap_or(&0))
        .sum();
    assert!(good > 10 * poor.max(1), "{first_choice:?}");
    assert!(first_choice.len() > 2, "{first_choice:?}");
}

/// (old node, new node) for every fragment whose bytes must move. Replicas are
/// interchangeable, so for a replicated scheme only the set difference moves.
/// Where each of `count` keys is placed with `scheme` (zone spread) on `before` and
/// on `after`.
fn placed_before_and_after(
    before: &Topology,
    after: &Topology,
    scheme: Scheme,
    count: u64,
) -> Vec<(Placement, Placement)> {
    let (old_map, new_map) = (PlacementMap::new(before), PlacementMap::new(after));
    keys(count)
        .map(|key| {
            (
                old_map.place(key, scheme, ZONE).unwrap(),
                new_map.place(key, scheme, ZONE).unwrap(),
            )
        })
        .collect()
}

fn moved_fragments(scheme: Scheme, old: &Placement, new: &Placement) -> Vec<(NodeId, NodeId)> {
    match scheme {
        Scheme::Replicated { .. } => {
            let gone: Vec<NodeId> = old
                .nodes
                .iter()
                .filter(|n| !new.nodes.contains(n))
                .copied()
                .collect();
            let added: Vec<NodeId> = new
                .nodes
                .iter()
                .filter(|n| !old.nodes.contains(n))
                .copied()
                .collect();
            gone.into_iter().zip(added).collect()
        }
        Scheme::ErasureCoded { .. } => old
            .nodes
            .iter()
            .zip(&new.nodes)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (*a, *b))
            .collect(),
    }
}

fn random_topology() -> impl Strategy<Value = Topology> {
    prop::collection::vec(
        prop::collection::vec(
            (
                1usize..=5,
                prop::collection::vec((0.25f64..4.0, 0u8..10), 5),
            ),
            1..=4,
        ),
        1..=3,
    )
    .prop_map(|regions| {
        let mut nodes = Vec::new();
        for (r, zones) in regions.iter().enumerate() {
            for (z, (count, traits)) in zones.iter().enumerate() {
                for (weight, state) in traits.iter().take(*count) {
                    let mut n = node(nodes.len() as u32 + 1, r, z, *weight);
                    n.state = match state {
                        0 => NodeState::Down,
                        1 => NodeState::Draining,
                        2 => NodeState::Suspect,
                        3 => NodeState::Decommissioned,
                        _ => NodeState::Up,
                    };
                    nodes.push(n);
                }
            }
        }
        Topology::new(1, nodes).unwrap()
    })
}

fn random_scheme() -> impl Strategy<Value = Scheme> {
    prop_oneof![
        (1u8..=5).prop_map(|copies| Scheme::Replicated { copies }),
        (1u8..=10, 1u8..=4).prop_map(|(data, parity)| Scheme::ErasureCoded { data, parity }),
    ]
}

fn random_spread() -> impl Strategy<Value = Spread> {
    prop_oneof![Just(NODE), Just(ZONE), Just(REGION)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn placement_is_deterministic(topology in random_topology(), scheme in random_scheme(),
                                  spread in random_spread(), key: u64) {
        let first = place(&topology, key, scheme, spread);
        let rebuilt = Topology::new(topology.epoch(), topology.nodes().iter().rev().cloned().collect()).unwrap();
        prop_assert_eq!(first, place(&rebuilt, key, scheme, spread));
    }

    #[test]
    fn spread_always_holds_or_the_error_is_honest(topology in random_topology(), scheme in random_scheme(),
                                                  spread in random_spread(), key: u64) {
        let possible = best_possible(&topology, scheme, spread);
        let cap_zero = spread.survive != FailureDomain::Node && scheme.tolerated_losses() == 0;
        match place(&topology, key, scheme, spread) {
            Ok(placement) => {
                assert_valid(&topology, &placement, scheme, spread);
                prop_assert!(!cap_zero);
            }
            Err(error) => {
                prop_assert!(cap_zero || possible < scheme.width(), "{} (possible {})", error, possible);
            }
        }
    }

    #[test]
    fn removing_a_node_moves_only_what_it_held(
        topology in random_topology(), scheme in random_scheme(), spread in random_spread(),
        victim_pick: usize, decommission: bool,
    ) {
        let victim = topology.nodes()[victim_pick % topology.nodes().len()].id;
        let state = if decommission { NodeState::Decommissioned } else { NodeState::Down };
        let after = topology.with_node_state(2, victim, state).unwrap();
        let (old_map, new_map) = (PlacementMap::new(&topology), PlacementMap::new(&after));
        for key in keys(200) {
            let (Ok(old), Ok(new)) = (old_map.place(key, scheme, spread), new_map.place(key, scheme, spread)) else {
                continue;
            };
            if !old.nodes.contains(&victim) {
                prop_assert_eq!(&old.nodes, &new.nodes);
            } else {
                // The victim's fragment moves. Later fragments can move too (second
                // order): the spread rule now counts a different zone, so a fragment
                // whose earlier attempt was refused for zone/region fullness may now be
                // accepted, or the new node may be one a later fragment held. Bound:
                // the victim's fragment plus at most everything after it.
                let first = old.nodes.iter().position(|n| *n == victim).unwrap();
                prop_assert!(old.nodes[..first] == new.nodes[..first]);
                prop_assert!(!new.nodes.contains(&victim));
            }
        }
    }
}

#[test]
fn removal_second_order_moves_are_rare() {
    // Measured over many keys on a 4-zone cluster: how many fragments move per
    // placement that held the removed node. 1.0 would be perfect.
    let topology = topology(&[vec![6, 6], vec![6, 6]]);
    let after = topology
        .with_node_state(2, NodeId(8), NodeState::Down)
        .unwrap();
    for scheme in [
        Scheme::Replicated { copies: 3 },
        Scheme::ErasureCoded { data: 8, parity: 4 },
    ] {
        let (mut affected, mut moved, mut unaffected_changed) = (0usize, 0usize, 0usize);
        for (old, new) in placed_before_and_after(&topology, &after, scheme, 20_000) {
            let changed = moved_fragments(scheme, &old, &new).len();
            if old.nodes.contains(&NodeId(8)) {
                affected += 1;
                moved += changed;
            } else if changed > 0 {
                unaffected_changed += 1;
            }
        }
        assert_eq!(unaffected_changed, 0);
        let per_affected = moved as f64 / affected as f64;
        println!(
            "{scheme}: {affected} placements held the node; {per_affected:.3} fragments moved each"
        );
        assert!(per_affected >= 1.0);
        // Ideal is 1.0. The spread rule adds second-order moves when a zone count
        // changes: measured replicated(3) ≈ 1.04, rs(8,4) (12 fragments, at most 4
        // per zone, 4 zones: very binding) ≈ 1.55. Bounds leave room for noise.
        let bound = match scheme {
            Scheme::Replicated { .. } => 1.1,
            Scheme::ErasureCoded { .. } => 2.0,
        };
        assert!(per_affected <= bound, "{scheme}: {per_affected}");
    }
}
