//! The redundancy policy: durability targets, hysteresis, placement of targets.
#![allow(clippy::unwrap_used)]

mod common;

use common::{copies, decide_by_default, placed, rs, topology, Cluster};
use proptest::prelude::*;
use shardlet_controller::durability::DurabilityModel;
use shardlet_controller::heat::{classify, HeatConfig};
use shardlet_controller::policy::{
    decide, PolicyConfig, PolicyError, PolicyInput, Reason, SchemeTable,
};
use shardlet_core::{AccessClass, NodeId, RedundancyLevel, Scheme};

const LEVELS: [RedundancyLevel; 3] = [
    RedundancyLevel::Low,
    RedundancyLevel::Medium,
    RedundancyLevel::High,
];
const CLASSES: [AccessClass; 3] = [AccessClass::Cold, AccessClass::Warm, AccessClass::Hot];
const DAY_MS: u64 = 86_400_000;

#[test]
fn default_table_matches_the_documented_rows() {
    let cluster = Cluster::new(topology(3, 3, 4));
    let config = PolicyConfig::default();
    let table = SchemeTable::new(&config, &cluster.map).unwrap();
    let scheme = |level, class| table.entry(level, class, false).scheme;
    assert_eq!(scheme(RedundancyLevel::Low, AccessClass::Cold), rs(4, 2));
    assert_eq!(scheme(RedundancyLevel::Medium, AccessClass::Cold), rs(6, 3));
    assert_eq!(scheme(RedundancyLevel::High, AccessClass::Cold), rs(8, 4));
    assert_eq!(
        scheme(RedundancyLevel::Medium, AccessClass::Warm),
        copies(3)
    );
    assert_eq!(scheme(RedundancyLevel::Medium, AccessClass::Hot), copies(4));
    assert_eq!(scheme(RedundancyLevel::High, AccessClass::Warm), copies(4));
    assert_eq!(
        table
            .entry(RedundancyLevel::Medium, AccessClass::Cold, true)
            .scheme,
        rs(6, 4)
    );
}

#[test]
fn warm_replicas_of_high_data_span_distinct_zones_and_regions() {
    let cluster = Cluster::new(topology(3, 2, 4));
    let config = PolicyConfig::default();
    let table = SchemeTable::new(&config, &cluster.map).unwrap();
    for seed in 0..200 {
        let state = placed(
            &cluster,
            seed,
            RedundancyLevel::High,
            Scheme::ErasureCoded { data: 8, parity: 4 },
        );
        let risk = |_: NodeId| 0.0;
        let input = PolicyInput {
            state: &state,
            class: AccessClass::Warm,
            node_risk: &risk,
            now_ms: DAY_MS * 10,
        };
        let target = decide(&config, &table, &cluster.map, &cluster.domains, &input).unwrap();
        assert_eq!(target.reason, Reason::Heat);
        let zones: std::collections::BTreeSet<String> =
            target.nodes.iter().map(|n| cluster.zone_of(*n)).collect();
        let regions: std::collections::BTreeSet<String> =
            target.nodes.iter().map(|n| cluster.region_of(*n)).collect();
        assert_eq!(
            zones.len(),
            target.nodes.len(),
            "seed {seed}: {:?}",
            target.nodes
        );
        assert!(regions.len() >= 2, "seed {seed}: {:?}", target.nodes);
    }
}

#[test]
fn a_topology_that_cannot_meet_a_target_is_refused_not_silently_accepted() {
    // One node: nothing survives a zone loss, no replication fits.
    let cluster = Cluster::new(topology(1, 1, 1));
    let result = SchemeTable::new(&PolicyConfig::default(), &cluster.map);
    assert!(
        matches!(result, Err(PolicyError::NoSchemeMeetsTarget { .. })),
        "{result:?}"
    );
}

#[test]
fn risky_holder_gets_an_extra_tolerated_loss_before_it_fails_and_is_avoided() {
    let cluster = Cluster::new(topology(3, 3, 4));
    let state = placed(&cluster, 9, RedundancyLevel::Medium, rs(6, 3));
    let risky = state.fragments[0].node;
    let risk = move |node: NodeId| if node == risky { 0.9 } else { 0.001 };
    // Even right after a change (dwell), risk acts at once.
    let target = decide_by_default(&cluster, &state, AccessClass::Cold, &risk, 1);
    assert_eq!(target.reason, Reason::RiskEntered);
    assert_eq!(target.scheme, rs(6, 4));
    assert!(!target.nodes.contains(&risky));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_scheme_the_policy_chooses_meets_its_level_target(
        regions in 1u32..=3,
        zones in 1u32..=4,
        per_zone in 1u32..=5,
        annual_failure_rate in 0.005f64..0.08,
        repair_hours in 1.0f64..72.0,
        seed in any::<u64>(),
        level in 0usize..3,
        class in 0usize..3,
        risk in 0.0f64..1.0,
    ) {
        let cluster = Cluster::new(topology(regions, zones, per_zone));
        let config = PolicyConfig {
            durability: DurabilityModel { annual_failure_rate, repair_hours },
            ..PolicyConfig::default()
        };
        let table = match SchemeTable::new(&config, &cluster.map) {
            Ok(table) => table,
            Err(PolicyError::NoSchemeMeetsTarget { .. }) => return Ok(()),
            Err(other) => panic!("{other}"),
        };
        for ((row_level, _, _), entry) in table.rows() {
            prop_assert!(config.meets_target(entry.scheme, *row_level), "{:?}", entry);
        }
        let level = LEVELS[level];
        let start = table.entry(level, AccessClass::Cold, false).scheme;
        let state = placed(&cluster, seed, level, start);
        let risky = state.fragments[0].node;
        let node_risk = move |node: NodeId| if node == risky { risk } else { 0.001 };
        let input = PolicyInput { state: &state, class: CLASSES[class], node_risk: &node_risk, now_ms: 30 * DAY_MS };
        match decide(&config, &table, &cluster.map, &cluster.domains, &input) {
            Ok(target) => {
                prop_assert!(config.meets_target(target.scheme, level), "{:?}", target);
                prop_assert_eq!(target.nodes.len(), target.scheme.width());
                let distinct: std::collections::BTreeSet<_> = target.nodes.iter().collect();
                prop_assert_eq!(distinct.len(), target.nodes.len());
            }
            // Avoiding the risky node can leave no valid placement on tiny clusters;
            // refusing is allowed, a below-target answer is not.
            Err(PolicyError::Placement(_)) => {}
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn heat_oscillating_inside_a_band_never_flips_the_class(
        rates in proptest::collection::vec(0.0f64..1.0, 1..200),
        start_upper in any::<bool>(),
        hot_band in any::<bool>(),
    ) {
        let config = HeatConfig::default();
        let (low, high, classes) = if hot_band {
            (config.hot_leave_per_hour, config.hot_enter_per_hour, [AccessClass::Warm, AccessClass::Hot])
        } else {
            (config.cold_enter_per_hour, config.warm_enter_per_hour, [AccessClass::Cold, AccessClass::Warm])
        };
        let start = if start_upper { classes[1] } else { classes[0] };
        let mut class = start;
        for fraction in rates {
            class = classify(class, low + (high - low) * fraction, &config);
            prop_assert_eq!(class, start);
        }
    }

    #[test]
    fn risk_oscillating_inside_the_band_never_changes_the_target(
        risks in proptest::collection::vec(0.0f64..1.0, 1..60),
        already_bumped in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let cluster = Cluster::new(topology(3, 3, 4));
        let config = PolicyConfig::default();
        let table = SchemeTable::new(&config, &cluster.map).unwrap();
        let scheme = table.entry(RedundancyLevel::Medium, AccessClass::Cold, already_bumped).scheme;
        let state = placed(&cluster, seed, RedundancyLevel::Medium, scheme);
        let holder = state.fragments[0].node;
        for fraction in risks {
            let risk = config.risk_leave + (config.risk_enter - config.risk_leave) * fraction * 0.999;
            let node_risk = move |node: NodeId| if node == holder { risk } else { 0.001 };
            let input = PolicyInput { state: &state, class: AccessClass::Cold, node_risk: &node_risk, now_ms: 30 * DAY_MS };
            let target = decide(&config, &table, &cluster.map, &cluster.domains, &input).unwrap();
            prop_assert_eq!(target.reason, Reason::Unchanged);
            prop_assert_eq!(target.scheme, scheme);
        }
    }
}

#[test]
fn a_heat_change_inside_the_dwell_time_waits() {
    let cluster = Cluster::new(topology(3, 3, 4));
    let config = PolicyConfig::default();
    let table = SchemeTable::new(&config, &cluster.map).unwrap();
    let mut state = placed(
        &cluster,
        5,
        RedundancyLevel::Medium,
        Scheme::Replicated { copies: 3 },
    );
    state.layout_changed_at_ms = 10 * DAY_MS;
    let risk = |_: NodeId| 0.001;
    let at = |now_ms| PolicyInput {
        state: &state,
        class: AccessClass::Cold,
        node_risk: &risk,
        now_ms,
    };
    let early = decide(
        &config,
        &table,
        &cluster.map,
        &cluster.domains,
        &at(10 * DAY_MS + 1),
    )
    .unwrap();
    assert_eq!(early.reason, Reason::Dwelling);
    assert_eq!(early.scheme, Scheme::Replicated { copies: 3 });
    let later = decide(
        &config,
        &table,
        &cluster.map,
        &cluster.domains,
        &at(11 * DAY_MS),
    )
    .unwrap();
    assert_eq!(later.reason, Reason::Heat);
    assert_eq!(later.scheme, Scheme::ErasureCoded { data: 6, parity: 3 });
}
