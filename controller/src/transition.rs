//! Layout transitions (replication ↔ erasure coding, more or fewer replicas) as a plan
//! of steps that never leaves a shardlet below its durability.
//!
//! Order, and what a crash between any two steps leaves behind:
//! 1. **write** the new fragments under the next generation (a copy of a replica, or a
//!    re-encode). Crash: the committed layout is untouched and complete; the new
//!    fragments are orphans that the scrub collects, or that a re-run of the same plan
//!    finds already stored (writes are idempotent).
//! 2. **verify** them (read back, checksum). Crash: as above.
//! 3. **commit**: compare-and-set on the record's generation switches scheme and
//!    locations atomically. Crash: either the old or the new layout is committed, and
//!    both are complete; a lost race (generation moved on) abandons the plan.
//! 4. **delete** the fragments the new layout no longer uses. Crash: leftovers are
//!    stale fragments that the scrub deletes.
//!
//! So at every moment the committed layout is complete, and the durability is the
//! committed scheme's ([`check_plan`] replays a plan to prove it).

use std::collections::BTreeSet;

use shardlet_core::{FragmentIndex, NodeId, Scheme};

use crate::policy::Target;
use crate::view::{fragment_bytes, Action, FragmentLocation, ShardletState, StoredFragment};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("target has {nodes} nodes but {scheme} needs {width}")]
    WidthMismatch {
        scheme: Scheme,
        nodes: usize,
        width: usize,
    },
    #[error("target places two fragments on node {0}")]
    DuplicateNode(NodeId),
}

/// The steps that take `state` to `target`; empty when nothing changes.
pub fn plan_transition(
    state: &ShardletState,
    target: &Target,
) -> Result<Vec<Action>, TransitionError> {
    if target.nodes.len() != target.scheme.width() {
        return Err(TransitionError::WidthMismatch {
            scheme: target.scheme,
            nodes: target.nodes.len(),
            width: target.scheme.width(),
        });
    }
    let mut distinct = BTreeSet::new();
    for node in &target.nodes {
        if !distinct.insert(*node) {
            return Err(TransitionError::DuplicateNode(*node));
        }
    }
    if target.scheme == state.scheme && target.nodes == state.nodes() {
        return Ok(Vec::new());
    }
    let generation = state.generation.next();
    let new_bytes = fragment_bytes(state.size_bytes, target.scheme);
    let stored = |location: &FragmentLocation| StoredFragment {
        node: location.node,
        fragment: state.fragment_id(location),
    };
    let mut writes = Vec::new();
    let mut new_locations = Vec::with_capacity(target.nodes.len());
    let mut written = Vec::new();

    if let (Scheme::Replicated { .. }, Scheme::Replicated { .. }) = (state.scheme, target.scheme) {
        // Replicas are interchangeable: keep the ones already on target nodes and copy
        // one of them to each new node. Index labels stay distinct.
        let mut used: BTreeSet<u8> = BTreeSet::new();
        let kept: Vec<Option<FragmentLocation>> = target
            .nodes
            .iter()
            .map(|node| state.fragments.iter().find(|l| l.node == *node).copied())
            .collect();
        for location in kept.iter().flatten() {
            used.insert(location.index.0);
        }
        let source = kept
            .iter()
            .flatten()
            .next()
            .or_else(|| state.fragments.first())
            .copied();
        for (node, kept) in target.nodes.iter().zip(&kept) {
            let location = match kept {
                Some(location) => *location,
                None => {
                    let label = (0..=u8::MAX).find(|l| !used.contains(l)).unwrap_or(u8::MAX);
                    used.insert(label);
                    let location = FragmentLocation {
                        index: FragmentIndex(label),
                        node: *node,
                        generation,
                    };
                    let target_fragment = stored(&location);
                    if let Some(source) = source {
                        writes.push(Action::CopyFragment {
                            source: stored(&source),
                            target: target_fragment,
                            fragment_bytes: new_bytes,
                        });
                    }
                    written.push(target_fragment);
                    location
                }
            };
            new_locations.push(location);
        }
    } else {
        for (position, node) in target.nodes.iter().enumerate() {
            let location = FragmentLocation {
                index: FragmentIndex(position as u8),
                node: *node,
                generation,
            };
            written.push(stored(&location));
            new_locations.push(location);
        }
        writes.push(Action::Reencode {
            shardlet: state.id,
            from: state.scheme,
            to: target.scheme,
            sources: state.fragments.iter().map(stored).collect(),
            outputs: written.clone(),
        });
    }

    let mut plan = writes;
    if !written.is_empty() {
        plan.push(Action::Verify {
            fragments: written,
            fragment_bytes: new_bytes,
        });
    }
    plan.push(Action::CommitLayout {
        shardlet: state.id,
        expected_generation: state.generation,
        new_generation: generation,
        scheme: target.scheme,
        new_locations: new_locations.clone(),
    });
    for location in &state.fragments {
        if !new_locations.contains(location) {
            plan.push(Action::DeleteFragment {
                target: stored(location),
            });
        }
    }
    Ok(plan)
}

/// The state of the world after a prefix of a plan, as [`check_plan`] replays it.
#[derive(Clone, Debug)]
pub struct ReplayStep {
    pub committed_scheme: Scheme,
    /// Fragments of the committed layout that exist and (if new) were verified.
    pub committed_intact: usize,
}

/// Replays `plan` from `state` and returns, after every step, the committed layout and
/// how many of its fragments are intact; `Err` names the first step at which the
/// committed layout is incomplete or a commit points at unverified fragments.
pub fn check_plan(state: &ShardletState, plan: &[Action]) -> Result<Vec<ReplayStep>, String> {
    let mut present: BTreeSet<StoredFragment> = state
        .fragments
        .iter()
        .map(|l| StoredFragment {
            node: l.node,
            fragment: state.fragment_id(l),
        })
        .collect();
    let mut verified = present.clone();
    let mut committed: (Scheme, Vec<StoredFragment>) =
        (state.scheme, present.iter().copied().collect());
    let mut steps = Vec::with_capacity(plan.len());
    for (number, action) in plan.iter().enumerate() {
        match action {
            Action::CopyFragment { target, .. } => {
                present.insert(*target);
            }
            Action::Reconstruct { outputs, .. } | Action::Reencode { outputs, .. } => {
                present.extend(outputs.iter().copied());
            }
            Action::Verify { fragments, .. } => {
                for fragment in fragments {
                    if present.contains(fragment) {
                        verified.insert(*fragment);
                    }
                }
            }
            Action::CommitLayout {
                shardlet,
                scheme,
                new_locations,
                ..
            } => {
                let layout: Vec<StoredFragment> = new_locations
                    .iter()
                    .map(|l| StoredFragment {
                        node: l.node,
                        fragment: shardlet_core::FragmentId::new(*shardlet, l.generation, l.index),
                    })
                    .collect();
                if let Some(missing) = layout.iter().find(|f| !verified.contains(f)) {
                    return Err(format!(
                        "step {number}: commit points at {missing:?}, which is not written and verified"
                    ));
                }
                committed = (*scheme, layout);
            }
            Action::DeleteFragment { target } => {
                present.remove(target);
                verified.remove(target);
            }
        }
        let intact = committed.1.iter().filter(|f| verified.contains(f)).count();
        if intact < committed.0.width() {
            return Err(format!(
                "step {number} ({action:?}) leaves the committed {} layout with {intact} of {} fragments",
                committed.0,
                committed.0.width()
            ));
        }
        steps.push(ReplayStep {
            committed_scheme: committed.0,
            committed_intact: intact,
        });
    }
    Ok(steps)
}
