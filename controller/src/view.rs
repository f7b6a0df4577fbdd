//! The controller's snapshot of a shardlet and the actions it asks the shell to run.
//!
//! `ShardletState` mirrors meta-raft's shardlet record (scheme, fragment locations each
//! with its own generation) plus the two fields the policy needs (level, time of the
//! last layout change). `Action`s are plain data: the shell executes them in order and
//! the commit is a compare-and-set, so a stale plan fails harmlessly instead of
//! overwriting a newer layout.

use shardlet_core::{
    FragmentId, FragmentIndex, Generation, NodeId, RedundancyLevel, Scheme, ShardletId,
};

/// Where one fragment lives. `generation` changes every time this fragment is
/// rewritten (repair, re-encode), so a copy left on a returning node is recognisably
/// stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FragmentLocation {
    pub index: FragmentIndex,
    pub node: NodeId,
    pub generation: Generation,
}

/// One shardlet as the controller sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardletState {
    pub id: ShardletId,
    pub level: RedundancyLevel,
    pub size_bytes: u64,
    pub scheme: Scheme,
    /// The record's generation: the compare-and-set key of every layout commit, and
    /// the generation given to fragments written by the next commit.
    pub generation: Generation,
    /// One entry per fragment index, `0..scheme.width()`, in index order.
    pub fragments: Vec<FragmentLocation>,
    /// When the scheme last changed (for the policy's minimum dwell).
    pub layout_changed_at_ms: u64,
}

impl ShardletState {
    pub fn fragment_id(&self, location: &FragmentLocation) -> FragmentId {
        FragmentId::new(self.id, location.generation, location.index)
    }

    /// Bytes of one fragment: the whole shardlet when replicated, `ceil(size / data)`
    /// when erasure coded.
    pub fn fragment_bytes(&self) -> u64 {
        fragment_bytes(self.size_bytes, self.scheme)
    }

    pub fn nodes(&self) -> Vec<NodeId> {
        self.fragments
            .iter()
            .map(|location| location.node)
            .collect()
    }

    /// Distinct fragment indexes held by locations that `usable` accepts.
    pub fn usable_indexes(&self, usable: impl Fn(&FragmentLocation) -> bool) -> usize {
        let mut seen = [false; 256];
        let mut count = 0;
        for location in self.fragments.iter().filter(|l| usable(l)) {
            let slot = &mut seen[usize::from(location.index.0)];
            if !*slot {
                *slot = true;
                count += 1;
            }
        }
        count
    }
}

pub fn fragment_bytes(size_bytes: u64, scheme: Scheme) -> u64 {
    match scheme {
        Scheme::Replicated { .. } => size_bytes,
        Scheme::ErasureCoded { data, .. } => size_bytes.div_ceil(u64::from(data.max(1))),
    }
}

/// One fragment on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoredFragment {
    pub node: NodeId,
    pub fragment: FragmentId,
}

/// What the shell must do. Writes are idempotent on the storage node (same id, same
/// bytes → 200), so replaying an action after a crash is harmless.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read `source` and store the same bytes as `target` (a replica or a fragment
    /// moved away from a risky node).
    CopyFragment {
        source: StoredFragment,
        target: StoredFragment,
        fragment_bytes: u64,
    },
    /// Read `sources` (exactly `data` fragments of `scheme`), rebuild, and store the
    /// fragments named in `outputs`.
    Reconstruct {
        shardlet: ShardletId,
        scheme: Scheme,
        sources: Vec<StoredFragment>,
        outputs: Vec<StoredFragment>,
    },
    /// Read the shardlet from `sources` (enough fragments of `from`), encode it as `to`
    /// and store `outputs`: a replication ↔ erasure-coding transition.
    Reencode {
        shardlet: ShardletId,
        from: Scheme,
        to: Scheme,
        sources: Vec<StoredFragment>,
        outputs: Vec<StoredFragment>,
    },
    /// Read back and checksum these fragments; the plan stops if any fails.
    Verify {
        fragments: Vec<StoredFragment>,
        fragment_bytes: u64,
    },
    /// Compare-and-set the shardlet record: succeeds only if its generation is still
    /// `expected_generation`, and then sets scheme, locations and `new_generation`.
    CommitLayout {
        shardlet: ShardletId,
        expected_generation: Generation,
        new_generation: Generation,
        scheme: Scheme,
        new_locations: Vec<FragmentLocation>,
    },
    /// Remove a fragment no committed layout refers to any more.
    DeleteFragment { target: StoredFragment },
}

impl Action {
    /// Bytes this action reads plus writes, given the fragment size of its scheme(s).
    /// The budget charges these.
    pub fn bytes_moved(&self, shardlet_size_bytes: u64) -> u64 {
        match self {
            Action::CopyFragment { fragment_bytes, .. } => 2 * fragment_bytes,
            Action::Verify {
                fragments,
                fragment_bytes,
            } => fragment_bytes * fragments.len() as u64,
            Action::Reconstruct {
                scheme,
                sources,
                outputs,
                ..
            } => {
                fragment_bytes(shardlet_size_bytes, *scheme)
                    * (sources.len() + outputs.len()) as u64
            }
            Action::Reencode {
                from,
                to,
                sources,
                outputs,
                ..
            } => {
                // Sources lists every readable fragment; the shell reads only enough.
                let reads = from.required_fragments().min(sources.len()) as u64;
                fragment_bytes(shardlet_size_bytes, *from) * reads
                    + fragment_bytes(shardlet_size_bytes, *to) * outputs.len() as u64
            }
            Action::CommitLayout { .. } | Action::DeleteFragment { .. } => 0,
        }
    }
}
