//! What a layout must satisfy, and the next version computed from the staged changes.
//! Pure: no metadata access, so `apply`, auto-apply, `import` and the tests run the same
//! checks.
//!
//! A new version must:
//! - give every node a valid name (a DNS label), region and zone (DNS labels too: they
//!   become metric labels and file names), a capacity within bounds and an address
//!   (`host:port`) no other live node has;
//! - keep every zone in one region ("losing a zone" must mean one thing);
//! - never reuse an id or the name of a decommissioned node;
//! - keep at least one active node, and at most [`LAYOUT_NODES_MAX`];
//! - still hold every scheme new data starts with ([`SCHEMES_NEW_DATA_STARTS_WITH`])
//!   that the current version holds: a change that would make, say, RS(6,3) unplaceable
//!   (too few zones left) is refused, naming the scheme and the storage classes that
//!   write it. The first version must hold the default class (3 copies over zones).

use std::collections::HashMap;

use shardlet_auth::NodeName;
use shardlet_core::topology::{validate_address, BYTES_PER_UNIT_WEIGHT, WEIGHT_MAX};
use shardlet_core::{NodeId, PlacementMap, RedundancyLevel, Scheme, Spread};

use super::record::{AdminState, Change, LayoutNode, LayoutRecord, RoleAssignment, StagedChange};
use super::topology::to_topology;

/// Most nodes one layout holds. The layout is one metadata record (values ≤ 1 MiB by
/// default, `--value-bytes-max`) of ~250 bytes per node; beyond a few thousand nodes it
/// would have to be split.
pub const LAYOUT_NODES_MAX: usize = 4096;
/// Most staged changes at once (announcements included): a bound on what one
/// misbehaving key holder can add before an operator looks.
pub const STAGED_CHANGES_MAX: usize = 1024;
/// Smallest capacity a node may declare (1 MiB: tests; a real node has far more).
pub const CAPACITY_BYTES_MIN: u64 = 1 << 20;
/// Largest capacity without an explicit weight: the default weight (1.0 per TiB) stays
/// within placement's weight bound.
pub const CAPACITY_BYTES_MAX: u64 = (WEIGHT_MAX as u64) * BYTES_PER_UNIT_WEIGHT;

/// The schemes the gateway starts new data with, per storage class (the gateway's
/// `storage_class.rs` table; a test there keeps the two in step), with the level whose
/// spread they need.
pub const SCHEMES_NEW_DATA_STARTS_WITH: [(&str, RedundancyLevel, Scheme); 5] = [
    (
        "STANDARD (the default)",
        RedundancyLevel::Medium,
        Scheme::Replicated { copies: 3 },
    ),
    (
        "REDUCED_REDUNDANCY",
        RedundancyLevel::Low,
        Scheme::Replicated { copies: 2 },
    ),
    (
        "ONEZONE_IA",
        RedundancyLevel::Low,
        Scheme::ErasureCoded { data: 4, parity: 2 },
    ),
    (
        "STANDARD_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE",
        RedundancyLevel::Medium,
        Scheme::ErasureCoded { data: 6, parity: 3 },
    ),
    (
        "SHARDLET_HIGH",
        RedundancyLevel::High,
        Scheme::Replicated { copies: 3 },
    ),
];

/// Why a layout change is refused. Every message names what is wrong and, where there
/// is one, the command that fixes it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LayoutError {
    #[error("{0}")]
    InvalidName(String),
    #[error("{field} {value:?} of node {node} is not a DNS label (1 to 63 of a-z, 0-9 and '-', starting and ending with a letter or digit)")]
    InvalidLabel {
        node: String,
        field: &'static str,
        value: String,
    },
    #[error("capacity {0}")]
    InvalidCapacity(String),
    #[error("weight of node {node} must be greater than 0 and at most {WEIGHT_MAX}, got {weight}")]
    InvalidWeight { node: String, weight: f64 },
    #[error("node {node}: {reason}")]
    InvalidAddress { node: String, reason: String },
    #[error(
        "no node named {0} is in the layout or staged (`shardlet admin layout show` lists them)"
    )]
    UnknownNode(String),
    #[error("node {0} is decommissioned: its name and id are never used again; give the machine a new name")]
    Decommissioned(String),
    #[error("node {node} has no {missing}: assign it with `shardlet admin layout assign {node} --{flag} …`")]
    Incomplete {
        node: String,
        missing: &'static str,
        flag: &'static str,
    },
    #[error("address {address} is given to both node {first} and node {second}")]
    DuplicateAddress {
        address: String,
        first: String,
        second: String,
    },
    #[error("zone {zone} is in region {region} for node {node} but in region {other} for node {other_node}")]
    ZoneInTwoRegions {
        zone: String,
        region: String,
        node: String,
        other: String,
        other_node: String,
    },
    #[error("node id {id} is already {name}'s: ids are never reused")]
    IdReused { id: NodeId, name: String },
    #[error("the layout would have no active node")]
    NoActiveNode,
    #[error("the layout would have {0} nodes; at most {LAYOUT_NODES_MAX} (LAYOUT_NODES_MAX)")]
    TooManyNodes(usize),
    #[error("{0} changes are staged; at most {STAGED_CHANGES_MAX} (STAGED_CHANGES_MAX): apply or revert first")]
    TooManyStaged(usize),
    #[error(
        "the new layout cannot hold {scheme}, which storage class {classes} writes{held}: {reason}"
    )]
    Unplaceable {
        scheme: Scheme,
        classes: &'static str,
        /// ", and which the current layout holds" when this change breaks it.
        held: &'static str,
        reason: String,
    },
    #[error("nothing is staged: assign or remove nodes first (`shardlet admin layout show`)")]
    NothingStaged,
    #[error("cannot apply version {asked}: the layout is at version {current}, so the next version is {next}; someone applied meanwhile? review with `shardlet admin layout show`")]
    VersionMismatch { asked: u64, current: u64, next: u64 },
    #[error("the staged changes changed while version {0} was being applied; review them with `shardlet admin layout show` and apply again")]
    StagedChangedMeanwhile(u64),
    #[error("{0}")]
    ImportConflict(String),
    #[error("node {0} announced itself with another key: refused")]
    WrongKey(String),
}

/// Checks a name (a DNS label).
pub fn check_name(name: &str) -> Result<NodeName, LayoutError> {
    NodeName::parse(name).map_err(|error| LayoutError::InvalidName(error.to_string()))
}

/// Checks a region or zone name: the DNS label grammar of node names.
pub fn check_label(node: &str, field: &'static str, value: &str) -> Result<(), LayoutError> {
    match NodeName::parse(value) {
        Ok(_) => Ok(()),
        Err(_) => Err(LayoutError::InvalidLabel {
            node: node.to_string(),
            field,
            value: value.chars().take(64).collect(),
        }),
    }
}

pub fn check_capacity(capacity_bytes: u64) -> Result<(), LayoutError> {
    if !(CAPACITY_BYTES_MIN..=CAPACITY_BYTES_MAX).contains(&capacity_bytes) {
        return Err(LayoutError::InvalidCapacity(format!(
            "{capacity_bytes} bytes is out of bounds: from {CAPACITY_BYTES_MIN} (1 MiB) to \
             {CAPACITY_BYTES_MAX} (4096 TiB)"
        )));
    }
    Ok(())
}

/// Parses a capacity as an operator types it: bytes (`1099511627776`, `1_000_000`), or
/// a number with a unit: `KiB MiB GiB TiB PiB` (and `K M G T P`, as `df -h` means them)
/// are powers of 1024, `KB MB GB TB PB` powers of 1000. Fractions are allowed with a
/// unit (`1.5T`). The result is checked against the bounds.
pub fn parse_capacity(text: &str) -> Result<u64, LayoutError> {
    let bad = |why: &str| {
        LayoutError::InvalidCapacity(format!(
            "{:?} {why} (e.g. 1099511627776, 500GiB, 1T, 2TB)",
            text.chars().take(64).collect::<String>()
        ))
    };
    let trimmed = text.trim().replace('_', "");
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    if number.is_empty() {
        return Err(bad("is not a number of bytes"));
    }
    let multiplier: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KiB" => 1024f64,
        "M" | "MiB" => 1024f64.powi(2),
        "G" | "GiB" => 1024f64.powi(3),
        "T" | "TiB" => 1024f64.powi(4),
        "P" | "PiB" => 1024f64.powi(5),
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "PB" => 1e15,
        _ => return Err(bad("has an unknown unit")),
    };
    let value: f64 = number.parse().map_err(|_| bad("is not a number"))?;
    let bytes = value * multiplier;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(bad("is too large"));
    }
    let bytes = bytes.round() as u64;
    check_capacity(bytes)?;
    Ok(bytes)
}

/// Checks the fields a change sets (at `assign` time, so errors come at once).
pub fn check_assignment(name: &str, role: &RoleAssignment) -> Result<(), LayoutError> {
    check_name(name)?;
    if let Some(region) = &role.region {
        check_label(name, "region", region)?;
    }
    if let Some(zone) = &role.zone {
        check_label(name, "zone", zone)?;
    }
    if let Some(capacity) = role.capacity_bytes {
        check_capacity(capacity)?;
    }
    if let Some(weight) = role.weight {
        check_weight(name, weight)?;
    }
    if let Some(address) = &role.address {
        validate_address(address).map_err(|reason| LayoutError::InvalidAddress {
            node: name.to_string(),
            reason,
        })?;
    }
    Ok(())
}

/// Checks a `host:port` a node is reached at (`--advertise`).
pub fn check_address(address: &str) -> Result<(), LayoutError> {
    validate_address(address).map_err(|reason| LayoutError::InvalidAddress {
        node: "this node".to_string(),
        reason,
    })
}

fn check_weight(name: &str, weight: f64) -> Result<(), LayoutError> {
    if !(weight > 0.0 && weight <= WEIGHT_MAX) {
        return Err(LayoutError::InvalidWeight {
            node: name.to_string(),
            weight,
        });
    }
    Ok(())
}

/// Whether `change` can be staged on `current` (the node exists for a removal, is not
/// decommissioned, the fields are valid).
pub fn check_staged(current: &LayoutRecord, change: &StagedChange) -> Result<(), LayoutError> {
    check_name(&change.name)?;
    let applied = current.node_named(&change.name);
    if applied.is_some_and(|node| node.state == AdminState::Decommissioned) {
        return Err(LayoutError::Decommissioned(change.name.clone()));
    }
    match &change.change {
        Change::Assign(role) => check_assignment(&change.name, role),
        Change::Remove | Change::Decommission if applied.is_none() => {
            Err(LayoutError::UnknownNode(change.name.clone()))
        }
        Change::Remove | Change::Decommission => Ok(()),
    }
}

/// The next version: `current` with `changes` (a subset of its staged ones) applied,
/// checked in full. The changes applied leave the staged list; the others stay.
pub fn next_layout(
    current: &LayoutRecord,
    changes: &[StagedChange],
    now_unix_ms: u64,
    applied_by: &str,
) -> Result<LayoutRecord, LayoutError> {
    if changes.is_empty() {
        return Err(LayoutError::NothingStaged);
    }
    let mut next = current.clone();
    for staged in changes {
        check_staged(current, staged)?;
        let position = next.nodes.iter().position(|node| node.name == staged.name);
        match (&staged.change, position) {
            (Change::Assign(role), Some(position)) => {
                let node = &mut next.nodes[position];
                if let Some(region) = &role.region {
                    node.region = region.clone();
                }
                if let Some(zone) = &role.zone {
                    node.zone = zone.clone();
                }
                if let Some(capacity) = role.capacity_bytes {
                    node.capacity_bytes = capacity;
                }
                if role.weight.is_some() {
                    node.weight = role.weight;
                }
                if let Some(address) = &role.address {
                    node.address = address.clone();
                }
                node.state = AdminState::Active;
            }
            (Change::Assign(role), None) => {
                let missing = |missing, flag| LayoutError::Incomplete {
                    node: staged.name.clone(),
                    missing,
                    flag,
                };
                let node = LayoutNode {
                    id: NodeId(next.next_node_id),
                    name: staged.name.clone(),
                    address: role
                        .address
                        .clone()
                        .ok_or_else(|| missing("address", "address"))?,
                    region: role
                        .region
                        .clone()
                        .ok_or_else(|| missing("region", "region"))?,
                    zone: role.zone.clone().ok_or_else(|| missing("zone", "zone"))?,
                    capacity_bytes: role
                        .capacity_bytes
                        .ok_or_else(|| missing("capacity", "capacity"))?,
                    weight: role.weight,
                    state: AdminState::Active,
                };
                next.next_node_id =
                    next.next_node_id
                        .checked_add(1)
                        .ok_or(LayoutError::TooManyNodes(
                            LAYOUT_NODES_MAX.saturating_add(1),
                        ))?;
                next.nodes.push(node);
            }
            (Change::Remove, Some(position)) => next.nodes[position].state = AdminState::Draining,
            (Change::Decommission, Some(position)) => {
                next.nodes[position].state = AdminState::Decommissioned
            }
            (Change::Remove | Change::Decommission, None) => {
                return Err(LayoutError::UnknownNode(staged.name.clone()))
            }
        }
    }
    next.staged
        .retain(|staged| !changes.iter().any(|applied| applied.name == staged.name));
    next.version = current.version + 1;
    next.applied_unix_ms = now_unix_ms;
    next.applied_by = applied_by.to_string();
    check_layout(&next)?;
    check_placement(Some(current).filter(|c| !c.nodes.is_empty()), &next)?;
    Ok(next)
}

/// Everything a layout must satisfy on its own (the module docs' list, placement aside).
pub fn check_layout(layout: &LayoutRecord) -> Result<(), LayoutError> {
    if layout.nodes.len() > LAYOUT_NODES_MAX {
        return Err(LayoutError::TooManyNodes(layout.nodes.len()));
    }
    if layout.staged.len() > STAGED_CHANGES_MAX {
        return Err(LayoutError::TooManyStaged(layout.staged.len()));
    }
    let mut ids: HashMap<NodeId, &str> = HashMap::new();
    let mut addresses: HashMap<&str, &str> = HashMap::new();
    let mut zones: HashMap<&str, (&str, &str)> = HashMap::new();
    let mut names: HashMap<&str, NodeId> = HashMap::new();
    for node in &layout.nodes {
        check_name(&node.name)?;
        if let Some(first) = ids.insert(node.id, &node.name) {
            return Err(LayoutError::IdReused {
                id: node.id,
                name: first.to_string(),
            });
        }
        if node.id.0 == 0 || node.id.0 >= layout.next_node_id {
            return Err(LayoutError::ImportConflict(format!(
                "node {} has id {}, outside the allocated ids 1 to {}",
                node.name,
                node.id,
                layout.next_node_id.saturating_sub(1)
            )));
        }
        if names.insert(&node.name, node.id).is_some() {
            return Err(LayoutError::ImportConflict(format!(
                "node name {} is used twice",
                node.name
            )));
        }
        check_assignment(
            &node.name,
            &RoleAssignment {
                region: Some(node.region.clone()),
                zone: Some(node.zone.clone()),
                capacity_bytes: Some(node.capacity_bytes),
                weight: node.weight,
                address: Some(node.address.clone()),
            },
        )?;
        check_weight(&node.name, node.effective_weight())?;
        if let Some((region, other_node)) = zones.get(node.zone.as_str()) {
            if *region != node.region {
                return Err(LayoutError::ZoneInTwoRegions {
                    zone: node.zone.clone(),
                    region: node.region.clone(),
                    node: node.name.clone(),
                    other: region.to_string(),
                    other_node: other_node.to_string(),
                });
            }
        } else {
            zones.insert(&node.zone, (&node.region, &node.name));
        }
        // A decommissioned node's address may go to its replacement.
        if node.state != AdminState::Decommissioned {
            if let Some(first) = addresses.insert(&node.address, &node.name) {
                return Err(LayoutError::DuplicateAddress {
                    address: node.address.clone(),
                    first: first.to_string(),
                    second: node.name.clone(),
                });
            }
        }
    }
    if !layout.nodes.is_empty()
        && !layout
            .nodes
            .iter()
            .any(|node| node.state == AdminState::Active)
    {
        return Err(LayoutError::NoActiveNode);
    }
    if layout.nodes.windows(2).any(|pair| pair[0].id >= pair[1].id) {
        return Err(LayoutError::ImportConflict(
            "nodes are not sorted by id".into(),
        ));
    }
    Ok(())
}

/// Refuses `next` when it cannot hold a scheme new data starts with that `current`
/// holds (with no current layout: the default class). Liveness is ignored: a layout is
/// judged by what the operator decided, not by which node happens to be down now.
pub fn check_placement(
    current: Option<&LayoutRecord>,
    next: &LayoutRecord,
) -> Result<(), LayoutError> {
    let next_map = placement_map(next)?;
    let current_map = current.map(placement_map).transpose()?;
    for (position, (classes, level, scheme)) in SCHEMES_NEW_DATA_STARTS_WITH.iter().enumerate() {
        let spread = Spread::for_level(*level);
        let required = match &current_map {
            Some(map) => map.place(PROBE_KEY, *scheme, spread).is_ok(),
            None => position == 0,
        };
        if !required {
            continue;
        }
        if let Err(error) = next_map.place(PROBE_KEY, *scheme, spread) {
            return Err(LayoutError::Unplaceable {
                scheme: *scheme,
                classes,
                held: if current_map.is_some() {
                    ", and which the current layout holds"
                } else {
                    ""
                },
                reason: error.to_string(),
            });
        }
    }
    Ok(())
}

/// Any key: feasibility does not depend on it (the spread rule is a matroid, and
/// placement completes whenever any valid placement exists).
const PROBE_KEY: u64 = 0x5eed_1a40_u64;

fn placement_map(layout: &LayoutRecord) -> Result<PlacementMap, LayoutError> {
    let topology = to_topology(layout, &Default::default())
        .map_err(|error| LayoutError::ImportConflict(error.to_string()))?;
    Ok(PlacementMap::new(&topology))
}
