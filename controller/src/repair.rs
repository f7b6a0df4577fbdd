//! Repair planning: the seed's `repairShardlet`, as a pure function.
//!
//! For one shardlet: the fragments whose location is *lost* (node down, fragment
//! missing from the node's listing, checksum failure from the scrub) are rebuilt on
//! replacement nodes chosen by core placement (healthy, spread kept, the soft
//! one-zone-each goal of [`Domains`]): copied from a surviving replica when the scheme
//! is replication, reconstructed from `data` surviving fragments otherwise. The commit
//! is a compare-and-set on the record's generation.
//!
//! Idempotent and resumable: the new fragments' ids (next generation) and nodes are a
//! function of the state, so planning twice gives the same actions; a write whose
//! fragment the target node already lists is left out (a half-done repair continues
//! at its commit).

use shardlet_core::{NodeId, PlacementError, PlacementMap, Scheme, ShardletId, Spread};

use crate::domains::{Domains, Shape};
use crate::view::{Action, FragmentLocation, ShardletState, StoredFragment};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RepairError {
    #[error("shardlet {shardlet} is lost: {usable} usable fragments, {required} required")]
    Unrecoverable {
        shardlet: ShardletId,
        usable: usize,
        required: usize,
    },
    #[error(transparent)]
    Placement(#[from] PlacementError),
}

/// One shardlet's repair.
#[derive(Clone, Debug, PartialEq)]
pub struct RepairPlan {
    pub shardlet: ShardletId,
    /// Usable fragments beyond those needed to read: 0 means one more loss loses data.
    pub spare_fragments: usize,
    /// The highest risk among nodes still holding usable fragments (tie-breaker).
    pub holder_risk_max: f64,
    pub actions: Vec<Action>,
}

impl RepairPlan {
    /// Nodes this plan reads from or writes to (for per-node concurrency limits).
    pub fn nodes(&self) -> Vec<NodeId> {
        let mut nodes = Vec::new();
        for action in &self.actions {
            match action {
                Action::CopyFragment { source, target, .. } => {
                    nodes.push(source.node);
                    nodes.push(target.node);
                }
                Action::Reconstruct {
                    sources, outputs, ..
                }
                | Action::Reencode {
                    sources, outputs, ..
                } => {
                    nodes.extend(sources.iter().map(|s| s.node));
                    nodes.extend(outputs.iter().map(|s| s.node));
                }
                Action::Verify { fragments, .. } => nodes.extend(fragments.iter().map(|s| s.node)),
                Action::DeleteFragment { target } => nodes.push(target.node),
                Action::CommitLayout { .. } => {}
            }
        }
        nodes.sort();
        nodes.dedup();
        nodes
    }

    pub fn bytes_moved(&self, shardlet_size_bytes: u64) -> u64 {
        self.actions
            .iter()
            .map(|action| action.bytes_moved(shardlet_size_bytes))
            .sum()
    }
}

/// What the planner needs to know about the world beyond the record.
pub struct RepairInput<'a> {
    pub map: &'a PlacementMap,
    pub domains: &'a Domains,
    pub spread: Spread,
    /// A location whose fragment cannot be read (node down, missing, corrupt).
    pub lost: &'a dyn Fn(&FragmentLocation) -> bool,
    /// Whether a node already stores a fragment (from its listing); `false` when
    /// unknown, which only costs a redundant idempotent write.
    pub stored: &'a dyn Fn(&StoredFragment) -> bool,
    pub node_risk: &'a dyn Fn(NodeId) -> f64,
}

/// Plans the repair of one shardlet; `Ok(None)` when nothing is lost.
pub fn plan_repair(
    state: &ShardletState,
    input: &RepairInput<'_>,
) -> Result<Option<RepairPlan>, RepairError> {
    let lost_positions: Vec<usize> = (0..state.fragments.len())
        .filter(|position| (input.lost)(&state.fragments[*position]))
        .collect();
    if lost_positions.is_empty() {
        return Ok(None);
    }
    let usable: Vec<FragmentLocation> = state
        .fragments
        .iter()
        .filter(|location| !(input.lost)(location))
        .copied()
        .collect();
    let required = state.scheme.required_fragments();
    let usable_count = state.usable_indexes(|location| !(input.lost)(location));
    if usable_count < required {
        return Err(RepairError::Unrecoverable {
            shardlet: state.id,
            usable: usable_count,
            required,
        });
    }
    let generation = state.generation.next();
    let key = state.id.hash_key();
    let fragment_bytes = state.fragment_bytes();
    let lost_nodes: Vec<NodeId> = lost_positions
        .iter()
        .map(|p| state.fragments[*p].node)
        .collect();

    let mut current: Vec<Option<NodeId>> = state
        .fragments
        .iter()
        .map(|location| (!(input.lost)(location)).then_some(location.node))
        .collect();
    let mut new_locations = state.fragments.clone();
    let mut outputs = Vec::new();
    for position in &lost_positions {
        let shape = Shape {
            key,
            scheme: state.scheme,
            spread: input.spread,
        };
        let node =
            input
                .domains
                .place_spread(input.map, shape, &current, *position, &lost_nodes)?;
        current[*position] = Some(node);
        let location = FragmentLocation {
            index: state.fragments[*position].index,
            node,
            generation,
        };
        new_locations[*position] = location;
        outputs.push(StoredFragment {
            node,
            fragment: state.fragment_id(&location),
        });
    }
    let to_write: Vec<StoredFragment> = outputs
        .iter()
        .filter(|output| !(input.stored)(output))
        .copied()
        .collect();
    let stored = |location: &FragmentLocation| StoredFragment {
        node: location.node,
        fragment: state.fragment_id(location),
    };
    let mut actions = Vec::new();
    match state.scheme {
        Scheme::Replicated { .. } => {
            // Copy from the least risky survivor: it is the likeliest to still be
            // there when the copy runs.
            let source = usable
                .iter()
                .min_by(|a, b| {
                    (input.node_risk)(a.node)
                        .total_cmp(&(input.node_risk)(b.node))
                        .then(a.node.cmp(&b.node))
                })
                .copied();
            if let Some(source) = source {
                for target in &to_write {
                    actions.push(Action::CopyFragment {
                        source: stored(&source),
                        target: *target,
                        fragment_bytes,
                    });
                }
            }
        }
        Scheme::ErasureCoded { .. } => {
            if !to_write.is_empty() {
                let mut sources: Vec<FragmentLocation> = usable.clone();
                sources.sort_by_key(|location| location.index);
                sources.dedup_by_key(|location| location.index);
                sources.truncate(required);
                actions.push(Action::Reconstruct {
                    shardlet: state.id,
                    scheme: state.scheme,
                    sources: sources.iter().map(stored).collect(),
                    outputs: to_write.clone(),
                });
            }
        }
    }
    actions.push(Action::Verify {
        fragments: outputs,
        fragment_bytes,
    });
    actions.push(Action::CommitLayout {
        shardlet: state.id,
        expected_generation: state.generation,
        new_generation: generation,
        scheme: state.scheme,
        new_locations,
    });
    let holder_risk_max = usable
        .iter()
        .map(|location| (input.node_risk)(location.node))
        .fold(0.0, f64::max);
    Ok(Some(RepairPlan {
        shardlet: state.id,
        spare_fragments: usable_count - required,
        holder_risk_max,
        actions,
    }))
}

/// Most endangered first (fewest spare fragments), then the riskiest holders, then id
/// (so the order is total and deterministic).
pub fn order_repairs(plans: &mut [RepairPlan]) {
    plans.sort_by(|a, b| {
        a.spare_fragments
            .cmp(&b.spare_fragments)
            .then(b.holder_risk_max.total_cmp(&a.holder_risk_max))
            .then(a.shardlet.cmp(&b.shardlet))
    });
}

/// Predictive evacuation of one shardlet from `node` (whose risk crossed the
/// threshold): copy its fragment — straight from the risky node, which still serves
/// reads, so no reconstruction is needed — to a replacement, commit, then delete the
/// old copy. `None` if the shardlet has nothing on `node`.
pub fn plan_evacuation(
    state: &ShardletState,
    node: NodeId,
    map: &PlacementMap,
    domains: &Domains,
    spread: Spread,
) -> Result<Option<Vec<Action>>, RepairError> {
    let Some(position) = state.fragments.iter().position(|l| l.node == node) else {
        return Ok(None);
    };
    let generation = state.generation.next();
    let current: Vec<Option<NodeId>> = state.fragments.iter().map(|l| Some(l.node)).collect();
    let shape = Shape {
        key: state.id.hash_key(),
        scheme: state.scheme,
        spread,
    };
    let target_node = domains.place_spread(map, shape, &current, position, &[node])?;
    let old = state.fragments[position];
    let new = FragmentLocation {
        index: old.index,
        node: target_node,
        generation,
    };
    let mut new_locations = state.fragments.clone();
    new_locations[position] = new;
    let stored = |location: &FragmentLocation| StoredFragment {
        node: location.node,
        fragment: state.fragment_id(location),
    };
    Ok(Some(vec![
        Action::CopyFragment {
            source: stored(&old),
            target: stored(&new),
            fragment_bytes: state.fragment_bytes(),
        },
        Action::Verify {
            fragments: vec![stored(&new)],
            fragment_bytes: state.fragment_bytes(),
        },
        Action::CommitLayout {
            shardlet: state.id,
            expected_generation: state.generation,
            new_generation: generation,
            scheme: state.scheme,
            new_locations,
        },
        Action::DeleteFragment {
            target: stored(&old),
        },
    ]))
}
