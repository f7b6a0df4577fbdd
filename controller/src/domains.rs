//! Failure domains of a topology, and "as spread out as the nodes allow".
//!
//! Core placement enforces a hard cap (no zone holds more fragments than the scheme
//! can lose). The controller adds a soft goal on top: no zone holds more than
//! `ceil(width / zones)` fragments when enough zones accept fragments, so three
//! replicas on a three-zone cluster land in three zones, not two.

use std::collections::BTreeMap;

use shardlet_core::{NodeId, PlacementError, PlacementMap, Scheme, Spread, Topology};

#[derive(Clone, Debug, Default)]
pub struct Domains {
    zone_of: BTreeMap<NodeId, u32>,
    nodes_by_zone: Vec<Vec<NodeId>>,
    accepting_zones: usize,
}

impl Domains {
    pub fn new(topology: &Topology) -> Self {
        let mut zone_index: BTreeMap<&str, u32> = BTreeMap::new();
        let mut zone_of = BTreeMap::new();
        let mut nodes_by_zone: Vec<Vec<NodeId>> = Vec::new();
        let mut accepting: Vec<bool> = Vec::new();
        for node in topology.nodes() {
            let next = zone_index.len() as u32;
            let zone = *zone_index.entry(node.zone.as_str()).or_insert(next);
            if zone as usize == nodes_by_zone.len() {
                nodes_by_zone.push(Vec::new());
                accepting.push(false);
            }
            nodes_by_zone[zone as usize].push(node.id);
            accepting[zone as usize] |= node.state.accepts_fragments();
            zone_of.insert(node.id, zone);
        }
        Self {
            zone_of,
            nodes_by_zone,
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

    /// Nodes in zones that already hold `soft_cap` of `others`.
    fn crowded(&self, others: &[NodeId], width: usize) -> Vec<NodeId> {
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
            .flat_map(|(zone, _)| self.nodes_by_zone[zone as usize].iter().copied())
            .collect()
    }

    /// A node for fragment `fragment` (`current[fragment]` is ignored), preferring
    /// zones below the soft cap and falling back to core placement's hard cap.
    pub fn place_spread(
        &self,
        map: &PlacementMap,
        key: u64,
        scheme: Scheme,
        spread: Spread,
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
        let mut avoid = self.crowded(&others, scheme.width());
        if !avoid.is_empty() {
            avoid.extend_from_slice(exclude);
            if let Ok(node) = map.place_replacement(key, scheme, spread, current, fragment, &avoid)
            {
                return Ok(node);
            }
        }
        map.place_replacement(key, scheme, spread, current, fragment, exclude)
    }

    /// Moves fragments of `nodes` out of zones above the soft cap where another zone
    /// can take them.
    pub fn even_out(
        &self,
        map: &PlacementMap,
        key: u64,
        scheme: Scheme,
        spread: Spread,
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
            let mut avoid = self.crowded(&others, nodes.len());
            avoid.extend_from_slice(exclude);
            if let Ok(node) = map.place_replacement(key, scheme, spread, &current, fragment, &avoid)
            {
                nodes[fragment] = node;
            }
        }
    }
}
