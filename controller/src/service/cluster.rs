//! The storage nodes as the controller sees them: the cluster layout from meta-raft
//! (who exists, where, at which address, what the operator decided: watched by the
//! layout worker, never going back), their liveness in meta-raft (`n/{id}`
//! [`NodeRecord`]s, written by the controller), one [`NodeClient`] each, and the
//! placement map for their current states (down, draining and decommissioned nodes take
//! no new fragments).
//!
//! A new layout version swaps [`Members`] in one pointer store: a pass in progress keeps
//! the members it started with, the next pass sees the new ones.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use shardlet_auth::{Key, KeyName, NodeName, SigningKey};
use shardlet_core::{NodeId, NodeState, PlacementMap, Topology};
use shardlet_meta::{Batch, BatchOutcome, Condition};
use shardlet_model::layout::watch::LayoutWatch;
use shardlet_model::layout::{to_topology, LayoutHistory, LayoutRecord, Liveness, Seen};
use shardlet_model::schema::{encode, keys, NodeRecord};
use shardlet_model::{Metadata, MetadataError, Stored};
use shardlet_net::Transport;
use shardlet_node::client::ClientOptions;
use shardlet_node::NodeClient;

use super::records;
use crate::domains::Domains;

/// Node records read per pass; a cluster with more nodes than this is not supported
/// by one controller.
pub const NODES_MAX: usize = 10_000;

/// The nodes of one layout version, with a client each.
pub struct Members {
    /// The layout these members come from (version 0, no nodes: none read yet).
    pub layout: Arc<LayoutRecord>,
    /// The layout's placement topology with the operator's states only (liveness is
    /// applied by [`Cluster::view`]).
    pub topology: Topology,
    clients: BTreeMap<NodeId, (String, NodeClient)>,
}

impl Members {
    pub fn version(&self) -> u64 {
        self.layout.version
    }
}

pub struct Cluster {
    /// The `storage` key: every node's key (`node-NAME`) derives from it.
    storage_key: Key,
    transport: Transport,
    options: ClientOptions,
    watch: LayoutWatch,
    members: RwLock<Arc<Members>>,
}

/// One consistent picture of the nodes for a pass of the workers.
pub struct ClusterView {
    pub layout_version: u64,
    pub states: BTreeMap<NodeId, NodeState>,
    pub map: PlacementMap,
    pub domains: Domains,
    /// (zone, region) of each node, numbered in layout order (for spread checks).
    pub zones_and_regions: BTreeMap<NodeId, (u32, u32)>,
}

impl ClusterView {
    pub fn state(&self, node: NodeId) -> NodeState {
        self.states.get(&node).copied().unwrap_or(NodeState::Up)
    }

    /// A node whose fragments cannot be read: declared down, decommissioned, or not in
    /// the layout at all.
    pub fn is_lost(&self, node: NodeId) -> bool {
        match self.states.get(&node) {
            Some(state) => matches!(state, NodeState::Down | NodeState::Decommissioned),
            None => true,
        }
    }
}

impl Cluster {
    /// No members until the first layout is installed ([`Cluster::refresh_layout`]).
    /// Each node's client signs with its key derived from `storage_key`, over
    /// `transport` (layout addresses are `host:port`; the scheme is the transport's).
    pub fn new(storage_key: Key, transport: Transport) -> Self {
        let options = ClientOptions {
            connect_timeout: Duration::from_secs(1),
            transport: transport.clone(),
            ..ClientOptions::default()
        };
        Self {
            storage_key,
            transport,
            options,
            watch: LayoutWatch::new(),
            members: RwLock::new(Arc::new(Members {
                layout: Arc::new(LayoutRecord::default()),
                topology: Topology::empty(0),
                clients: BTreeMap::new(),
            })),
        }
    }

    /// The members of the newest layout installed.
    pub fn members(&self) -> Arc<Members> {
        self.members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current layout and the one before it, as this controller saw them. The
    /// rebalance does not need it (it compares each record's `layout_version` with the
    /// version in use, which survives restarts); kept for diagnostics and tests.
    pub fn layout_history(&self) -> LayoutHistory {
        self.watch.history()
    }

    /// Reads the layout and installs it when it is newer (never an older one).
    pub async fn refresh_layout(&self, metadata: &Metadata) -> Result<Seen, MetadataError> {
        let seen = self.watch.refresh(metadata).await?;
        if let Seen::Newer { .. } = seen {
            if let Some(layout) = self.watch.current() {
                self.install(layout);
            }
        }
        Ok(seen)
    }

    /// Installs `layout` if newer than the one installed (a layout this process just
    /// wrote itself, say).
    pub fn install_layout(&self, layout: LayoutRecord) {
        if let Seen::Newer { .. } = self.watch.install(layout) {
            if let Some(layout) = self.watch.current() {
                self.install(layout);
            }
        }
    }

    fn install(&self, layout: Arc<LayoutRecord>) {
        let topology = match to_topology(&layout, &Liveness::new()) {
            Ok(topology) => topology,
            Err(error) => {
                // Written through the layout's own checks, so this is a bug or a record
                // written around them: keep the members we have, loudly.
                tracing::error!(version = layout.version, %error, "layout is not a valid topology; keeping the previous one");
                return;
            }
        };
        let previous = self.members();
        let mut clients = BTreeMap::new();
        for node in topology.nodes() {
            if let Some((address, client)) = previous.clients.get(&node.id) {
                let same_name = previous
                    .topology
                    .node(node.id)
                    .is_some_and(|old| old.name == node.name);
                if *address == node.address && same_name {
                    clients.insert(node.id, (address.clone(), client.clone()));
                    continue;
                }
            }
            match self.new_client(&node.name, &node.address) {
                Ok(client) => {
                    clients.insert(node.id, (node.address.clone(), client));
                }
                Err(error) => tracing::error!(node = %node.id, %error, "no client for this node"),
            }
        }
        tracing::info!(
            from = previous.version(),
            to = layout.version,
            nodes = topology.nodes().len(),
            "cluster layout installed"
        );
        *self.members.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Members {
            layout,
            topology,
            clients,
        });
    }

    fn new_client(&self, name: &str, address: &str) -> anyhow::Result<NodeClient> {
        let name = NodeName::parse(name)?;
        let key_name = KeyName::Node(name);
        let key = SigningKey::new(
            key_name,
            shardlet_auth::keys::derive(&self.storage_key, key_name),
        );
        NodeClient::with_options(&self.transport.url(address), key, self.options.clone())
            .map_err(|error| anyhow::anyhow!("node {name} at {address}: {error}"))
    }

    pub fn client(&self, node: NodeId) -> anyhow::Result<NodeClient> {
        self.members()
            .clients
            .get(&node)
            .map(|(_, client)| client.clone())
            .ok_or_else(|| anyhow::anyhow!("node {node} is not in the cluster layout"))
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

    /// Creates the record of every layout node that has none (state Up). Idempotent:
    /// each create is conditioned on the key being absent.
    pub async fn register_nodes(&self, metadata: &Metadata, now_ms: u64) -> anyhow::Result<()> {
        let existing = self.node_records(metadata).await?;
        let members = self.members();
        for node in members.topology.nodes() {
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

    /// The placement view: the layout's nodes with each one's placement state (the
    /// operator's state combined with the recorded liveness; no record counts as Up).
    pub fn view(&self, records: &BTreeMap<NodeId, Stored<NodeRecord>>) -> ClusterView {
        let members = self.members();
        let liveness: Liveness = records
            .iter()
            .map(|(id, stored)| (*id, stored.record.state))
            .collect();
        // The same nodes with other states: validation cannot fail differently.
        let topology =
            to_topology(&members.layout, &liveness).unwrap_or_else(|_| members.topology.clone());
        let mut zones: Vec<&str> = Vec::new();
        let mut regions: Vec<&str> = Vec::new();
        let mut zones_and_regions = BTreeMap::new();
        for node in topology.nodes() {
            let zone = number_of(&mut zones, &node.zone);
            let region = number_of(&mut regions, &node.region);
            zones_and_regions.insert(node.id, (zone, region));
        }
        ClusterView {
            zones_and_regions,
            layout_version: members.version(),
            states: topology
                .nodes()
                .iter()
                .map(|node| (node.id, node.state))
                .collect(),
            map: PlacementMap::new(&topology),
            domains: Domains::new(&topology),
        }
    }
}

/// The position of `name` in `names`, appended when new.
fn number_of<'a>(names: &mut Vec<&'a str>, name: &'a str) -> u32 {
    match names.iter().position(|known| *known == name) {
        Some(position) => position as u32,
        None => {
            names.push(name);
            (names.len() - 1) as u32
        }
    }
}
