//! Transitions never leave a shardlet below its durability, at any step.
#![allow(clippy::unwrap_used)]

mod common;

use common::{copies, decide_by_default, placed, rs, topology, Cluster};
use proptest::prelude::*;
use shardlet_controller::policy::{decide, PolicyConfig, PolicyInput, SchemeTable};
use shardlet_controller::transition::{check_plan, plan_transition};
use shardlet_controller::view::Action;
use shardlet_core::{AccessClass, NodeId, RedundancyLevel};

fn is_delete(action: &Action) -> bool {
    matches!(action, Action::DeleteFragment { .. })
}

const LEVELS: [RedundancyLevel; 3] = [
    RedundancyLevel::Low,
    RedundancyLevel::Medium,
    RedundancyLevel::High,
];
const CLASSES: [AccessClass; 3] = [AccessClass::Cold, AccessClass::Warm, AccessClass::Hot];

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_intermediate_state_of_a_plan_keeps_a_complete_layout_at_target(
        seed in any::<u64>(),
        level in 0usize..3,
        from in 0usize..3,
        to in 0usize..3,
        from_risky in any::<bool>(),
        risky_node in 0u32..36,
    ) {
        let cluster = Cluster::new(topology(3, 3, 4));
        let config = PolicyConfig::default();
        let table = SchemeTable::new(&config, &cluster.map).unwrap();
        let level = LEVELS[level];
        let start = table.entry(level, CLASSES[from], from_risky).scheme;
        let state = placed(&cluster, seed, level, start);
        let risk = move |node: NodeId| if node.0 == risky_node { 0.5 } else { 0.001 };
        let input = PolicyInput { state: &state, class: CLASSES[to], node_risk: &risk, now_ms: 1 << 40 };
        let target = decide(&config, &table, &cluster.map, &cluster.domains, &input).unwrap();
        let plan = plan_transition(&state, &target).unwrap();
        let steps = check_plan(&state, &plan).map_err(|e| TestCaseError::fail(format!("seed {seed}: {e}")))?;
        for step in &steps {
            // The layout metadata points at is always complete and meets the target.
            prop_assert_eq!(step.committed_intact, step.committed_scheme.width());
            prop_assert!(config.meets_target(step.committed_scheme, level));
        }
        // The plan ends at the target, and old fragments are gone only after the commit.
        let commit = plan.iter().position(|a| matches!(a, Action::CommitLayout { .. }));
        if target.scheme != state.scheme || target.nodes != state.nodes() {
            let commit = commit.unwrap();
            let deletes_before_commit = plan[..commit].iter().any(is_delete);
            prop_assert!(!deletes_before_commit);
            prop_assert_eq!(steps.last().unwrap().committed_scheme, target.scheme);
        }
    }
}

#[test]
fn the_checker_rejects_a_plan_that_deletes_before_committing() {
    let cluster = Cluster::new(topology(3, 3, 4));
    let state = placed(&cluster, 3, RedundancyLevel::Medium, copies(3));
    let target = decide_by_default(&cluster, &state, AccessClass::Cold, &|_| 0.001, 1 << 40);
    let mut plan = plan_transition(&state, &target).unwrap();
    assert!(check_plan(&state, &plan).is_ok());
    // Move the first deletion to the front: the old layout breaks while committed.
    let delete = plan
        .iter()
        .position(|a| matches!(a, Action::DeleteFragment { .. }))
        .unwrap();
    let action = plan.remove(delete);
    plan.insert(0, action);
    assert!(check_plan(&state, &plan).is_err());
    // Commit before verify is rejected too.
    let mut plan = plan_transition(&state, &target).unwrap();
    let verify = plan
        .iter()
        .position(|a| matches!(a, Action::Verify { .. }))
        .unwrap();
    plan.remove(verify);
    assert!(check_plan(&state, &plan).is_err());
}

#[test]
fn adding_a_replica_copies_one_fragment_and_keeps_the_others() {
    let cluster = Cluster::new(topology(3, 3, 4));
    let state = placed(&cluster, 11, RedundancyLevel::Medium, copies(3));
    let target = decide_by_default(&cluster, &state, AccessClass::Hot, &|_| 0.001, 1 << 40);
    assert_eq!(target.scheme, copies(4));
    let plan = plan_transition(&state, &target).unwrap();
    let copies = plan
        .iter()
        .filter(|a| matches!(a, Action::CopyFragment { .. }))
        .count();
    let deletes = plan
        .iter()
        .filter(|a| matches!(a, Action::DeleteFragment { .. }))
        .count();
    assert_eq!((copies, deletes), (1, 0), "{plan:?}");
    assert!(plan.iter().all(|a| !matches!(a, Action::Reencode { .. })));
}

#[test]
fn a_target_equal_to_the_state_plans_nothing() {
    let cluster = Cluster::new(topology(3, 3, 4));
    let state = placed(&cluster, 1, RedundancyLevel::Low, rs(4, 2));
    let target = shardlet_controller::policy::Target {
        scheme: state.scheme,
        nodes: state.nodes(),
        reason: shardlet_controller::policy::Reason::Unchanged,
    };
    assert!(plan_transition(&state, &target).unwrap().is_empty());
}
