//! Proactive repair: compare what nodes store with what metadata says.
//!
//! A node's listing (fragment ids) and the scrub's checksum failures are classified
//! against the shardlet records:
//! - **missing**: metadata places a fragment on a node whose listing lacks it;
//! - **corrupt**: the scrub found its checksum wrong;
//! - **stale**: a fragment of a known shardlet from a generation older than the
//!   record's (left on a node that came back after its fragments were rebuilt);
//! - **orphan**: no record refers to it: an unknown shardlet, or a generation not
//!   yet committed. A gateway writes fragments *before* committing metadata, so an
//!   orphan is only deleted once it has been seen for `orphan_grace_ms`.
//!
//! Missing and corrupt fragments become lost locations for [`crate::repair::plan_repair`];
//! stale and old orphans become deletions.

use std::collections::{BTreeMap, BTreeSet};

use shardlet_core::{FragmentId, NodeId, ShardletId};

use crate::view::{Action, FragmentLocation, ShardletState, StoredFragment};

/// Orphans remembered at most; beyond it new orphans wait for the next scrub pass.
pub const ORPHANS_TRACKED_MAX: usize = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Finding {
    Missing(ShardletId, FragmentLocation),
    Corrupt(ShardletId, FragmentLocation),
    Stale(StoredFragment),
    Orphan(StoredFragment),
}

/// Classifies listings (node → fragments it stores; nodes without a listing are not
/// judged) and checksum failures against the records. Sorted, deterministic.
pub fn classify(
    shardlets: &[ShardletState],
    listings: &BTreeMap<NodeId, BTreeSet<FragmentId>>,
    corrupt: &BTreeSet<StoredFragment>,
) -> Vec<Finding> {
    let by_id: BTreeMap<ShardletId, &ShardletState> = shardlets.iter().map(|s| (s.id, s)).collect();
    let mut findings = Vec::new();
    let mut referenced = BTreeSet::new();
    for state in shardlets {
        for location in &state.fragments {
            let stored = StoredFragment {
                node: location.node,
                fragment: state.fragment_id(location),
            };
            referenced.insert(stored);
            if corrupt.contains(&stored) {
                findings.push(Finding::Corrupt(state.id, *location));
            } else if listings
                .get(&location.node)
                .is_some_and(|listing| !listing.contains(&stored.fragment))
            {
                findings.push(Finding::Missing(state.id, *location));
            }
        }
    }
    for (node, listing) in listings {
        for fragment in listing {
            let stored = StoredFragment {
                node: *node,
                fragment: *fragment,
            };
            if referenced.contains(&stored) {
                continue;
            }
            match by_id.get(&fragment.shardlet) {
                Some(state) if fragment.generation < state.generation => {
                    findings.push(Finding::Stale(stored));
                }
                // A known shardlet's fragment from a generation not committed (an
                // in-flight transition or repair) or not placed here: treat like any
                // orphan, with the grace period.
                _ => findings.push(Finding::Orphan(stored)),
            }
        }
    }
    findings.sort();
    findings
}

/// When each orphan was first seen, so one is deleted only after a grace period.
#[derive(Clone, Debug, Default)]
pub struct OrphanLedger {
    first_seen_ms: BTreeMap<StoredFragment, u64>,
}

impl OrphanLedger {
    /// Deletions for `findings` at `now_ms`: stale fragments at once, orphans once seen
    /// for `orphan_grace_ms`. Orphans no longer reported are forgotten (they were
    /// committed, or deleted).
    pub fn deletions(
        &mut self,
        findings: &[Finding],
        now_ms: u64,
        orphan_grace_ms: u64,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut still_orphaned = BTreeMap::new();
        for finding in findings {
            match finding {
                Finding::Stale(target) => actions.push(Action::DeleteFragment { target: *target }),
                Finding::Orphan(target) => {
                    let first_seen = match self.first_seen_ms.get(target) {
                        Some(at) => *at,
                        None if still_orphaned.len() < ORPHANS_TRACKED_MAX => now_ms,
                        None => continue,
                    };
                    if now_ms.saturating_sub(first_seen) >= orphan_grace_ms {
                        actions.push(Action::DeleteFragment { target: *target });
                    } else {
                        still_orphaned.insert(*target, first_seen);
                    }
                }
                Finding::Missing(..) | Finding::Corrupt(..) => {}
            }
        }
        self.first_seen_ms = still_orphaned;
        actions
    }
}

/// The locations the findings make unusable, for `RepairInput::lost`.
pub fn lost_locations(findings: &[Finding]) -> BTreeSet<(ShardletId, FragmentLocation)> {
    findings
        .iter()
        .filter_map(|finding| match finding {
            Finding::Missing(shardlet, location) | Finding::Corrupt(shardlet, location) => {
                Some((*shardlet, *location))
            }
            _ => None,
        })
        .collect()
}
