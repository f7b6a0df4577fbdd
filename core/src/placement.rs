//! Placement: which nodes hold the fragments of a shardlet.
//!
//! Jump consistent hash over weighted virtual slots, with rejection and rehash
//! (MementoHash-style) for nodes that cannot take a fragment, and a hierarchical spread
//! rule (at most `tolerated_losses` fragments per zone, and per region at level High).
//! The algorithm, its guarantees and measured movement are in `docs/placement.md`.
//!
//! Everything here is a pure function of (topology, key, scheme, spread): the same
//! topology epoch and key always give the same nodes in the same order.

mod extra;
mod jump;

use std::collections::HashMap;
use std::fmt;

use crate::ids::{mix64, NodeId};
use crate::scheme::{RedundancyLevel, Scheme};
use crate::topology::{NodeState, Topology};

pub use jump::{jump_hash, jump_hash_many};

/// Virtual slots per unit of weight (1 TiB by default): a 1 TiB node owns 16 slots.
/// Small integers keep the slot table small (16 × 100,000 nodes = 1.6 M entries, 6 MB)
/// while still expressing weight ratios to within a few percent.
pub const SLOTS_PER_UNIT_WEIGHT: f64 = 16.0;

/// Hash attempts per fragment before the deterministic exhaustive pass. Each attempt
/// is one jump hash (~20 steps); 64 failures in a row only happen when few nodes are
/// admissible, which is exactly when scanning all of them is the right tool.
pub const ATTEMPTS_PER_FRAGMENT_MAX: u32 = 64;

/// The widest scheme `Scheme::validate` accepts.
const MAX_WIDTH: usize = Scheme::DATA_MAX as usize + Scheme::PARITY_MAX as usize;

/// The failure domain whose loss a placement must survive.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureDomain {
    /// Distinct nodes only: for clusters with a single zone.
    Node,
    /// At most `tolerated_losses` fragments per zone.
    Zone,
    /// At most `tolerated_losses` fragments per zone and per region.
    Region,
}

/// How widely a shardlet's fragments must be spread.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct Spread {
    pub survive: FailureDomain,
}

impl Spread {
    /// Low and Medium survive a zone; High survives a region.
    pub fn for_level(level: RedundancyLevel) -> Self {
        let survive = match level {
            RedundancyLevel::Low | RedundancyLevel::Medium => FailureDomain::Zone,
            RedundancyLevel::High => FailureDomain::Region,
        };
        Self { survive }
    }
}

/// Where one shardlet's fragments live: fragment `i` on `nodes[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub epoch: u64,
    pub nodes: Vec<NodeId>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("{0}")]
    Infeasible(String),
    #[error("node {0} is not in the topology (epoch {1})")]
    UnknownNode(NodeId, u64),
    #[error("fragment index {index} is out of range for {scheme}")]
    FragmentOutOfRange { index: usize, scheme: Scheme },
}

/// Everything placement needs from a topology, precomputed once per epoch.
#[derive(Clone, Debug)]
pub struct PlacementMap {
    epoch: u64,
    /// Sorted by id: the jump-hash bucket order.
    node_ids: Vec<NodeId>,
    zone_of: Vec<u32>,
    region_of: Vec<u32>,
    accepts: Vec<bool>,
    /// Slot → node position. Each node's slots are contiguous, in node-id order.
    slot_nodes: Vec<u32>,
    zone_names: Vec<String>,
    region_names: Vec<String>,
    zone_region: Vec<u32>,
    /// Per zone: nodes that accept fragments.
    accepting_per_zone: Vec<u32>,
    accepting_count: usize,
    free_bytes: Vec<u64>,
    latency_us: Vec<Option<u64>>,
    states: Vec<NodeState>,
}

/// Slot count of a node: `round(weight × 16)`, at least 1. `Topology` caps weights, so
/// this stays a small integer.
pub fn slot_count(weight: f64) -> u32 {
    (weight * SLOTS_PER_UNIT_WEIGHT).round().max(1.0) as u32
}

impl PlacementMap {
    pub fn new(topology: &Topology) -> Self {
        let nodes = topology.nodes();
        let mut zone_names: Vec<String> = Vec::new();
        let mut region_names: Vec<String> = Vec::new();
        let (mut zone_index, mut region_index) = (HashMap::new(), HashMap::new());
        let mut zone_region = Vec::new();
        let mut zone_of = Vec::with_capacity(nodes.len());
        let mut region_of = Vec::with_capacity(nodes.len());
        for node in nodes {
            let region = position_or_push(&mut region_names, &mut region_index, &node.region);
            let zone = position_or_push(&mut zone_names, &mut zone_index, &node.zone);
            if zone_region.len() < zone_names.len() {
                zone_region.push(region);
            }
            zone_of.push(zone);
            region_of.push(region);
        }
        let accepts: Vec<bool> = nodes.iter().map(|n| n.state.accepts_fragments()).collect();
        let mut accepting_per_zone = vec![0u32; zone_names.len()];
        for (position, accepting) in accepts.iter().enumerate() {
            if *accepting {
                accepting_per_zone[zone_of[position] as usize] += 1;
            }
        }
        // Every node keeps its slots whatever its state: removing a node's slots would
        // shift every later slot and move data that has nothing to do with it.
        let mut slot_nodes = Vec::new();
        for (position, node) in nodes.iter().enumerate() {
            let slots = slot_count(node.weight) as usize;
            slot_nodes.extend(std::iter::repeat_n(position as u32, slots));
        }
        Self {
            epoch: topology.epoch(),
            node_ids: nodes.iter().map(|n| n.id).collect(),
            zone_of,
            region_of,
            accepting_count: accepts.iter().filter(|a| **a).count(),
            accepts,
            slot_nodes,
            zone_names,
            region_names,
            zone_region,
            accepting_per_zone,
            free_bytes: nodes.iter().map(|n| n.free_bytes).collect(),
            latency_us: nodes.iter().map(|n| n.latency_us).collect(),
            states: nodes.iter().map(|n| n.state).collect(),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn slot_total(&self) -> usize {
        self.slot_nodes.len()
    }

    /// Chooses `scheme.width()` distinct nodes for a shardlet.
    ///
    /// Fragment `i` walks its own hash sequence `mix(key, i, attempt)`: each attempt
    /// jump-hashes to a slot and takes the slot's node if it accepts fragments, is not
    /// already chosen and keeps the spread rule. After `ATTEMPTS_PER_FRAGMENT_MAX`
    /// rejections the fragment takes the best-ranked admissible node of an exhaustive
    /// pass. The spread rule is a laminar matroid, so this greedy choice always
    /// completes when any valid placement exists; when none does the error says why.
    pub fn place(
        &self,
        key: u64,
        scheme: Scheme,
        spread: Spread,
    ) -> Result<Placement, PlacementError> {
        let rule = self.rule(scheme, spread)?;
        if scheme.width() > self.accepting_count {
            return Err(self.infeasible(scheme, spread, rule));
        }
        // First attempts of all fragments at once (lock-step jump hash); later
        // attempts, rarely needed, one by one. Same answers as one at a time.
        let width = scheme.width();
        let mut first_keys = [0u64; MAX_WIDTH];
        for (fragment, first_key) in first_keys[..width].iter_mut().enumerate() {
            *first_key = attempt_key(key, fragment, 0);
        }
        let mut first_slots = [0u32; MAX_WIDTH];
        let slots = self.slot_nodes.len() as u32;
        jump_hash_many(&first_keys[..width], slots, &mut first_slots[..width]);
        let mut chosen: Vec<u32> = Vec::with_capacity(width);
        for (fragment, first_slot) in first_slots[..width].iter().enumerate() {
            let first = self.slot_nodes[*first_slot as usize];
            if self.admissible(first, &chosen, rule) {
                chosen.push(first);
                continue;
            }
            match self.choose(key, fragment, &chosen, rule, &[]) {
                Some(position) => chosen.push(position),
                None => return Err(self.infeasible(scheme, spread, rule)),
            }
        }
        Ok(Placement {
            epoch: self.epoch,
            nodes: chosen.iter().map(|p| self.node_ids[*p as usize]).collect(),
        })
    }

    /// Chooses a node for lost fragment `fragment`, keeping every other entry of
    /// `current` (the survivors; `None` marks other lost fragments) where it is and
    /// never choosing a node in `exclude` (e.g. the node that lost it). Uses the
    /// fragment's own hash sequence, so when the rest of the placement is unchanged
    /// this is the node [`PlacementMap::place`] now gives that fragment.
    pub fn place_replacement(
        &self,
        key: u64,
        scheme: Scheme,
        spread: Spread,
        current: &[Option<NodeId>],
        fragment: usize,
        exclude: &[NodeId],
    ) -> Result<NodeId, PlacementError> {
        if fragment >= scheme.width() || current.len() != scheme.width() {
            return Err(PlacementError::FragmentOutOfRange {
                index: fragment.max(current.len()),
                scheme,
            });
        }
        let rule = self.rule(scheme, spread)?;
        let mut survivors = Vec::with_capacity(current.len());
        for (index, node) in current.iter().enumerate() {
            if let (Some(node), true) = (node, index != fragment) {
                survivors.push(self.position(*node)?);
            }
        }
        let mut excluded = Vec::with_capacity(exclude.len());
        for node in exclude {
            if let Ok(position) = self.position(*node) {
                excluded.push(position);
            }
        }
        let position = self
            .choose(key, fragment, &survivors, rule, &excluded)
            .ok_or_else(|| {
                PlacementError::Infeasible(format!(
                    "no node can take fragment {fragment} of {scheme}: every node that \
                     accepts fragments is excluded, already holds one, or would put more \
                     than {} fragments in one {}",
                    rule.cap_text(),
                    rule.domain_text()
                ))
            })?;
        Ok(self.node_ids[position as usize])
    }

    fn choose(
        &self,
        key: u64,
        fragment: usize,
        chosen: &[u32],
        rule: Rule,
        excluded: &[u32],
    ) -> Option<u32> {
        let slots = self.slot_nodes.len() as u32;
        for attempt in 0..ATTEMPTS_PER_FRAGMENT_MAX {
            let slot = jump_hash(attempt_key(key, fragment, attempt), slots);
            let position = self.slot_nodes[slot as usize];
            if self.admissible(position, chosen, rule) && !excluded.contains(&position) {
                return Some(position);
            }
        }
        // Exhaustive pass in hash-rank order: the admissible node with the highest
        // rendezvous hash for this fragment, so the fallback is deterministic and
        // still spreads keys evenly.
        let fragment_key = attempt_key(key, fragment, u32::MAX);
        (0..self.node_ids.len() as u32)
            .filter(|p| self.admissible(*p, chosen, rule) && !excluded.contains(p))
            .max_by_key(|p| mix64(fragment_key ^ u64::from(self.node_ids[*p as usize].0)))
    }

    fn admissible(&self, position: u32, chosen: &[u32], rule: Rule) -> bool {
        let index = position as usize;
        if !self.accepts[index] || chosen.contains(&position) {
            return false;
        }
        let Some(cap) = rule.cap else {
            return true;
        };
        let zone = self.zone_of[index];
        let same_zone = chosen
            .iter()
            .filter(|c| self.zone_of[**c as usize] == zone)
            .count();
        if same_zone >= cap {
            return false;
        }
        if rule.domain == FailureDomain::Region {
            let region = self.region_of[index];
            let same_region = chosen
                .iter()
                .filter(|c| self.region_of[**c as usize] == region)
                .count();
            if same_region >= cap {
                return false;
            }
        }
        true
    }

    fn rule(&self, scheme: Scheme, spread: Spread) -> Result<Rule, PlacementError> {
        if let Err(invalid) = scheme.validate() {
            return Err(PlacementError::Infeasible(invalid.to_string()));
        }
        if scheme.width() == 0 {
            return Err(PlacementError::Infeasible(format!(
                "{scheme} has no fragments to place"
            )));
        }
        if spread.survive == FailureDomain::Node {
            return Ok(Rule {
                domain: FailureDomain::Node,
                cap: None,
            });
        }
        let cap = scheme.tolerated_losses();
        if cap == 0 {
            return Err(PlacementError::Infeasible(format!(
                "{scheme} tolerates no lost fragment, so no placement survives losing a {}",
                Rule::name_of(spread.survive)
            )));
        }
        Ok(Rule {
            domain: spread.survive,
            cap: Some(cap),
        })
    }

    /// The largest placement the rule allows with the nodes that accept fragments
    /// (the rank of the laminar matroid).
    fn capacity_under(&self, rule: Rule) -> usize {
        let Some(cap) = rule.cap else {
            return self.accepting_count;
        };
        let mut per_region = vec![0usize; self.region_names.len()];
        for (zone, accepting) in self.accepting_per_zone.iter().enumerate() {
            per_region[self.zone_region[zone] as usize] += (*accepting as usize).min(cap);
        }
        if rule.domain == FailureDomain::Region {
            per_region.iter().map(|n| (*n).min(cap)).sum()
        } else {
            per_region.iter().sum()
        }
    }

    fn infeasible(&self, scheme: Scheme, spread: Spread, rule: Rule) -> PlacementError {
        let zones_used = self.accepting_per_zone.iter().filter(|n| **n > 0).count();
        let mut per_zone: Vec<String> = self
            .zone_names
            .iter()
            .zip(&self.accepting_per_zone)
            .filter(|(_, count)| **count > 0)
            .take(8)
            .map(|(zone, count)| format!("{zone}: {count}"))
            .collect();
        if zones_used > per_zone.len() {
            per_zone.push("…".into());
        }
        let limit = match rule.cap {
            Some(_) => format!(
                " with at most {} per {}",
                rule.cap_text(),
                rule.domain_text()
            ),
            None => String::new(),
        };
        PlacementError::Infeasible(format!(
            "{scheme} needs {} distinct nodes{limit} (spread {:?}); only {} are possible: \
             {} nodes accept fragments, in {zones_used} zones and {} regions [{}]",
            scheme.width(),
            spread.survive,
            self.capacity_under(rule),
            self.accepting_count,
            self.regions_with_accepting_nodes(),
            per_zone.join(", "),
        ))
    }

    fn regions_with_accepting_nodes(&self) -> usize {
        let mut seen = vec![false; self.region_names.len()];
        for (zone, accepting) in self.accepting_per_zone.iter().enumerate() {
            if *accepting > 0 {
                seen[self.zone_region[zone] as usize] = true;
            }
        }
        seen.iter().filter(|s| **s).count()
    }

    fn position(&self, node: NodeId) -> Result<u32, PlacementError> {
        self.node_ids
            .binary_search(&node)
            .map(|p| p as u32)
            .map_err(|_| PlacementError::UnknownNode(node, self.epoch))
    }
}

/// The spread rule in force for one scheme.
#[derive(Clone, Copy, Debug)]
struct Rule {
    domain: FailureDomain,
    /// Fragments allowed per zone (and per region at `Region`); `None` at `Node`.
    cap: Option<usize>,
}

impl Rule {
    fn name_of(domain: FailureDomain) -> &'static str {
        match domain {
            FailureDomain::Node => "node",
            FailureDomain::Zone => "zone",
            FailureDomain::Region => "region",
        }
    }

    fn domain_text(self) -> &'static str {
        match self.domain {
            FailureDomain::Region => "zone and per region",
            other => Self::name_of(other),
        }
    }

    fn cap_text(self) -> String {
        self.cap
            .map_or_else(|| "1".to_string(), |cap| cap.to_string())
    }
}

/// The hash for one attempt of one fragment. Distinct (fragment, attempt) pairs give
/// independent-looking keys, so each fragment has its own rejection sequence and a
/// change to one fragment's choice does not cascade into the others' sequences.
fn attempt_key(key: u64, fragment: usize, attempt: u32) -> u64 {
    let salt = ((fragment as u64) << 32) | u64::from(attempt);
    mix64(key ^ mix64(salt.wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

fn position_or_push(names: &mut Vec<String>, index: &mut HashMap<String, u32>, name: &str) -> u32 {
    if let Some(position) = index.get(name) {
        return *position;
    }
    let position = names.len() as u32;
    names.push(name.to_string());
    index.insert(name.to_string(), position);
    position
}

/// One-shot placement (builds a [`PlacementMap`]; keep a map per epoch instead when
/// placing many keys).
pub fn place(
    topology: &Topology,
    key: u64,
    scheme: Scheme,
    spread: Spread,
) -> Result<Placement, PlacementError> {
    PlacementMap::new(topology).place(key, scheme, spread)
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<String> = self.nodes.iter().map(|n| n.to_string()).collect();
        write!(f, "epoch {}: [{}]", self.epoch, nodes.join(", "))
    }
}

#[cfg(test)]
mod tests;
