//! Failure domains of a topology, and "as spread out as the nodes allow".
//!
//! Core placement enforces a hard cap (no zone holds more fragments than the scheme
//! can lose). The controller adds a soft goal on top: no zone holds more than
//! `ceil(width / zones)` fragments when enough zones accept fragments, so three
//! replicas on a three-zone cluster land in three zones, not two.

use std::collections::{BTreeMap, BTreeSet};

use shardlet_core::{NodeId, PlacementError, PlacementMap, Scheme, Spread, Topology};

/// Rejected candidates before giving up on the soft goal (then core's hard cap
/// decides). With nine zones and one allowed, 64 tries miss with probability 0.05 %.
const SPREAD_TRIES_MAX: usize = 64;

/// What is being placed: the shardlet's placement key, its scheme and spread rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub key: u64,
    pub scheme: Scheme,
    pub spread: Spread,
}

#[derive(Clone, Debug, Default)]
pub struct Domains {
    zone_of: BTreeMap<NodeId, u32>,
    accepting_zones: usize,
}

impl Domains {
    pub fn new(topology: &Topology) -> Self {
        let mut zone_index: BTreeMap<&str, u32> = BTreeMap::new();
        let mut zone_of = BTreeMap::new();
        let mut accepting: Vec<bool> = Vec::new();
        for node in topology.nodes() {
            let next = zone_index.len() as u32;
            let zone = *zone_index.entry(node.zone.as_str()).or_insert(next);
            if zone as usize == accepting.len() {
                accepting.push(false);
            }
            accepting[zone as usize] |= node.state.accepts_fragments();
            zone_of.insert(node.id, zone);
        }
        Self {
            zone_of,
            accepting_zones: accepting.iter().filter(|a| **a).count(),
        }
    }

    pub fn zone_of(&self, node: NodeId) -> Option<u32> {
        self.zone_of.get(&node).copied()
    }

    /// The most fragments of one shardlet a zone should hold, when it can be helped.
    pub fn soft_cap(&self, width: usize) -> usize {
        width.div_ceil(self.accepting_zones.max(1))
    }

    /// Zones that already hold `soft_cap` of `others`.
    fn crowded(&self, others: &[NodeId], width: usize) -> BTreeSet<u32> {
        let mut per_zone: BTreeMap<u32, usize> = BTreeMap::new();
        for node in others {
            if let Some(zone) = self.zone_of(*node) {
                *per_zone.entry(zone).or_default() += 1;
            }
        }
        let cap = self.soft_cap(width);
        per_zone
            .into_iter()
            .filter(|(_, count)| *count >= cap)
            .map(|(zone, _)| zone)
            .collect()
    }

    /// Core's replacement for `fragment`, skipping nodes in `crowded` zones: each
    /// rejected node joins the exclusions and core moves on along the fragment's own
    /// hash sequence. Excluding whole zones up front would hand core exclusion lists
    /// of thousands of nodes on a large cluster.
    fn place_avoiding(
        &self,
        map: &PlacementMap,
        shape: Shape,
        current: &[Option<NodeId>],
        fragment: usize,
        exclude: &[NodeId],
        crowded: &BTreeSet<u32>,
    ) -> Option<NodeId> {
        let mut excluded = exclude.to_vec();
        for _ in 0..SPREAD_TRIES_MAX {
            let node = replacement(map, shape, current, fragment, &excluded).ok()?;
            match self.zone_of(node) {
                Some(zone) if crowded.contains(&zone) => excluded.push(node),
                _ => return Some(node),
            }
        }
        None
    }

    /// A node for fragment `fragment` (`current[fragment]` is ignored), preferring
    /// zones below the soft cap and falling back to core placement's hard cap.
    pub fn place_spread(
        &self,
        map: &PlacementMap,
        shape: Shape,
        current: &[Option<NodeId>],
        fragment: usize,
        exclude: &[NodeId],
    ) -> Result<NodeId, PlacementError> {
        let others: Vec<NodeId> = current
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != fragment)
            .filter_map(|(_, node)| *node)
            .collect();
        let crowded = self.crowded(&others, shape.scheme.width());
        if !crowded.is_empty() {
            if let Some(node) =
                self.place_avoiding(map, shape, current, fragment, exclude, &crowded)
            {
                return Ok(node);
            }
        }
        replacement(map, shape, current, fragment, exclude)
    }

    /// Moves fragments of `nodes` out of zones above the soft cap where another zone
    /// can take them.
    pub fn even_out(
        &self,
        map: &PlacementMap,
        shape: Shape,
        nodes: &mut [NodeId],
        exclude: &[NodeId],
    ) {
        let cap = self.soft_cap(nodes.len());
        for fragment in 0..nodes.len() {
            let zone = self.zone_of(nodes[fragment]);
            let same_zone = nodes
                .iter()
                .filter(|node| self.zone_of(**node) == zone)
                .count();
            if same_zone <= cap {
                continue;
            }
            let current: Vec<Option<NodeId>> = nodes.iter().copied().map(Some).collect();
            let others: Vec<NodeId> = nodes
                .iter()
                .enumerate()
                .filter(|(index, _)| *index != fragment)
                .map(|(_, node)| *node)
                .collect();
            let crowded = self.crowded(&others, nodes.len());
            if let Some(node) =
                self.place_avoiding(map, shape, &current, fragment, exclude, &crowded)
            {
                nodes[fragment] = node;
            }
        }
    }
}

/// Core placement's replacement for `fragment` of `shape`, never on `exclude`.
fn replacement(
    map: &PlacementMap,
    shape: Shape,
    current: &[Option<NodeId>],
    fragment: usize,
    exclude: &[NodeId],
) -> Result<NodeId, PlacementError> {
    map.place_replacement(
        shape.key,
        shape.scheme,
        shape.spread,
        current,
        fragment,
        exclude,
    )
}
