//! The discrete-event simulator: the same policy, repair, scheduling and transition
//! functions the daemon calls, driven over virtual time by a seeded event queue. Model
//! and honest limits are in `docs/controller.md` ("Simulator").
//!
//! | file | its one job |
//! |---|---|
//! | `events` | the event queue: time-ordered events, ties in push order |
//! | `faults` | the fault model: which node fails when, zone outages, predictor alarms |
//! | `controller` | the controller under test: detector, policy, repair planning and scheduling, transitions, evacuation |
//! | `world` | the simulated cluster (what is physically true), the main loop, the measurements |
//! | `config`, `report`, `rng` | parameters, what a run measured, the seeded generator |

mod config;
mod controller;
mod events;
mod faults;
mod report;
mod rng;
mod world;

pub use config::SimConfig;
pub use report::Report;
pub use rng::Rng;

/// Runs one simulation to the end and returns its report.
pub fn run(config: &SimConfig) -> Result<Report, String> {
    world::World::new(config)?.run()
}

/// The policy table the simulated topology gets, one row per (level, class, risk),
/// with each scheme's modelled MTTDL: what `docs/controller.md` shows.
pub fn policy_table(config: &SimConfig) -> Result<String, String> {
    use shardlet_core::{Node, NodeId, NodeState, PlacementMap, Topology};
    let zones = config.regions * config.zones_per_region;
    let nodes = (0..config.nodes)
        .map(|index| Node {
            id: NodeId(index),
            name: format!("node-{index}"),
            address: format!("10.0.0.1:{}", 1 + index % 60_000),
            region: format!(
                "region-{}",
                (index % zones) / config.zones_per_region.max(1)
            ),
            zone: format!("zone-{}", index % zones.max(1)),
            capacity_bytes: config.node_capacity_bytes,
            free_bytes: config.node_capacity_bytes / 2,
            weight: 1.0,
            state: NodeState::Up,
            latency_us: None,
        })
        .collect();
    let topology = Topology::new(0, nodes).map_err(|error| error.to_string())?;
    let map = PlacementMap::new(&topology);
    let table = crate::policy::SchemeTable::new(&config.policy, &map).map_err(|e| e.to_string())?;
    let model = config.policy.durability;
    let mut text = format!(
        "policy table ({} regions x {} zones; AFR {:.1}%, repair {} h)\n",
        config.regions,
        config.zones_per_region,
        model.annual_failure_rate * 100.0,
        model.repair_hours
    );
    for ((level, class, risk), entry) in table.rows() {
        text.push_str(&format!(
            "{level:?} {class:?} risk_extra={risk}: {} (hot extras {}), overhead {:.2}, MTTDL {:.2e} years (target {:.0e})\n",
            entry.scheme,
            entry.extra_copies,
            entry.scheme.storage_overhead(),
            model.mttdl_years(entry.scheme),
            config.policy.target_years(*level),
        ));
    }
    Ok(text)
}
