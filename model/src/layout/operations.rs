//! The layout's operations on meta-raft: read, stage, revert, apply, auto-apply of
//! announcements, import of a topology file, and a node's announcement.
//!
//! Durability: the layout is one record (`g/layout`) and every operation is one
//! compare-and-set batch on its metadata version, replicated by meta-raft before it is
//! acknowledged. A crash at any point leaves either the old record or the new one,
//! never a mix, and a writer that lost a race never overwrites what it did not read.
//! `apply` does not retry a lost race (the operator applies what they reviewed, no
//! more); staging does, on a fresh read, because staging one node's change commutes
//! with staging another's.

use shardlet_auth::NodeName;
use shardlet_core::{NodeId, Topology};

use super::check::{
    check_assignment, check_layout, check_placement, check_staged, next_layout, LayoutError,
    STAGED_CHANGES_MAX,
};
use super::record::{
    AdminState, Change, ChangeSource, LayoutNode, LayoutRecord, RoleAssignment, StagedChange,
};
use crate::access::{Metadata, Stored};
use crate::schema::{encode, keys};
use crate::store::{Batch, BatchOutcome, MetadataError};

/// Compare-and-set attempts of one staging change (or announcement) before giving up.
const STAGE_ATTEMPTS_MAX: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum LayoutOpError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("the layout changed {0} times while being updated; retry")]
    Contended(usize),
}

/// The layout now (linearizable), with its metadata version (0 when absent: then the
/// empty layout, version 0).
pub async fn read(metadata: &Metadata) -> Result<Stored<LayoutRecord>, MetadataError> {
    Ok(metadata
        .read::<LayoutRecord>(keys::CLUSTER_LAYOUT.as_bytes())
        .await?
        .unwrap_or(Stored {
            record: LayoutRecord::default(),
            version: 0,
        }))
}

/// Writes `next` if the record is still at `expected` (its metadata version).
async fn compare_and_set(
    metadata: &Metadata,
    expected: u64,
    next: &LayoutRecord,
) -> Result<Option<u64>, MetadataError> {
    let key = keys::CLUSTER_LAYOUT.as_bytes();
    let mut batch = Batch::default();
    batch.require_version(key, expected).put(key, encode(next));
    match metadata.apply(batch).await? {
        BatchOutcome::Applied { version } => Ok(Some(version)),
        BatchOutcome::ConditionFailed { .. } => Ok(None),
    }
}

/// Read, change, compare-and-set, retried on a fresh read when another writer won.
/// `change` returns `None` when nothing needs writing.
async fn modify<T>(
    metadata: &Metadata,
    mut change: impl FnMut(&LayoutRecord) -> Result<Option<(LayoutRecord, T)>, LayoutError>,
) -> Result<(Stored<LayoutRecord>, Option<T>), LayoutOpError> {
    for _ in 0..STAGE_ATTEMPTS_MAX {
        let current = read(metadata).await?;
        let Some((next, outcome)) = change(&current.record)? else {
            return Ok((current, None));
        };
        check_layout(&next)?;
        if let Some(version) = compare_and_set(metadata, current.version, &next).await? {
            return Ok((
                Stored {
                    record: next,
                    version,
                },
                Some(outcome),
            ));
        }
    }
    Err(LayoutOpError::Contended(STAGE_ATTEMPTS_MAX))
}

/// Stages `change` (an operator's assign, remove or decommission). An assign merges
/// with a change already staged for the node (the fields given win); a remove of a node
/// that is only staged drops its staged change instead.
pub async fn stage(
    metadata: &Metadata,
    change: StagedChange,
) -> Result<Stored<LayoutRecord>, LayoutOpError> {
    let (stored, _) = modify(metadata, |current| {
        let mut next = current.clone();
        let in_layout = current.node_named(&change.name).is_some();
        match (&change.change, current.staged_for(&change.name)) {
            (Change::Remove | Change::Decommission, Some(_)) if !in_layout => {
                next.unstage(&change.name);
                return Ok(Some((next, ())));
            }
            (Change::Assign(role), Some(staged)) => {
                let merged = match &staged.change {
                    Change::Assign(earlier) => merge(earlier, role),
                    _ => role.clone(),
                };
                next.stage(StagedChange {
                    change: Change::Assign(merged),
                    ..change.clone()
                });
            }
            _ => next.stage(change.clone()),
        }
        if let Some(staged) = next.staged_for(&change.name) {
            check_staged(current, staged)?;
        }
        if next.staged.len() > STAGED_CHANGES_MAX {
            return Err(LayoutError::TooManyStaged(next.staged.len()));
        }
        Ok(Some((next, ())))
    })
    .await?;
    Ok(stored)
}

fn merge(earlier: &RoleAssignment, later: &RoleAssignment) -> RoleAssignment {
    RoleAssignment {
        region: later.region.clone().or_else(|| earlier.region.clone()),
        zone: later.zone.clone().or_else(|| earlier.zone.clone()),
        capacity_bytes: later.capacity_bytes.or(earlier.capacity_bytes),
        weight: later.weight.or(earlier.weight),
        address: later.address.clone().or_else(|| earlier.address.clone()),
    }
}

/// Drops every staged change; how many there were.
pub async fn revert(metadata: &Metadata) -> Result<(Stored<LayoutRecord>, usize), LayoutOpError> {
    let (stored, dropped) = modify(metadata, |current| {
        if current.staged.is_empty() {
            return Ok(None);
        }
        let mut next = current.clone();
        next.staged.clear();
        Ok(Some((next, current.staged.len())))
    })
    .await?;
    Ok((stored, dropped.unwrap_or(0)))
}

/// Applies every staged change as version `version`, which must be the current version
/// plus one (`--version N`, as Garage asks): two operators cannot apply blindly over
/// each other. Not retried: a lost race is refused, naming the version.
pub async fn apply(
    metadata: &Metadata,
    version: u64,
    now_unix_ms: u64,
) -> Result<Stored<LayoutRecord>, LayoutOpError> {
    let current = read(metadata).await?;
    let expected_next = current.record.version + 1;
    if version != expected_next {
        return Err(LayoutError::VersionMismatch {
            asked: version,
            current: current.record.version,
            next: expected_next,
        }
        .into());
    }
    let next = next_layout(
        &current.record,
        &current.record.staged,
        now_unix_ms,
        "apply",
    )?;
    write_version(metadata, &current, next, version).await
}

/// The compare-and-set of a new version, and what a lost race means: someone applied
/// (the version moved) or someone staged meanwhile (the operator did not review that).
pub(super) async fn write_version(
    metadata: &Metadata,
    current: &Stored<LayoutRecord>,
    next: LayoutRecord,
    asked: u64,
) -> Result<Stored<LayoutRecord>, LayoutOpError> {
    let outcome = compare_and_set(metadata, current.version, &next).await;
    match outcome {
        Ok(Some(version)) => {
            // Logged by the callers (the controller's auto-apply; the CLI prints it):
            // `shardlet dev` runs this with its stderr possibly closed, where a log line
            // would be a failed write.
            return Ok(Stored {
                record: next,
                version,
            });
        }
        Ok(None) | Err(MetadataError::Ambiguous(_)) => {}
        Err(error) => return Err(error.into()),
    }
    let now = read(metadata).await?;
    // Only an ambiguous write can have been ours: a failed condition means another
    // writer won, even one that wrote the very same record (two operators applying the
    // same staged changes within one millisecond), and that one is refused.
    if matches!(outcome, Err(MetadataError::Ambiguous(_))) && now.record == next {
        // An ambiguous write that did apply.
        return Ok(Stored {
            version: now.version,
            record: next,
        });
    }
    if now.record.version != current.record.version {
        return Err(LayoutError::VersionMismatch {
            asked,
            current: now.record.version,
            next: now.record.version + 1,
        }
        .into());
    }
    match outcome {
        Err(error) => Err(error.into()),
        Ok(_) => Err(LayoutError::StagedChangedMeanwhile(asked).into()),
    }
}

/// Auto-apply (`shardlet controller --auto-apply-announced`): applies the staged
/// announcements that are complete (zone, region, capacity, address), and only those:
/// an operator's staged changes wait for the operator. `Ok(None)`: nothing to apply,
/// or another writer won (the next pass looks again).
pub async fn apply_announced(
    metadata: &Metadata,
    now_unix_ms: u64,
) -> Result<Option<Stored<LayoutRecord>>, LayoutOpError> {
    let current = read(metadata).await?;
    let ready: Vec<StagedChange> = current
        .record
        .staged
        .iter()
        .filter(|staged| staged.source == ChangeSource::Announced)
        .filter(|staged| match &staged.change {
            Change::Assign(role) => {
                role.region.is_some()
                    && role.zone.is_some()
                    && role.capacity_bytes.is_some()
                    && role.address.is_some()
            }
            _ => false,
        })
        .cloned()
        .collect();
    if ready.is_empty() {
        return Ok(None);
    }
    let next = next_layout(&current.record, &ready, now_unix_ms, "auto-apply")?;
    let version = next.version;
    match write_version(metadata, &current, next, version).await {
        Ok(stored) => Ok(Some(stored)),
        Err(LayoutOpError::Layout(
            LayoutError::VersionMismatch { .. } | LayoutError::StagedChangedMeanwhile(_),
        )) => Ok(None),
        Err(error) => Err(error),
    }
}

/// What `import` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Imported {
    /// The file became this version.
    Applied(u64),
    /// The layout already has exactly the file's nodes.
    Unchanged(u64),
}

/// Imports a topology file (`shardlet admin layout import FILE`, `shardlet dev`'s first
/// start). Into an empty layout it becomes the next version. Into a layout with nodes,
/// a file that matches it changes nothing, and one that differs is refused unless
/// `force`: then the file's nodes become the next version, every node of the layout the
/// file omits stays as decommissioned (its id and slots are never reused), and the
/// file may not give an existing id to another name.
pub async fn import(
    metadata: &Metadata,
    file: &Topology,
    force: bool,
    now_unix_ms: u64,
) -> Result<Imported, LayoutOpError> {
    let imported = nodes_of(file);
    let current = read(metadata).await?;
    let layout = &current.record;
    if !layout.nodes.is_empty() && layout.nodes == imported {
        return Ok(Imported::Unchanged(layout.version));
    }
    if !layout.nodes.is_empty() && !force {
        return Err(LayoutError::ImportConflict(format!(
            "the layout (version {}) already has nodes and the file differs: {}; pass --force \
             to make the file the next version (nodes it omits are decommissioned)",
            layout.version,
            differences(layout, &imported)
        ))
        .into());
    }
    let mut nodes = imported;
    for old in &layout.nodes {
        match nodes.iter().find(|node| node.id == old.id) {
            Some(new) if new.name != old.name => {
                return Err(LayoutError::IdReused {
                    id: old.id,
                    name: old.name.clone(),
                }
                .into())
            }
            Some(_) => {}
            None => nodes.push(LayoutNode {
                state: AdminState::Decommissioned,
                ..old.clone()
            }),
        }
        if old.state == AdminState::Decommissioned
            && nodes
                .iter()
                .any(|node| node.name == old.name && node.state != AdminState::Decommissioned)
        {
            return Err(LayoutError::Decommissioned(old.name.clone()).into());
        }
    }
    nodes.sort_by_key(|node| node.id);
    let highest = nodes.last().map_or(0, |node| node.id.0);
    let next = LayoutRecord {
        version: layout.version + 1,
        next_node_id: layout.next_node_id.max(highest.saturating_add(1)),
        staged: layout
            .staged
            .iter()
            .filter(|staged| !nodes.iter().any(|node| node.name == staged.name))
            .cloned()
            .collect(),
        nodes,
        applied_unix_ms: now_unix_ms,
        applied_by: "import".into(),
    };
    check_layout(&next)?;
    check_placement(Some(layout).filter(|l| !l.nodes.is_empty()), &next)?;
    let version = next.version;
    write_version(metadata, &current, next, version).await?;
    Ok(Imported::Applied(version))
}

/// The layout nodes of a topology file: its states map to the operator's (`draining`,
/// `decommissioned`; liveness states are the controller's and become `active`), and a
/// weight equal to the capacity's default is left implicit.
fn nodes_of(file: &Topology) -> Vec<LayoutNode> {
    file.nodes()
        .iter()
        .map(|node| LayoutNode {
            id: node.id,
            name: node.name.clone(),
            address: node.address.clone(),
            region: node.region.clone(),
            zone: node.zone.clone(),
            capacity_bytes: node.capacity_bytes,
            weight: (node.weight != shardlet_core::Node::default_weight(node.capacity_bytes))
                .then_some(node.weight),
            state: match node.state {
                shardlet_core::NodeState::Draining => AdminState::Draining,
                shardlet_core::NodeState::Decommissioned => AdminState::Decommissioned,
                _ => AdminState::Active,
            },
        })
        .collect()
}

fn describe_node(node: &LayoutNode) -> String {
    format!(
        "{} at {} in {}/{} ({} bytes, weight {:.3}, {})",
        node.name,
        node.address,
        node.region,
        node.zone,
        node.capacity_bytes,
        node.effective_weight(),
        node.state.as_str()
    )
}

/// The first few differences between the layout and a file, for the refusal.
fn differences(layout: &LayoutRecord, file: &[LayoutNode]) -> String {
    let mut found = Vec::new();
    for node in &layout.nodes {
        match file.iter().find(|other| other.id == node.id) {
            None => found.push(format!(
                "node {} ({}) is not in the file",
                node.id, node.name
            )),
            Some(other) if other != node => found.push(format!(
                "node {} is {} in the layout, {} in the file",
                node.id,
                describe_node(node),
                describe_node(other)
            )),
            Some(_) => {}
        }
    }
    for node in file {
        if layout.node(node.id).is_none() {
            found.push(format!(
                "node {} ({}) is new in the file",
                node.id, node.name
            ));
        }
    }
    let more = found.len().saturating_sub(3);
    found.truncate(3);
    if more > 0 {
        found.push(format!("and {more} more"));
    }
    found.join("; ")
}

/// What a storage node says about itself when it announces (its name is proven by the
/// key that signed the announcement).
#[derive(Clone, Debug, PartialEq)]
pub struct Announcement {
    pub name: NodeName,
    pub address: String,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub capacity_bytes: Option<u64>,
}

/// What an announcement found or did.
#[derive(Clone, Debug, PartialEq)]
pub enum Announced {
    /// The node is in the applied layout with this id. `mismatches` lists where its
    /// flags differ from the layout (the layout wins: only an operator changes a role).
    Assigned {
        id: NodeId,
        layout_version: u64,
        mismatches: Vec<String>,
    },
    /// Waiting for an apply (by an operator, or auto-apply).
    Pending { layout_version: u64 },
}

/// Records a node's announcement:
/// - a node in the layout learns its id; a changed address is written at once as a new
///   version (it is where the node is, proven by its key; not a placement change);
/// - a node not in the layout is staged as a pending role (source `announced`) unless
///   an operator already staged a change for it, which an announcement never overwrites;
/// - a decommissioned name is refused.
pub async fn announce(
    metadata: &Metadata,
    announcement: &Announcement,
    now_unix_ms: u64,
) -> Result<Announced, LayoutOpError> {
    let name = announcement.name.as_str();
    let role = RoleAssignment {
        region: announcement.region.clone(),
        zone: announcement.zone.clone(),
        capacity_bytes: announcement.capacity_bytes,
        weight: None,
        address: Some(announcement.address.clone()),
    };
    check_assignment(name, &role)?;
    let (stored, _) = modify(metadata, |current| {
        if let Some(node) = current.node_named(name) {
            if node.state == AdminState::Decommissioned {
                return Err(LayoutError::Decommissioned(name.to_string()));
            }
            if node.address == announcement.address {
                return Ok(None);
            }
            let mut next = current.clone();
            if let Some(moved) = next.nodes.iter_mut().find(|n| n.name == name) {
                moved.address = announcement.address.clone();
            }
            next.version = current.version + 1;
            next.applied_unix_ms = now_unix_ms;
            next.applied_by = format!("address of {name}");
            return Ok(Some((next, ())));
        }
        let staged = current.staged_for(name);
        if staged.is_some_and(|staged| staged.source == ChangeSource::Operator) {
            return Ok(None);
        }
        let change = StagedChange {
            name: name.to_string(),
            change: Change::Assign(role.clone()),
            source: ChangeSource::Announced,
            staged_unix_ms: now_unix_ms,
        };
        if staged.is_some_and(|staged| staged.change == change.change) {
            return Ok(None);
        }
        let mut next = current.clone();
        next.stage(change);
        if next.staged.len() > STAGED_CHANGES_MAX {
            return Err(LayoutError::TooManyStaged(next.staged.len()));
        }
        Ok(Some((next, ())))
    })
    .await?;
    let layout = &stored.record;
    Ok(match layout.node_named(name) {
        Some(node) => Announced::Assigned {
            id: node.id,
            layout_version: layout.version,
            mismatches: mismatches(node, announcement),
        },
        None => Announced::Pending {
            layout_version: layout.version,
        },
    })
}

fn mismatches(node: &LayoutNode, announcement: &Announcement) -> Vec<String> {
    let mut found = Vec::new();
    let mut compare = |field: &str, layout: String, announced: Option<String>| {
        if let Some(announced) = announced {
            if announced != layout {
                found.push(format!(
                    "{field} is {layout} in the layout, {announced} here"
                ));
            }
        }
    };
    compare("region", node.region.clone(), announcement.region.clone());
    compare("zone", node.zone.clone(), announcement.zone.clone());
    compare(
        "capacity",
        node.capacity_bytes.to_string(),
        announcement.capacity_bytes.map(|bytes| bytes.to_string()),
    );
    found
}
