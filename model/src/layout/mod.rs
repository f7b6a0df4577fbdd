//! The cluster layout: which storage nodes exist, where (region, zone), how big, at
//! which address, and whether they take new data — one versioned record in meta-raft
//! (`g/layout`), the single source of truth every gateway and controller watches.
//!
//! The operator's workflow is Garage's: changes are *staged* (`shardlet admin layout
//! assign | remove`, or a node's own announcement), reviewed (`layout show`), then
//! *applied* as the next version with a compare-and-set (`layout apply --version N`),
//! or dropped (`layout revert`). Liveness (up / suspect / down) is not part of it: the
//! controller keeps that in the node records, and [`topology`] combines the two.
//!
//! | module | its one job |
//! |---|---|
//! | [`record`] | the record: applied nodes, staged changes, version, format history |
//! | [`check`] | what a version must satisfy; the next version from staged changes (pure) |
//! | [`operations`] | read, stage, revert, apply, auto-apply, import, announce: one compare-and-set each |
//! | [`topology`] | layout + liveness → the placement topology |
//! | [`watch`] | one process's copy, refreshed by polling, never going back |

pub mod check;
pub mod operations;
pub mod record;
pub mod topology;
pub mod watch;

pub use check::{parse_capacity, LayoutError};
pub use operations::{Announced, Announcement, Imported, LayoutOpError};
pub use record::{
    AdminState, Change, ChangeSource, LayoutNode, LayoutRecord, RoleAssignment, StagedChange,
};
pub use topology::{placement_state, to_topology, Liveness};
pub use watch::{LayoutHistory, LayoutWatch, Seen};

#[cfg(test)]
mod tests;
