//! The redundancy policy: which scheme and which nodes each shardlet should have now.
//!
//! Inputs: the shardlet's redundancy level, its heat class, the risk of the nodes that
//! hold it and of candidate nodes, and the topology (with latency and free space).
//! Output: a [`Target`] scheme and nodes. The table (documented in
//! `docs/controller.md`):
//!
//! - **cold**: the erasure code among `erasure_candidates` that meets the level's MTTDL
//!   target with the least storage (ties: fewest fragments), and that the topology can
//!   spread so losing a zone (a region at High) loses nothing;
//! - **warm**: the fewest replicas that meet the target (no reconstruction on read);
//! - **hot**: warm's replicas plus `hot_extra_copies` on low-latency, high-capacity
//!   nodes ([`PlacementMap::rank_extra_targets`]);
//! - **risk**: when a node holding the shardlet has risk ≥ `risk_enter`, one more
//!   tolerated loss (a replica or a parity fragment) and the risky node is avoided for
//!   new fragments: the extra copy exists *before* the node fails.
//!
//! Hysteresis: heat classes have their own bands ([`crate::heat::classify`]); risk has
//! a band `[risk_leave, risk_enter)` in which the current choice is kept; and a scheme
//! change that is not needed for durability waits until `change_dwell_ms` after the
//! previous one.

use std::collections::BTreeMap;

use shardlet_core::{
    AccessClass, FailureDomain, NodeId, PlacementError, PlacementMap, RedundancyLevel, Scheme,
    Spread,
};

use crate::domains::{Domains, Shape};
use crate::durability::DurabilityModel;
use crate::view::ShardletState;

/// Probe key for feasibility checks: feasibility depends on the topology, not the key.
const PROBE_KEY: u64 = 0x5eed;

#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    pub durability: DurabilityModel,
    /// MTTDL per shardlet, in years, that each level must reach: low, medium, high.
    pub mttdl_target_years: [f64; 3],
    pub erasure_candidates: Vec<Scheme>,
    pub copies_max: u8,
    pub hot_extra_copies: u8,
    pub risk_enter: f64,
    pub risk_leave: f64,
    pub change_dwell_ms: u64,
    /// `Some(Node)` for single-zone clusters (a laptop); `None` follows the level.
    pub survive_override: Option<FailureDomain>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            durability: DurabilityModel::default(),
            mttdl_target_years: [1e6, 1e9, 1e12],
            // The 1.5x family: equal storage, so the level's target picks the narrowest
            // stripe that meets it (less read fan-out and repair traffic). Wider codes
            // (RS(10,4), RS(12,4)) store less but need more zones; add them here.
            erasure_candidates: vec![
                Scheme::ErasureCoded { data: 4, parity: 2 },
                Scheme::ErasureCoded { data: 6, parity: 3 },
                Scheme::ErasureCoded { data: 8, parity: 4 },
            ],
            copies_max: 6,
            hot_extra_copies: 1,
            risk_enter: 0.3,
            risk_leave: 0.1,
            change_dwell_ms: 24 * 3_600_000,
            survive_override: None,
        }
    }
}

impl PolicyConfig {
    pub fn target_years(&self, level: RedundancyLevel) -> f64 {
        self.mttdl_target_years[level_position(level)]
    }

    pub fn spread(&self, level: RedundancyLevel) -> Spread {
        match self.survive_override {
            Some(survive) => Spread { survive },
            None => Spread::for_level(level),
        }
    }

    pub fn meets_target(&self, scheme: Scheme, level: RedundancyLevel) -> bool {
        self.durability.mttdl_years(scheme) >= self.target_years(level)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("no scheme meets the {level:?} durability target on this topology: {reason}")]
    NoSchemeMeetsTarget {
        level: RedundancyLevel,
        reason: String,
    },
    #[error(transparent)]
    Placement(#[from] PlacementError),
}

/// One row of the table: the scheme, and how many of its replicas are hot extras.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEntry {
    pub scheme: Scheme,
    pub extra_copies: u8,
}

/// The policy table for one topology epoch and config: (level, class, risk) → scheme.
#[derive(Clone, Debug)]
pub struct SchemeTable {
    entries: BTreeMap<(RedundancyLevel, AccessClass, bool), TableEntry>,
}

impl SchemeTable {
    pub fn new(config: &PolicyConfig, map: &PlacementMap) -> Result<Self, PolicyError> {
        let mut entries = BTreeMap::new();
        for level in [
            RedundancyLevel::Low,
            RedundancyLevel::Medium,
            RedundancyLevel::High,
        ] {
            let spread = config.spread(level);
            let feasible = |scheme: Scheme| map.place(PROBE_KEY, scheme, spread).is_ok();
            let copies = (2..=config.copies_max)
                .map(|copies| Scheme::Replicated { copies })
                .find(|scheme| config.meets_target(*scheme, level) && feasible(*scheme))
                .ok_or_else(|| PolicyError::NoSchemeMeetsTarget {
                    level,
                    reason: format!(
                        "no replication up to {} copies reaches {:e} years and fits the spread",
                        config.copies_max,
                        config.target_years(level)
                    ),
                })?;
            let warm = TableEntry {
                scheme: copies,
                extra_copies: 0,
            };
            let cold = config
                .erasure_candidates
                .iter()
                .copied()
                .filter(|scheme| config.meets_target(*scheme, level) && feasible(*scheme))
                .min_by(|a, b| {
                    a.storage_overhead()
                        .total_cmp(&b.storage_overhead())
                        .then(a.width().cmp(&b.width()))
                })
                .map_or(warm, |scheme| TableEntry {
                    scheme,
                    extra_copies: 0,
                });
            let hot = match copies {
                Scheme::Replicated { copies } => {
                    let with_extra = copies
                        .saturating_add(config.hot_extra_copies)
                        .min(config.copies_max);
                    TableEntry {
                        scheme: Scheme::Replicated { copies: with_extra },
                        extra_copies: with_extra - copies,
                    }
                }
                Scheme::ErasureCoded { .. } => warm,
            };
            for (class, base) in [
                (AccessClass::Cold, cold),
                (AccessClass::Warm, warm),
                (AccessClass::Hot, hot),
            ] {
                entries.insert((level, class, false), base);
                let bumped = one_more_tolerated(base.scheme, config.copies_max);
                let risky = match bumped {
                    Some(scheme) if feasible(scheme) => TableEntry {
                        scheme,
                        extra_copies: base.extra_copies,
                    },
                    _ => base,
                };
                entries.insert((level, class, true), risky);
            }
        }
        Ok(Self { entries })
    }

    pub fn entry(
        &self,
        level: RedundancyLevel,
        class: AccessClass,
        risk_extra: bool,
    ) -> TableEntry {
        // Every key is inserted by `new`.
        self.entries
            .get(&(level, class, risk_extra))
            .copied()
            .unwrap_or(TableEntry {
                scheme: Scheme::Replicated { copies: 3 },
                extra_copies: 0,
            })
    }

    pub fn rows(
        &self,
    ) -> impl Iterator<Item = (&(RedundancyLevel, AccessClass, bool), &TableEntry)> {
        self.entries.iter()
    }
}

fn one_more_tolerated(scheme: Scheme, copies_max: u8) -> Option<Scheme> {
    match scheme {
        Scheme::Replicated { copies } if copies < copies_max => {
            Some(Scheme::Replicated { copies: copies + 1 })
        }
        Scheme::ErasureCoded { data, parity } if parity < Scheme::PARITY_MAX => {
            Some(Scheme::ErasureCoded {
                data,
                parity: parity + 1,
            })
        }
        _ => None,
    }
}

fn level_position(level: RedundancyLevel) -> usize {
    match level {
        RedundancyLevel::Low => 0,
        RedundancyLevel::Medium => 1,
        RedundancyLevel::High => 2,
    }
}

/// What the policy is asked about one shardlet.
pub struct PolicyInput<'a> {
    pub state: &'a ShardletState,
    pub class: AccessClass,
    pub node_risk: &'a dyn Fn(NodeId) -> f64,
    pub now_ms: u64,
}

/// Why the target is what it is (for logs and the simulator's counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Unchanged,
    /// The table wants a change but the dwell time has not passed.
    Dwelling,
    Heat,
    RiskEntered,
    RiskLeft,
    BelowTarget,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// Fragment position `i` on `nodes[i]`.
    pub nodes: Vec<NodeId>,
    pub reason: Reason,
}

impl Target {
    /// `scheme` on the `nodes` actually chosen. Fewer hot extras than asked for when
    /// too few nodes qualify: a replicated scheme counts the copies placed.
    fn placed(scheme: Scheme, nodes: Vec<NodeId>, reason: Reason) -> Self {
        let scheme = match scheme {
            Scheme::Replicated { .. } => Scheme::Replicated {
                copies: nodes.len() as u8,
            },
            coded => coded,
        };
        Self {
            scheme,
            nodes,
            reason,
        }
    }
}

/// Decides the target of one shardlet. Pure: same inputs, same target.
pub fn decide(
    config: &PolicyConfig,
    table: &SchemeTable,
    map: &PlacementMap,
    domains: &Domains,
    input: &PolicyInput<'_>,
) -> Result<Target, PolicyError> {
    let state = input.state;
    let level = state.level;
    let holder_risk_max = state
        .fragments
        .iter()
        .map(|location| (input.node_risk)(location.node))
        .fold(0.0, f64::max);
    let with_extra = table.entry(level, input.class, true);
    let risk_extra = if holder_risk_max >= config.risk_enter {
        true
    } else if holder_risk_max < config.risk_leave {
        false
    } else {
        // Inside the band: keep whatever we have.
        state.scheme == with_extra.scheme && with_extra != table.entry(level, input.class, false)
    };
    let entry = table.entry(level, input.class, risk_extra);
    let keep = Target {
        scheme: state.scheme,
        nodes: state.nodes(),
        reason: Reason::Unchanged,
    };
    if entry.scheme == state.scheme {
        return Ok(keep);
    }
    let below_target = !config.meets_target(state.scheme, level);
    let risk_entered = risk_extra && holder_risk_max >= config.risk_enter;
    let dwelling = input.now_ms.saturating_sub(state.layout_changed_at_ms) < config.change_dwell_ms;
    if dwelling && !below_target && !risk_entered {
        return Ok(Target {
            reason: Reason::Dwelling,
            ..keep
        });
    }
    let reason = if below_target {
        Reason::BelowTarget
    } else if risk_entered {
        Reason::RiskEntered
    } else if !risk_extra && state.scheme == with_extra.scheme {
        Reason::RiskLeft
    } else {
        Reason::Heat
    };
    let nodes = choose_nodes(config, map, domains, input, entry)?;
    Ok(Target::placed(entry.scheme, nodes, reason))
}

/// Nodes for a new layout: replicas already in place stay (no copy needed), risky
/// nodes are avoided, hot extras go to fast, roomy nodes.
fn choose_nodes(
    config: &PolicyConfig,
    map: &PlacementMap,
    domains: &Domains,
    input: &PolicyInput<'_>,
    entry: TableEntry,
) -> Result<Vec<NodeId>, PolicyError> {
    let state = input.state;
    let spread = config.spread(state.level);
    let key = state.id.hash_key();
    let risky: Vec<NodeId> = state
        .fragments
        .iter()
        .map(|location| location.node)
        .filter(|node| (input.node_risk)(*node) >= config.risk_enter)
        .collect();
    let (Scheme::Replicated { .. }, Scheme::Replicated { copies }) = (state.scheme, entry.scheme)
    else {
        // A re-encode writes every fragment anew: place from scratch, then move any
        // fragment that landed on a risky node.
        let mut nodes = map.place(key, entry.scheme, spread)?.nodes;
        replace_risky(map, domains, key, entry.scheme, spread, &mut nodes, &risky)?;
        let shape = Shape {
            key,
            scheme: entry.scheme,
            spread,
        };
        domains.even_out(map, shape, &mut nodes, &risky);
        return Ok(nodes);
    };
    let base_copies = copies - entry.extra_copies;
    let base = Scheme::Replicated {
        copies: base_copies,
    };
    let mut nodes: Vec<NodeId> = state
        .nodes()
        .into_iter()
        .filter(|node| !risky.contains(node))
        .take(usize::from(base_copies))
        .collect();
    if nodes.len() < usize::from(base_copies) {
        let mut positions: Vec<Option<NodeId>> = nodes.iter().copied().map(Some).collect();
        positions.resize(usize::from(base_copies), None);
        for fragment in nodes.len()..usize::from(base_copies) {
            let node = domains.place_spread(
                map,
                Shape {
                    key,
                    scheme: base,
                    spread,
                },
                &positions,
                fragment,
                &risky,
            )?;
            positions[fragment] = Some(node);
        }
        nodes = positions.into_iter().flatten().collect();
    }
    if entry.extra_copies > 0 {
        let extras = map.rank_extra_targets(
            key,
            base,
            spread,
            &nodes,
            &risky,
            usize::from(entry.extra_copies),
        )?;
        nodes.extend(extras);
    }
    Ok(nodes)
}

fn replace_risky(
    map: &PlacementMap,
    domains: &Domains,
    key: u64,
    scheme: Scheme,
    spread: Spread,
    nodes: &mut [NodeId],
    risky: &[NodeId],
) -> Result<(), PolicyError> {
    for fragment in 0..nodes.len() {
        if risky.contains(&nodes[fragment]) {
            let current: Vec<Option<NodeId>> = nodes.iter().copied().map(Some).collect();
            nodes[fragment] = domains.place_spread(
                map,
                Shape {
                    key,
                    scheme,
                    spread,
                },
                &current,
                fragment,
                risky,
            )?;
        }
    }
    Ok(())
}

/// The layout of a new shardlet (what the gateway writes): the table's scheme for its
/// level and class, placed by core and spread evenly over zones. Hot extras are
/// ranked onto fast, roomy nodes like any other.
pub fn place_new(
    config: &PolicyConfig,
    table: &SchemeTable,
    map: &PlacementMap,
    domains: &Domains,
    key: u64,
    level: RedundancyLevel,
    class: AccessClass,
) -> Result<Target, PolicyError> {
    let entry = table.entry(level, class, false);
    let spread = config.spread(level);
    let (base, extra) = match entry.scheme {
        Scheme::Replicated { copies } => (
            Scheme::Replicated {
                copies: copies - entry.extra_copies,
            },
            usize::from(entry.extra_copies),
        ),
        coded => (coded, 0),
    };
    let mut nodes = map.place(key, base, spread)?.nodes;
    domains.even_out(
        map,
        Shape {
            key,
            scheme: base,
            spread,
        },
        &mut nodes,
        &[],
    );
    if extra > 0 {
        let extras = map.rank_extra_targets(key, base, spread, &nodes, &[], extra)?;
        nodes.extend(extras);
    }
    Ok(Target::placed(entry.scheme, nodes, Reason::Unchanged))
}
