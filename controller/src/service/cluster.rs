//! The storage nodes as the controller sees them: the topology file (who exists, where,
//! at which address), their states in meta-raft (`n/{id}` [`NodeRecord`]s, written by
//! the controller), one [`NodeClient`] each, and the placement map for their current
//! states (down and draining nodes take no new fragments).

use std::collections::BTreeMap;
use std::time::Duration;

use shardlet_auth::{Key, KeyName, SigningKey};
use shardlet_core::{NodeId, NodeState, PlacementMap, Topology};
use shardlet_meta::{Batch, BatchOutcome, Condition};
use shardlet_model::schema::{encode, keys, NodeRecord};
use shardlet_model::{Metadata, Stored};
use shardlet_net::Transport;
use shardlet_node::client::ClientOptions;
use shardlet_node::NodeClient;

use super::records;
use crate::domains::Domains;

/// Node records read per pass; a cluster with more nodes than this is not supported
/// by one controller.
pub const NODES_MAX: usize = 10_000;

pub struct Cluster {
    topology: Topology,
    clients: BTreeMap<NodeId, NodeClient>,
}

/// One consistent picture of the nodes for a pass of the workers.
pub struct ClusterView {
    pub states: BTreeMap<NodeId, NodeState>,
    pub map: PlacementMap,
    pub domains: Domains,
}

impl ClusterView {
    pub fn state(&self, node: NodeId) -> NodeState {
        self.states.get(&node).copied().unwrap_or(NodeState::Up)
    }

    /// A node whose fragments cannot be read: declared down, decommissioned, or not in
    /// the topology at all.
    pub fn is_lost(&self, node: NodeId) -> bool {
        match self.states.get(&node) {
            Some(state) => matches!(state, NodeState::Down | NodeState::Decommissioned),
            None => true,
        }
    }
}

impl Cluster {
    /// One client per node, each signing with its node's key derived from `storage_key`,
    /// over `transport` (node addresses are `host:port`; the scheme is the transport's).
    pub fn new(
        topology: Topology,
        storage_key: &Key,
        transport: Transport,
    ) -> anyhow::Result<Self> {
        let options = ClientOptions {
            connect_timeout: Duration::from_secs(1),
            transport: transport.clone(),
            ..ClientOptions::default()
        };
        let mut clients = BTreeMap::new();
        for node in topology.nodes() {
            let name = KeyName::Node(node.id.0);
            let key = SigningKey::new(name, shardlet_auth::keys::derive(storage_key, name));
            let client =
                NodeClient::with_options(&transport.url(&node.address), key, options.clone())
                    .map_err(|error| anyhow::anyhow!("node {}: {error}", node.id))?;
            clients.insert(node.id, client);
        }
        Ok(Self { topology, clients })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn client(&self, node: NodeId) -> anyhow::Result<&NodeClient> {
        self.clients
            .get(&node)
            .ok_or_else(|| anyhow::anyhow!("node {node} is not in the topology"))
    }

    /// Every node record in meta-raft.
    pub async fn node_records(
        &self,
        metadata: &Metadata,
    ) -> anyhow::Result<BTreeMap<NodeId, Stored<NodeRecord>>> {
        let scan = records::nodes(metadata, NODES_MAX).await?;
        Ok(scan
            .records
            .into_iter()
            .map(|(_, versioned)| (versioned.record.id, versioned))
            .collect())
    }

    /// Creates the record of every topology node that has none (state Up). Idempotent:
    /// each create is conditioned on the key being absent.
    pub async fn register_nodes(&self, metadata: &Metadata, now_ms: u64) -> anyhow::Result<()> {
        let existing = self.node_records(metadata).await?;
        for node in self.topology.nodes() {
            if existing.contains_key(&node.id) {
                continue;
            }
            let record = NodeRecord {
                id: node.id,
                region: node.region.clone(),
                zone: node.zone.clone(),
                address: node.address.clone(),
                state: NodeState::Up,
                capacity_bytes: node.capacity_bytes,
                used_bytes: 0,
                last_heartbeat_unix_ms: now_ms,
                writes_refused: None,
            };
            let key = keys::node(node.id);
            let batch =
                Batch::of_put(key.clone(), encode(&record)).when(Condition::VersionEquals {
                    key: key.into(),
                    version: 0,
                });
            if let BatchOutcome::ConditionFailed { .. } = metadata.apply(batch).await? {
                tracing::debug!(node = %node.id, "node record created concurrently");
            }
        }
        Ok(())
    }

    /// The placement view for the given states (nodes without a record count as Up).
    pub fn view(&self, records: &BTreeMap<NodeId, Stored<NodeRecord>>) -> ClusterView {
        let states: BTreeMap<NodeId, NodeState> = self
            .topology
            .nodes()
            .iter()
            .map(|node| {
                let state = records
                    .get(&node.id)
                    .map_or(NodeState::Up, |versioned| versioned.record.state);
                (node.id, state)
            })
            .collect();
        let nodes = self
            .topology
            .nodes()
            .iter()
            .map(|node| {
                let mut node = node.clone();
                node.state = states.get(&node.id).copied().unwrap_or(NodeState::Up);
                node
            })
            .collect();
        // The same nodes with other states: validation cannot fail differently.
        let topology =
            Topology::new(self.topology.epoch(), nodes).unwrap_or_else(|_| self.topology.clone());
        ClusterView {
            states,
            map: PlacementMap::new(&topology),
            domains: Domains::new(&topology),
        }
    }
}
