//! Topology: regions → zones → nodes, and the file that describes them.
//!
//! A topology is a list of nodes, each naming its region and zone; the hierarchy is
//! derived from those names. It carries an `epoch` that increases with every change, so
//! a placement computed for one epoch is recognisably computed for it.
//!
//! Core does no I/O: the caller reads the file and hands the text to
//! [`Topology::from_toml_str`]. Every rejection carries `path:line:column: reason`,
//! syntax and meaning alike (the example file is `examples/topology.toml`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use crate::ids::NodeId;

/// One TiB: the capacity that earns a default weight of 1.0.
pub const BYTES_PER_UNIT_WEIGHT: u64 = 1 << 40;

/// Weights above this are a typo, not a machine (4096 ≈ a 4 PiB node at the default
/// scale), and would blow up the placement slot table.
pub const WEIGHT_MAX: f64 = 4096.0;

/// A node's lifecycle as the controller sees it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Serving and accepting new fragments.
    #[default]
    Up,
    /// Missed heartbeats but not yet declared down: still a placement target, because
    /// a flapping heartbeat must not move data.
    Suspect,
    /// Declared failed: its fragments are being repaired elsewhere.
    Down,
    /// Being emptied on purpose: serves reads, receives nothing new.
    Draining,
    /// Gone for good: kept in the list so its placement slots stay where they are.
    Decommissioned,
}

impl NodeState {
    /// Whether new fragments may be placed on a node in this state.
    pub fn accepts_fragments(self) -> bool {
        matches!(self, NodeState::Up | NodeState::Suspect)
    }
}

/// One storage node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub id: NodeId,
    pub name: String,
    /// `host:port` of the node's HTTP API.
    pub address: String,
    pub region: String,
    pub zone: String,
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    /// Relative share of new data, > 0. Defaults to `capacity_bytes / 1 TiB`, so by
    /// default a node receives data in proportion to its size.
    pub weight: f64,
    pub state: NodeState,
    /// Measured round-trip latency to the node, when known.
    pub latency_us: Option<u64>,
}

impl Node {
    /// The weight a node gets when its entry does not set one.
    pub fn default_weight(capacity_bytes: u64) -> f64 {
        capacity_bytes as f64 / BYTES_PER_UNIT_WEIGHT as f64
    }
}

/// A validated topology: nodes sorted by id, unique ids and names, sane numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    epoch: u64,
    nodes: Vec<Node>,
}

/// Why a list of nodes is not a valid topology. `node_position` is the node's position
/// in the list given (file order), `field` the offending field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidTopology {
    pub node_position: Option<usize>,
    pub field: &'static str,
    pub reason: String,
}

/// A rejected topology file, formatted `path:line:column: reason`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}:{column}: {reason}")]
pub struct TopologyFileError {
    pub source_name: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub reason: String,
}

/// The hierarchy view: one region, its zones and their nodes (all sorted by name/id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub name: String,
    pub zones: Vec<Zone>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub nodes: Vec<NodeId>,
}

impl Topology {
    /// Validates and sorts the nodes by id. The checks are the ones the file loader
    /// applies, so a topology built in code is as trustworthy as one read from disk.
    pub fn new(epoch: u64, mut nodes: Vec<Node>) -> Result<Self, InvalidTopology> {
        validate(&nodes)?;
        nodes.sort_by_key(|node| node.id);
        Ok(Self { epoch, nodes })
    }

    /// No nodes at all: what a process holds before any layout exists. Every placement
    /// on it fails, naming the missing nodes; [`Topology::new`] refuses an empty list
    /// because a file or layout without nodes is a mistake, this is a state.
    pub fn empty(epoch: u64) -> Self {
        Self {
            epoch,
            nodes: Vec::new(),
        }
    }

    /// Parses a topology file. `source_name` (usually the path) only labels errors.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Self, TopologyFileError> {
        let at = |offset: usize, reason: String| {
            let (line, column) = line_and_column(text, offset);
            TopologyFileError {
                source_name: source_name.to_string(),
                line,
                column,
                reason,
            }
        };
        let file: TopologyFile = toml::from_str(text).map_err(|error| {
            let offset = error.span().map_or(0, |span| span.start);
            at(offset, error.message().trim().to_string())
        })?;
        let spans: Vec<NodeSpans> = file.nodes.iter().map(NodeSpans::of).collect();
        let nodes: Vec<Node> = file.nodes.into_iter().map(NodeEntry::into_node).collect();
        validate(&nodes).map_err(|invalid| {
            let offset = match invalid.node_position {
                Some(position) => spans[position].of_field(invalid.field),
                None => file.epoch.span().start,
            };
            at(offset, invalid.reason)
        })?;
        Self::new(*file.epoch.get_ref(), nodes).map_err(|invalid| at(0, invalid.reason))
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// All nodes, sorted by id (whatever their state).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes
            .binary_search_by_key(&id, |node| node.id)
            .ok()
            .map(|position| &self.nodes[position])
    }

    /// A copy at `epoch` with one node's state changed; `None` if there is no such node.
    pub fn with_node_state(&self, epoch: u64, id: NodeId, state: NodeState) -> Option<Self> {
        let mut next = self.clone();
        let position = next.nodes.binary_search_by_key(&id, |node| node.id).ok()?;
        next.nodes[position].state = state;
        next.epoch = epoch;
        Some(next)
    }

    /// Regions → zones → nodes, sorted by name (nodes by id).
    pub fn regions(&self) -> Vec<Region> {
        let mut tree: BTreeMap<&str, BTreeMap<&str, Vec<NodeId>>> = BTreeMap::new();
        for node in &self.nodes {
            tree.entry(&node.region)
                .or_default()
                .entry(&node.zone)
                .or_default()
                .push(node.id);
        }
        tree.into_iter()
            .map(|(region, zones)| Region {
                name: region.to_string(),
                zones: zones
                    .into_iter()
                    .map(|(zone, nodes)| Zone {
                        name: zone.to_string(),
                        nodes,
                    })
                    .collect(),
            })
            .collect()
    }
}

fn invalid(position: usize, field: &'static str, reason: String) -> InvalidTopology {
    InvalidTopology {
        node_position: Some(position),
        field,
        reason,
    }
}

fn validate(nodes: &[Node]) -> Result<(), InvalidTopology> {
    if nodes.is_empty() {
        return Err(InvalidTopology {
            node_position: None,
            field: "node",
            reason: "the topology has no nodes (add at least one [[node]] table)".into(),
        });
    }
    let mut ids = HashMap::new();
    let mut names = HashMap::new();
    let mut zone_regions: HashMap<&str, &str> = HashMap::new();
    for (position, node) in nodes.iter().enumerate() {
        if let Some(first) = ids.insert(node.id, position) {
            let reason = format!(
                "duplicate node id {} (also node #{} in file order)",
                node.id,
                first + 1
            );
            return Err(invalid(position, "id", reason));
        }
        if node.name.trim().is_empty() {
            return Err(invalid(position, "name", "node name is empty".into()));
        }
        if let Some(first) = names.insert(node.name.as_str(), position) {
            let reason = format!(
                "duplicate node name {:?} (also node #{} in file order)",
                node.name,
                first + 1
            );
            return Err(invalid(position, "name", reason));
        }
        validate_address(&node.address).map_err(|reason| invalid(position, "address", reason))?;
        if node.region.trim().is_empty() {
            return Err(invalid(position, "region", "region name is empty".into()));
        }
        if node.zone.trim().is_empty() {
            return Err(invalid(position, "zone", "zone name is empty".into()));
        }
        // A zone lives in exactly one region; otherwise "losing one zone" is ambiguous.
        let region = zone_regions.entry(&node.zone).or_insert(&node.region);
        if *region != node.region {
            let reason = format!(
                "zone {:?} is in region {:?} here but in region {:?} elsewhere",
                node.zone, node.region, region
            );
            return Err(invalid(position, "zone", reason));
        }
        if node.capacity_bytes == 0 {
            let reason = "capacity_bytes must be greater than 0".to_string();
            return Err(invalid(position, "capacity_bytes", reason));
        }
        if node.free_bytes > node.capacity_bytes {
            let reason = format!(
                "free_bytes {} is larger than capacity_bytes {}",
                node.free_bytes, node.capacity_bytes
            );
            return Err(invalid(position, "free_bytes", reason));
        }
        if !(node.weight > 0.0 && node.weight <= WEIGHT_MAX) {
            let reason = format!(
                "weight must be greater than 0 and at most {WEIGHT_MAX}, got {}",
                node.weight
            );
            return Err(invalid(position, "weight", reason));
        }
    }
    Ok(())
}

/// Checks a `host:port` address: a non-empty host without whitespace, a port from 1 to 65535.
pub fn validate_address(address: &str) -> Result<(), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("address {address:?} is not host:port"))?;
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(format!("address {address:?} has an empty or invalid host"));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err(format!("address {address:?} has an invalid port {port:?}")),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    epoch: Spanned<u64>,
    #[serde(rename = "node", default)]
    nodes: Vec<NodeEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeEntry {
    id: Spanned<u32>,
    name: Spanned<String>,
    address: Spanned<String>,
    region: Spanned<String>,
    zone: Spanned<String>,
    capacity_bytes: Spanned<u64>,
    /// Defaults to `capacity_bytes`: a new node is empty.
    free_bytes: Option<Spanned<u64>>,
    weight: Option<Spanned<f64>>,
    #[serde(default)]
    state: NodeState,
    latency_us: Option<u64>,
}

impl NodeEntry {
    fn into_node(self) -> Node {
        let capacity_bytes = *self.capacity_bytes.get_ref();
        Node {
            id: NodeId(*self.id.get_ref()),
            name: self.name.into_inner(),
            address: self.address.into_inner(),
            region: self.region.into_inner(),
            zone: self.zone.into_inner(),
            capacity_bytes,
            free_bytes: self
                .free_bytes
                .map_or(capacity_bytes, |free| *free.get_ref()),
            weight: self.weight.map_or_else(
                || Node::default_weight(capacity_bytes),
                |weight| *weight.get_ref(),
            ),
            state: self.state,
            latency_us: self.latency_us,
        }
    }
}

/// Where each validated field of one node entry starts in the file.
struct NodeSpans {
    id: usize,
    name: usize,
    address: usize,
    region: usize,
    zone: usize,
    capacity_bytes: usize,
    free_bytes: usize,
    weight: usize,
}

impl NodeSpans {
    fn of(entry: &NodeEntry) -> Self {
        let capacity_bytes = entry.capacity_bytes.span().start;
        Self {
            id: entry.id.span().start,
            name: entry.name.span().start,
            address: entry.address.span().start,
            region: entry.region.span().start,
            zone: entry.zone.span().start,
            capacity_bytes,
            // Defaulted fields point at the capacity they were derived from.
            free_bytes: entry
                .free_bytes
                .as_ref()
                .map_or(capacity_bytes, |free| free.span().start),
            weight: entry
                .weight
                .as_ref()
                .map_or(capacity_bytes, |weight| weight.span().start),
        }
    }

    fn of_field(&self, field: &str) -> usize {
        match field {
            "name" => self.name,
            "address" => self.address,
            "region" => self.region,
            "zone" => self.zone,
            "capacity_bytes" => self.capacity_bytes,
            "free_bytes" => self.free_bytes,
            "weight" => self.weight,
            _ => self.id,
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            NodeState::Up => "up",
            NodeState::Suspect => "suspect",
            NodeState::Down => "down",
            NodeState::Draining => "draining",
            NodeState::Decommissioned => "decommissioned",
        };
        f.write_str(text)
    }
}

#[cfg(test)]
mod tests;
