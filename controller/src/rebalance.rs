//! The rebalance planner: when the cluster layout changes, which shardlets move, where,
//! and in which order. Pure: a shardlet snapshot and a placement view in, a plan out.
//!
//! A shardlet whose record says an older layout version than the one in use is placed
//! anew with the very function the gateway places new writes with
//! ([`PlacementMap::place`], spread by level). Only the *set* of nodes matters:
//! fragments are moved by copying the same bytes (a replica, or erasure-coded fragment
//! `i` keeping its index `i`) to a node the new placement has and the old one lacks, so
//! a fragment whose node is in both stays where it is even if its position changed.
//! Never a re-encode.
//!
//! **Only towards nodes that lack data.** Placement moves more than the ideal when a
//! node is added: with a binding zone cap (RS(4,2) on 3 zones: exactly 2 fragments per
//! zone), the new node taking fragment `i` changes the zone counts later fragments see,
//! so other fragments change node between *old* nodes too (docs/placement.md, "second-
//! order moves"; measured below: 1.45 × the ideal 1/13 for RS(4,2) when following the
//! placement exactly). Those second-order moves cancel out per node (each old node
//! gains about what it loses), so the planner counts, over every shardlet it plans,
//! the bytes placement expects on each node against the bytes the records put there
//! ([`Deficits`]), and moves a fragment only *to a node still short of its expected
//! bytes*, taking it from a node the placement no longer wants (preferring the most
//! overfull). The result is a valid spread (per zone and region, never more fragments
//! than the old or the new placement had there) but not always the placement's exact
//! node set; reads follow records, not placement, so that is harmless, and the
//! shardlet's record says the version it was planned under. Nothing needs the layout
//! history: the deficits are re-derived from the records every pass, so a restarted
//! controller plans the same way.
//!
//! A plan is the transition's write → verify → commit → delete ([`crate::transition`]):
//! 1. **copy** each leaving fragment to its new node under the next generation. Crash:
//!    the committed layout is untouched and complete; the copies are orphans the scrub
//!    collects after its grace (or a re-plan finds them already stored: writes are
//!    idempotent, same id and bytes).
//! 2. **verify** every copy (read back, CRC). Crash: as above.
//! 3. **commit**: compare-and-set on the record's generation, swapping only the moved
//!    locations and stamping the layout version planned under. Crash: the old layout or
//!    the new one is committed, both complete; a lost race (the object was rewritten,
//!    deleted, repaired or re-encoded meanwhile) abandons the plan and the next pass
//!    re-plans from the record as it is then.
//! 4. **delete** the old fragments. Crash: they are stale (older generation than the
//!    record) and the scrub deletes them. A reader holding the old record finds them
//!    gone and re-reads the record (gateway read path: a layout that moved under the read).
//!
//! So no step leaves a shardlet with fewer committed, verified fragments than its
//! scheme's width ([`crate::transition::check_plan`] replays plans to prove it, and the
//! tests below run it on every plan they make).
//!
//! Who owns which shardlet (one plan per shardlet, so drain, repair and rebalance never
//! fight): a shardlet with a fragment on a node that is not plainly `Up` (down, suspect,
//! draining, decommissioned, not in the layout) belongs to the repair worker, which
//! rebuilds lost fragments first and then evacuates draining nodes; the rebalance takes
//! the rest. [`order_moves`] puts the moves that fix the most misplaced fragments first.

use std::collections::{BTreeMap, BTreeSet};

use shardlet_core::{FragmentId, NodeId, NodeState, PlacementMap, ShardletId, Spread};

use crate::view::{Action, FragmentLocation, ShardletState, StoredFragment};

/// What the planner needs to know about the cluster: the layout version in use, the
/// placement over its nodes with their current states, each node's state and failure
/// domains.
pub struct RebalanceView<'a> {
    pub layout_version: u64,
    pub map: &'a PlacementMap,
    pub state: &'a dyn Fn(NodeId) -> NodeState,
    /// (zone, region) of a node; `None` for a node not in the layout.
    pub domains: &'a dyn Fn(NodeId) -> Option<(u32, u32)>,
}

/// Why a shardlet is left alone by this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Placed under the layout in use (or a newer one): nothing to do.
    Current,
    /// Placed under an older layout, but nothing needs to move: the new placement gives
    /// the same nodes, or the nodes it adds already hold their share.
    Unchanged,
    /// A fragment is on a node that is not up: the repair worker owns it.
    LeftToRepair(NodeId),
    /// The record does not hold one fragment per index on distinct nodes: repair's.
    Incomplete,
    /// The layout in use cannot place this scheme (the layout's checks make this rare).
    Unplaceable(String),
}

/// One shardlet's move: the actions to run and what they cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Move {
    pub shardlet: ShardletId,
    /// Layout version the move places under; the commit stamps it on the record.
    pub layout_version: u64,
    /// (fragment as it is, node it moves to), in fragment index order.
    pub moves: Vec<(FragmentLocation, NodeId)>,
    pub actions: Vec<Action>,
    /// Bytes copied (each moved fragment once).
    pub bytes: u64,
}

impl Move {
    /// Every node the move reads from or writes to (for per-node limits).
    pub fn nodes(&self) -> BTreeSet<NodeId> {
        self.moves
            .iter()
            .flat_map(|(from, to)| [from.node, *to])
            .collect()
    }
}

/// A shardlet the rebalance may move: its fragments as recorded and where the layout in
/// use places it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub state: ShardletState,
    pub desired: Vec<NodeId>,
}

/// Whether the shardlet is the rebalance's to move, and where placement now puts it.
pub fn candidate(
    state: &ShardletState,
    record_layout_version: u64,
    view: &RebalanceView<'_>,
) -> Result<Candidate, Skip> {
    if record_layout_version >= view.layout_version {
        return Err(Skip::Current);
    }
    if let Some(location) = state
        .fragments
        .iter()
        .find(|location| (view.state)(location.node) != NodeState::Up)
    {
        return Err(Skip::LeftToRepair(location.node));
    }
    let width = state.scheme.width();
    let current: BTreeSet<NodeId> = state.fragments.iter().map(|l| l.node).collect();
    let indexes: BTreeSet<u8> = state.fragments.iter().map(|l| l.index.0).collect();
    if state.fragments.len() != width || current.len() != width || indexes.len() != width {
        return Err(Skip::Incomplete);
    }
    let desired = view
        .map
        .place(
            state.id.hash_key(),
            state.scheme,
            Spread::for_level(state.level),
        )
        .map_err(|error| Skip::Unplaceable(error.to_string()))?
        .nodes;
    if desired.iter().all(|node| current.contains(node)) {
        return Err(Skip::Unchanged);
    }
    Ok(Candidate {
        state: state.clone(),
        desired,
    })
}

/// Per node, the bytes the placement in use expects there minus the bytes the records
/// put there, over the candidates of one pass. Positive: the node is short of data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deficits(BTreeMap<NodeId, i128>);

impl Deficits {
    pub fn of(candidates: &[Candidate]) -> Self {
        let mut deficits = BTreeMap::new();
        for candidate in candidates {
            let bytes = i128::from(candidate.state.fragment_bytes());
            for node in &candidate.desired {
                *deficits.entry(*node).or_insert(0) += bytes;
            }
            for location in &candidate.state.fragments {
                *deficits.entry(location.node).or_insert(0) -= bytes;
            }
        }
        Self(deficits)
    }

    pub fn of_node(&self, node: NodeId) -> i128 {
        self.0.get(&node).copied().unwrap_or(0)
    }

    fn shift(&mut self, from: NodeId, to: NodeId, bytes: u64) {
        *self.0.entry(from).or_insert(0) += i128::from(bytes);
        *self.0.entry(to).or_insert(0) -= i128::from(bytes);
    }
}

/// Plans every candidate of a pass, most-needed first ([`order_moves`]). Each move goes
/// to a node still short of bytes (see the module's comment) and keeps the spread.
pub fn plan_pass(candidates: &[Candidate], view: &RebalanceView<'_>) -> Vec<Move> {
    let mut deficits = Deficits::of(candidates);
    let mut moves: Vec<Move> = candidates
        .iter()
        .filter_map(|candidate| plan_one(candidate, view, &mut deficits))
        .collect();
    order_moves(&mut moves);
    moves
}

/// Plans one candidate against `deficits`, and books the moves it makes there.
pub fn plan_one(
    candidate: &Candidate,
    view: &RebalanceView<'_>,
    deficits: &mut Deficits,
) -> Option<Move> {
    let state = &candidate.state;
    let bytes = state.fragment_bytes();
    let current: Vec<NodeId> = state.nodes();
    let mut leaving: Vec<FragmentLocation> = state
        .fragments
        .iter()
        .copied()
        .filter(|location| !candidate.desired.contains(&location.node))
        .collect();
    let mut spread = SpreadBound::new(&current, &candidate.desired, view);
    let mut moves = Vec::new();
    for arriving in candidate
        .desired
        .iter()
        .copied()
        .filter(|node| !current.contains(node))
    {
        // Short by at least two fragments of this size: a node whose count differs
        // from placement's by less is noise (second-order moves that cancel), and moving
        // towards it would be a move for nothing.
        if deficits.of_node(arriving) < 2 * i128::from(bytes) {
            continue;
        }
        // The most overfull leaving node whose swap keeps the spread.
        let best = leaving
            .iter()
            .enumerate()
            .filter(|(_, from)| spread.allows(from.node, arriving))
            .min_by_key(|(_, from)| (deficits.of_node(from.node), from.index))
            .map(|(position, _)| position);
        let Some(position) = best else { continue };
        let from = leaving.remove(position);
        spread.swap(from.node, arriving);
        deficits.shift(from.node, arriving, bytes);
        moves.push((from, arriving));
    }
    if moves.is_empty() {
        return None;
    }
    moves.sort_by_key(|(from, _)| from.index);
    Some(actions_for(state, moves, view.layout_version))
}

/// Fragments per zone and region of the shardlet as the moves rebuild it, bounded by
/// what the old or the new placement had there: both kept the spread rule, so
/// anything within the larger of the two per domain keeps it too.
struct SpreadBound {
    zones: BTreeMap<u32, (usize, usize)>,
    regions: BTreeMap<u32, (usize, usize)>,
    domains: Vec<(NodeId, Option<(u32, u32)>)>,
}

impl SpreadBound {
    fn new(current: &[NodeId], desired: &[NodeId], view: &RebalanceView<'_>) -> Self {
        let mut bound = Self {
            zones: BTreeMap::new(),
            regions: BTreeMap::new(),
            domains: Vec::new(),
        };
        // (now, bound): `now` starts as the current count, `bound` as the desired
        // count, then becomes the larger of the two.
        for (nodes, is_current) in [(current, true), (desired, false)] {
            for node in nodes {
                let domain = (view.domains)(*node);
                bound.domains.push((*node, domain));
                let Some((zone, region)) = domain else {
                    continue;
                };
                for (map, key) in [(&mut bound.zones, zone), (&mut bound.regions, region)] {
                    let entry = map.entry(key).or_insert((0, 0));
                    if is_current {
                        entry.0 += 1;
                    } else {
                        entry.1 += 1;
                    }
                }
            }
        }
        for entry in bound.zones.values_mut().chain(bound.regions.values_mut()) {
            entry.1 = entry.1.max(entry.0);
        }
        bound
    }

    fn domain(&self, node: NodeId) -> Option<(u32, u32)> {
        self.domains
            .iter()
            .find(|(known, _)| *known == node)
            .and_then(|(_, domain)| *domain)
    }

    /// Whether moving one fragment from `from` to `to` keeps every domain within bound.
    fn allows(&self, from: NodeId, to: NodeId) -> bool {
        let (Some((from_zone, from_region)), Some((to_zone, to_region))) =
            (self.domain(from), self.domain(to))
        else {
            return false;
        };
        let fits = |map: &BTreeMap<u32, (usize, usize)>, from: u32, to: u32| {
            from == to || map.get(&to).is_some_and(|(now, bound)| now < bound)
        };
        fits(&self.zones, from_zone, to_zone) && fits(&self.regions, from_region, to_region)
    }

    fn swap(&mut self, from: NodeId, to: NodeId) {
        if let (Some((from_zone, from_region)), Some((to_zone, to_region))) =
            (self.domain(from), self.domain(to))
        {
            for (map, from, to) in [
                (&mut self.zones, from_zone, to_zone),
                (&mut self.regions, from_region, to_region),
            ] {
                if let Some(entry) = map.get_mut(&from) {
                    entry.0 -= 1;
                }
                if let Some(entry) = map.get_mut(&to) {
                    entry.0 += 1;
                }
            }
        }
    }
}

/// Copy → verify → commit → delete for `moves` of `state` (the module's comment says
/// what a crash between any two leaves).
fn actions_for(
    state: &ShardletState,
    moves: Vec<(FragmentLocation, NodeId)>,
    layout_version: u64,
) -> Move {
    let generation = state.generation.next();
    let fragment_bytes = state.fragment_bytes();
    let stored = |location: &FragmentLocation| StoredFragment {
        node: location.node,
        fragment: state.fragment_id(location),
    };
    let mut actions = Vec::with_capacity(2 * moves.len() + 2);
    let mut copies = Vec::with_capacity(moves.len());
    let mut new_locations = state.fragments.clone();
    for (from, to) in &moves {
        let target = StoredFragment {
            node: *to,
            fragment: FragmentId::new(state.id, generation, from.index),
        };
        actions.push(Action::CopyFragment {
            source: stored(from),
            target,
            fragment_bytes,
        });
        copies.push(target);
        for location in new_locations.iter_mut().filter(|l| *l == from) {
            *location = FragmentLocation {
                index: from.index,
                node: *to,
                generation,
            };
        }
    }
    actions.push(Action::Verify {
        fragments: copies,
        fragment_bytes,
    });
    actions.push(Action::CommitLayout {
        shardlet: state.id,
        expected_generation: state.generation,
        new_generation: generation,
        scheme: state.scheme,
        new_locations,
    });
    for (from, _) in &moves {
        actions.push(Action::DeleteFragment {
            target: stored(from),
        });
    }
    Move {
        shardlet: state.id,
        layout_version,
        bytes: fragment_bytes * moves.len() as u64,
        moves,
        actions,
    }
}

/// Most-needed first: the shardlets with the most misplaced fragments (the layout
/// change hit them hardest), then the smallest (more shardlets settled per byte), then
/// by id so the order is stable across passes and controllers.
pub fn order_moves(moves: &mut [Move]) {
    moves.sort_by(|a, b| {
        b.moves
            .len()
            .cmp(&a.moves.len())
            .then(a.bytes.cmp(&b.bytes))
            .then(a.shardlet.cmp(&b.shardlet))
    });
}
