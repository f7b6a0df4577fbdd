//! The layout record (`g/layout`): the operator's description of the storage nodes,
//! versioned, with the changes staged for the next version.
//!
//! Format history (the record's version byte, [`Record::FORMAT_VERSION`]):
//! - 1: this shape. A later incompatible change bumps the byte and ships a
//!   `migrate_from_1` here that turns a version-1 document into the new shape; a reader
//!   refuses a byte it does not know rather than misread it, so a gateway of the older
//!   build keeps the last layout it read (and says so) until it is upgraded. Fields
//!   added with `#[serde(default)]` need no bump.
//! - 0 (no record): clusters from before layouts lived in meta-raft. Their topology
//!   file becomes the first version with `shardlet admin layout import FILE`.
//!
//! What is *not* here: liveness (up / suspect / down). The controller writes that into
//! each node's [`NodeRecord`](crate::schema::NodeRecord); the layout is what the
//! operator decided, the node records what the controller observed.

use serde::{Deserialize, Serialize};
use shardlet_core::NodeId;

use crate::schema::Record;

/// What the operator decided about a node (liveness is the controller's, elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminState {
    /// Takes new fragments.
    Active,
    /// Takes nothing new; its fragments are moved away while it still serves reads.
    Draining,
    /// Gone for good. Kept in the layout so its placement slots stay where they are
    /// and its id and name are never given to another machine.
    Decommissioned,
}

impl AdminState {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Active => "active",
            AdminState::Draining => "draining",
            AdminState::Decommissioned => "decommissioned",
        }
    }
}

/// One node of an applied layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayoutNode {
    pub id: NodeId,
    /// A DNS label (`shardlet_auth::NodeName`): the node's identity and its key's name.
    pub name: String,
    /// `host:port` of the node's API.
    pub address: String,
    pub region: String,
    pub zone: String,
    pub capacity_bytes: u64,
    /// Share of new data; `None`: derived from the capacity (1.0 per TiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    pub state: AdminState,
}

impl LayoutNode {
    /// The weight placement uses.
    pub fn effective_weight(&self) -> f64 {
        self.weight
            .unwrap_or_else(|| shardlet_core::Node::default_weight(self.capacity_bytes))
    }
}

/// A role given to a node by `layout assign` or by the node's announcement: every field
/// the change sets (`None`: unchanged for a node in the layout; missing for a new one,
/// which `apply` then refuses, naming it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleAssignment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// What a staged change does to its node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Add the node, or change its role (and make it active again if it was draining).
    Assign(RoleAssignment),
    /// Drain the node: it takes nothing new and its fragments move away.
    Remove,
    /// The node is gone for good (dead hardware): its fragments are rebuilt elsewhere.
    Decommission,
}

/// Who staged a change. An announcement never overwrites an operator's change, and
/// auto-apply applies announcements only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    Operator,
    /// The node announced itself (`shardlet node --name … --controller …`).
    Announced,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StagedChange {
    /// The node's name.
    pub name: String,
    #[serde(flatten)]
    pub change: Change,
    pub source: ChangeSource,
    pub staged_unix_ms: u64,
}

/// The cluster layout: applied nodes and the next version's staged changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayoutRecord {
    /// The applied version: 0 before anything was applied, then one more per apply
    /// (and per address change a node announces).
    pub version: u64,
    /// The id the next new node gets: ids are allocated increasingly and never reused,
    /// so a new node's placement slots go at the end (placement moves only ~1/n).
    pub next_node_id: u32,
    /// Applied nodes, sorted by id, decommissioned ones included.
    pub nodes: Vec<LayoutNode>,
    /// Changes waiting for `apply`, at most one per node name, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staged: Vec<StagedChange>,
    /// When and how the current version was made (`import`, `apply`, `auto-apply`,
    /// `address`).
    #[serde(default)]
    pub applied_unix_ms: u64,
    #[serde(default)]
    pub applied_by: String,
}

impl Default for LayoutRecord {
    fn default() -> Self {
        Self {
            version: 0,
            // Id 0 is never allocated: a storage node reports 0 while it has no id.
            next_node_id: 1,
            nodes: Vec::new(),
            staged: Vec::new(),
            applied_unix_ms: 0,
            applied_by: String::new(),
        }
    }
}

impl LayoutRecord {
    pub fn node_named(&self, name: &str) -> Option<&LayoutNode> {
        self.nodes.iter().find(|node| node.name == name)
    }

    pub fn node(&self, id: NodeId) -> Option<&LayoutNode> {
        self.nodes
            .binary_search_by_key(&id, |node| node.id)
            .ok()
            .map(|position| &self.nodes[position])
    }

    pub fn staged_for(&self, name: &str) -> Option<&StagedChange> {
        self.staged.iter().find(|change| change.name == name)
    }

    /// Replaces (or adds) the staged change of `change.name`, keeping the list sorted.
    pub fn stage(&mut self, change: StagedChange) {
        match self
            .staged
            .binary_search_by(|staged| staged.name.as_str().cmp(&change.name))
        {
            Ok(position) => self.staged[position] = change,
            Err(position) => self.staged.insert(position, change),
        }
    }

    /// Drops the staged change of `name`; whether there was one.
    pub fn unstage(&mut self, name: &str) -> bool {
        let before = self.staged.len();
        self.staged.retain(|change| change.name != name);
        self.staged.len() != before
    }
}

impl Record for LayoutRecord {
    const KIND: &'static str = "cluster layout";
    const FORMAT_VERSION: u8 = 1;
}
