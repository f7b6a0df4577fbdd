//! Repair planning: spread, priority, idempotence, resumption, scrub findings.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{copies, placed, rs, topology, Cluster};
use proptest::prelude::*;
use shardlet_controller::repair::{
    order_repairs, plan_evacuation, plan_repair, RepairError, RepairInput,
};
use shardlet_controller::scheduler::{schedule, SchedulerConfig};
use shardlet_controller::scrub::{classify, lost_locations, Finding, OrphanLedger};
use shardlet_controller::view::{Action, FragmentLocation, ShardletState, StoredFragment};
use shardlet_core::{FragmentId, Generation, NodeId, NodeState, RedundancyLevel, Scheme, Spread};

fn repair(
    cluster: &Cluster,
    state: &ShardletState,
    down: &[NodeId],
    stored: &BTreeSet<StoredFragment>,
) -> Result<Option<shardlet_controller::repair::RepairPlan>, RepairError> {
    let lost = |location: &FragmentLocation| down.contains(&location.node);
    let is_stored = |fragment: &StoredFragment| stored.contains(fragment);
    let risk = |_: NodeId| 0.001;
    let input = RepairInput {
        map: &cluster.map,
        domains: &cluster.domains,
        spread: Spread::for_level(state.level),
        lost: &lost,
        stored: &is_stored,
        node_risk: &risk,
    };
    plan_repair(state, &input)
}

fn committed(plan: &shardlet_controller::repair::RepairPlan) -> Vec<FragmentLocation> {
    plan.actions
        .iter()
        .find_map(|a| match a {
            Action::CommitLayout { new_locations, .. } => Some(new_locations.clone()),
            _ => None,
        })
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn repair_never_places_two_fragments_in_one_zone_when_avoidable(
        seed in any::<u64>(),
        copies in 2u8..=4,
        lost_count in 1usize..=2,
    ) {
        // Four zones of four nodes: up to four replicas always fit one per zone.
        let cluster = Cluster::new(topology(2, 2, 4));
        let scheme = Scheme::Replicated { copies };
        let state = placed(&cluster, seed, RedundancyLevel::Medium, scheme);
        let zones: BTreeSet<String> = state.nodes().iter().map(|n| cluster.zone_of(*n)).collect();
        prop_assert_eq!(zones.len(), usize::from(copies), "initial placement already doubles up");
        let down: Vec<NodeId> = state.nodes().into_iter().take(lost_count.min(usize::from(copies) - 1)).collect();
        let degraded = cluster.with_down(&down);
        let plan = repair(&degraded, &state, &down, &BTreeSet::new()).unwrap().unwrap();
        let after: Vec<NodeId> = committed(&plan).iter().map(|l| l.node).collect();
        let zones: BTreeSet<String> = after.iter().map(|n| cluster.zone_of(*n)).collect();
        prop_assert_eq!(zones.len(), after.len(), "{:?}", after);
        prop_assert!(after.iter().all(|n| !down.contains(n)));
    }

    #[test]
    fn planning_twice_gives_the_same_actions_and_a_half_done_repair_continues(
        seed in any::<u64>(),
        lost_count in 1usize..=3,
    ) {
        let cluster = Cluster::new(topology(3, 3, 4));
        let state = placed(&cluster, seed, RedundancyLevel::Medium, rs(6, 3));
        let down: Vec<NodeId> = state.nodes().into_iter().take(lost_count).collect();
        let degraded = cluster.with_down(&down);
        let first = repair(&degraded, &state, &down, &BTreeSet::new()).unwrap().unwrap();
        let second = repair(&degraded, &state, &down, &BTreeSet::new()).unwrap().unwrap();
        prop_assert_eq!(&first, &second);
        // The rebuilt fragments already sit on their targets (the shell crashed after
        // writing, before committing): the re-plan skips the writes, keeps the commit.
        let outputs: BTreeSet<StoredFragment> = first.actions.iter().flat_map(|a| match a {
            Action::Reconstruct { outputs, .. } => outputs.clone(),
            _ => Vec::new(),
        }).collect();
        prop_assert_eq!(outputs.len(), lost_count);
        let resumed = repair(&degraded, &state, &down, &outputs).unwrap().unwrap();
        let rebuilds_again = resumed.actions.iter().any(|a| matches!(a, Action::Reconstruct { .. }));
        prop_assert!(!rebuilds_again);
        prop_assert_eq!(committed(&resumed), committed(&first));
    }
}

#[test]
fn replicated_shardlet_is_copied_from_a_survivor_and_coded_one_reconstructed_from_k() {
    let cluster = Cluster::new(topology(3, 3, 4));
    let replicated = placed(&cluster, 1, RedundancyLevel::Medium, copies(3));
    let down = [replicated.fragments[1].node];
    let plan = repair(
        &cluster.with_down(&down),
        &replicated,
        &down,
        &BTreeSet::new(),
    )
    .unwrap()
    .unwrap();
    let Action::CopyFragment { source, target, .. } = &plan.actions[0] else {
        panic!("{:?}", plan.actions);
    };
    assert_ne!(source.node, down[0]);
    assert_eq!(target.fragment.generation, Generation(2));
    assert_eq!(plan.spare_fragments, 1);

    let coded = placed(&cluster, 2, RedundancyLevel::Medium, rs(6, 3));
    let down = [coded.fragments[0].node, coded.fragments[4].node];
    let plan = repair(&cluster.with_down(&down), &coded, &down, &BTreeSet::new())
        .unwrap()
        .unwrap();
    let Action::Reconstruct {
        sources, outputs, ..
    } = &plan.actions[0]
    else {
        panic!("{:?}", plan.actions);
    };
    assert_eq!((sources.len(), outputs.len()), (6, 2));
    assert!(sources.iter().all(|s| !down.contains(&s.node)));
    let Some(Action::CommitLayout {
        expected_generation,
        new_generation,
        ..
    }) = plan.actions.last()
    else {
        panic!("last action is not the commit");
    };
    assert_eq!(
        (*expected_generation, *new_generation),
        (Generation(1), Generation(2))
    );
}

#[test]
fn nothing_lost_means_no_plan_and_too_much_lost_is_reported() {
    let cluster = Cluster::new(topology(3, 3, 4));
    let state = placed(&cluster, 4, RedundancyLevel::Low, rs(4, 2));
    assert_eq!(
        repair(&cluster, &state, &[], &BTreeSet::new()).unwrap(),
        None
    );
    let down: Vec<NodeId> = state.nodes().into_iter().take(3).collect();
    let result = repair(&cluster.with_down(&down), &state, &down, &BTreeSet::new());
    assert!(
        matches!(
            result,
            Err(RepairError::Unrecoverable {
                usable: 3,
                required: 4,
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn most_endangered_first_then_riskiest() {
    let cluster = Cluster::new(topology(3, 3, 4));
    let mut plans = Vec::new();
    for (seed, lost) in [(10u64, 1usize), (11, 3), (12, 2), (13, 3)] {
        let state = placed(&cluster, seed, RedundancyLevel::Medium, rs(6, 3));
        let down: Vec<NodeId> = state.nodes().into_iter().take(lost).collect();
        let mut plan = repair(&cluster.with_down(&down), &state, &down, &BTreeSet::new())
            .unwrap()
            .unwrap();
        plan.holder_risk_max = if seed == 13 { 0.9 } else { 0.1 };
        plans.push(plan);
    }
    order_repairs(&mut plans);
    let spares: Vec<(usize, f64)> = plans
        .iter()
        .map(|p| (p.spare_fragments, p.holder_risk_max))
        .collect();
    assert_eq!(spares, vec![(0, 0.9), (0, 0.1), (1, 0.1), (2, 0.1)]);
}

#[test]
fn scheduler_keeps_every_node_under_its_limit_and_skips_past_busy_ones() {
    let cluster = Cluster::new(topology(3, 3, 8));
    let mut plans = Vec::new();
    for seed in 0..40 {
        let state = placed(&cluster, seed, RedundancyLevel::Medium, rs(6, 3));
        let down = [state.fragments[0].node];
        plans.push(
            repair(&cluster.with_down(&down), &state, &down, &BTreeSet::new())
                .unwrap()
                .unwrap(),
        );
    }
    let config = SchedulerConfig {
        per_node_max: 2,
        in_flight_max: 1_000,
    };
    let mut in_flight = BTreeMap::new();
    let started = schedule(&plans, &mut in_flight, 0, config);
    assert!(!started.is_empty() && started.len() < plans.len());
    assert!(in_flight.values().all(|count| *count <= 2));
    let mut recount: BTreeMap<NodeId, usize> = BTreeMap::new();
    for position in &started {
        for node in plans[*position].nodes() {
            *recount.entry(node).or_default() += 1;
        }
    }
    assert_eq!(recount, in_flight);
    // A plan was skipped because a node was full, yet a later one started.
    let skipped = (0..plans.len()).find(|p| !started.contains(p)).unwrap();
    assert!(started.iter().any(|p| *p > skipped));
    let capped = schedule(
        &plans,
        &mut BTreeMap::new(),
        0,
        SchedulerConfig {
            per_node_max: 2,
            in_flight_max: 3,
        },
    );
    assert_eq!(capped.len(), 3);
}

#[test]
fn evacuation_copies_from_the_risky_node_then_deletes_after_commit() {
    let cluster = Cluster::new(topology(3, 3, 4));
    let state = placed(&cluster, 21, RedundancyLevel::Medium, rs(6, 3));
    let risky = state.fragments[2].node;
    let draining = cluster.with_state(risky, NodeState::Draining);
    let plan = plan_evacuation(
        &state,
        risky,
        &draining.map,
        &draining.domains,
        Spread::for_level(state.level),
    )
    .unwrap()
    .unwrap();
    assert!(
        matches!(&plan[0], Action::CopyFragment { source, target, .. } if source.node == risky && target.node != risky)
    );
    assert!(matches!(&plan[2], Action::CommitLayout { .. }));
    assert!(matches!(&plan[3], Action::DeleteFragment { target } if target.node == risky));
    assert!(shardlet_controller::transition::check_plan(&state, &plan).is_ok());
    assert_eq!(
        plan_evacuation(
            &state,
            NodeId(999),
            &draining.map,
            &draining.domains,
            Spread::for_level(state.level)
        )
        .unwrap(),
        None
    );
}

#[test]
fn scrub_classifies_missing_corrupt_stale_and_orphaned_fragments() {
    let cluster = Cluster::new(topology(3, 3, 4));
    let mut state = placed(&cluster, 31, RedundancyLevel::Low, rs(4, 2));
    state.generation = Generation(3);
    for location in &mut state.fragments {
        location.generation = Generation(3);
    }
    let id = |location: &FragmentLocation| state.fragment_id(location);
    let mut listings: BTreeMap<NodeId, BTreeSet<FragmentId>> = BTreeMap::new();
    for location in &state.fragments[1..] {
        listings
            .entry(location.node)
            .or_default()
            .insert(id(location));
    }
    // fragment 0's node lists nothing of it: missing.
    listings.entry(state.fragments[0].node).or_default();
    // An old generation of fragment 1 on another node: stale.
    let stale = FragmentId::new(state.id, Generation(2), state.fragments[1].index);
    let elsewhere = NodeId(35);
    listings.entry(elsewhere).or_default().insert(stale);
    // A fragment of an unknown shardlet: orphan.
    let orphan = FragmentId::new(
        common::shardlet_id(999),
        Generation(1),
        shardlet_core::FragmentIndex(0),
    );
    listings.entry(elsewhere).or_default().insert(orphan);
    let corrupt: BTreeSet<StoredFragment> = [StoredFragment {
        node: state.fragments[2].node,
        fragment: id(&state.fragments[2]),
    }]
    .into();
    let findings = classify(std::slice::from_ref(&state), &listings, &corrupt);
    assert!(findings.contains(&Finding::Missing(state.id, state.fragments[0])));
    assert!(findings.contains(&Finding::Corrupt(state.id, state.fragments[2])));
    assert!(findings.contains(&Finding::Stale(StoredFragment {
        node: elsewhere,
        fragment: stale
    })));
    assert!(findings.contains(&Finding::Orphan(StoredFragment {
        node: elsewhere,
        fragment: orphan
    })));
    assert_eq!(findings.len(), 4);
    assert_eq!(lost_locations(&findings).len(), 2);

    // Stale goes at once; the orphan only after its grace period.
    let mut ledger = OrphanLedger::default();
    let first = ledger.deletions(&findings, 0, 3_600_000);
    assert_eq!(
        first,
        vec![Action::DeleteFragment {
            target: StoredFragment {
                node: elsewhere,
                fragment: stale
            }
        }]
    );
    assert_eq!(ledger.deletions(&findings, 3_599_999, 3_600_000).len(), 1);
    assert_eq!(ledger.deletions(&findings, 3_600_000, 3_600_000).len(), 2);
}
