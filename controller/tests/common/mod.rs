#![allow(dead_code, clippy::unwrap_used)]

use shardlet_controller::domains::{Domains, Shape};
use shardlet_controller::policy::{decide, PolicyConfig, PolicyInput, SchemeTable, Target};
use shardlet_controller::view::{FragmentLocation, ShardletState};
use shardlet_core::{
    AccessClass, FragmentIndex, Generation, Node, NodeId, NodeState, ObjectId, PlacementMap,
    RedundancyLevel, Scheme, ShardletId, Topology,
};

/// Reed-Solomon with `data` data and `parity` parity fragments.
pub fn rs(data: u8, parity: u8) -> Scheme {
    Scheme::ErasureCoded { data, parity }
}

/// `copies` replicas.
pub fn copies(copies: u8) -> Scheme {
    Scheme::Replicated { copies }
}

/// `regions × zones_per_region × nodes_per_zone` nodes, ids in zone-major order.
pub fn topology(regions: u32, zones_per_region: u32, nodes_per_zone: u32) -> Topology {
    let mut nodes = Vec::new();
    let mut id = 0;
    for region in 0..regions {
        for zone in 0..zones_per_region {
            for _ in 0..nodes_per_zone {
                nodes.push(Node {
                    id: NodeId(id),
                    name: format!("node-{id}"),
                    address: format!("127.0.0.1:{}", 10_000 + id),
                    region: format!("r{region}"),
                    zone: format!("r{region}-z{zone}"),
                    capacity_bytes: 1 << 40,
                    free_bytes: 1 << 39,
                    weight: 1.0,
                    state: NodeState::Up,
                    latency_us: Some(100 + u64::from(id % 7) * 100),
                });
                id += 1;
            }
        }
    }
    Topology::new(1, nodes).unwrap()
}

pub struct Cluster {
    pub topology: Topology,
    pub map: PlacementMap,
    pub domains: Domains,
}

impl Cluster {
    pub fn new(topology: Topology) -> Self {
        let map = PlacementMap::new(&topology);
        let domains = Domains::new(&topology);
        Self {
            topology,
            map,
            domains,
        }
    }

    pub fn zone_of(&self, node: NodeId) -> String {
        self.topology.node(node).unwrap().zone.clone()
    }

    pub fn region_of(&self, node: NodeId) -> String {
        self.topology.node(node).unwrap().region.clone()
    }

    pub fn with_down(&self, down: &[NodeId]) -> Self {
        let mut cluster = Self::new(self.topology.clone());
        for node in down {
            cluster = cluster.with_state(*node, NodeState::Down);
        }
        cluster
    }

    pub fn with_state(&self, node: NodeId, state: NodeState) -> Self {
        let epoch = self.topology.epoch() + 1;
        Self::new(self.topology.with_node_state(epoch, node, state).unwrap())
    }
}

pub fn shardlet_id(seed: u64) -> ShardletId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&seed.to_be_bytes());
    bytes[8..].copy_from_slice(&seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    ShardletId::new(ObjectId(bytes), 0)
}

/// A shardlet placed by core placement at generation 1.
pub fn placed(
    cluster: &Cluster,
    seed: u64,
    level: RedundancyLevel,
    scheme: Scheme,
) -> ShardletState {
    let id = shardlet_id(seed);
    let spread = shardlet_core::Spread::for_level(level);
    let mut nodes = cluster
        .map
        .place(id.hash_key(), scheme, spread)
        .unwrap()
        .nodes;
    cluster.domains.even_out(
        &cluster.map,
        Shape {
            key: id.hash_key(),
            scheme,
            spread,
        },
        &mut nodes,
        &[],
    );
    state_on(id, level, scheme, &nodes)
}

pub fn state_on(
    id: ShardletId,
    level: RedundancyLevel,
    scheme: Scheme,
    nodes: &[NodeId],
) -> ShardletState {
    ShardletState {
        id,
        level,
        size_bytes: 2 << 20,
        scheme,
        generation: Generation(1),
        fragments: nodes
            .iter()
            .enumerate()
            .map(|(index, node)| FragmentLocation {
                index: FragmentIndex(index as u8),
                node: *node,
                generation: Generation(1),
            })
            .collect(),
        layout_changed_at_ms: 0,
    }
}

/// What the default policy decides over `cluster` for `state`, read as `class` at
/// `now_ms` while each node fails with `node_risk`.
pub fn decide_by_default(
    cluster: &Cluster,
    state: &ShardletState,
    class: AccessClass,
    node_risk: &dyn Fn(NodeId) -> f64,
    now_ms: u64,
) -> Target {
    let config = PolicyConfig::default();
    let table = SchemeTable::new(&config, &cluster.map).unwrap();
    let input = PolicyInput {
        state,
        class,
        node_risk,
        now_ms,
    };
    decide(&config, &table, &cluster.map, &cluster.domains, &input).unwrap()
}
