//! The types every part of the metadata service shares: member ids and openraft's type
//! configuration.

use crate::command;

/// The raft id of a metadata-service member. Distinct from `shardlet_core::NodeId`, which
/// names storage nodes: a machine may run both, under unrelated ids.
pub type MemberId = u64;

openraft::declare_raft_types!(
    /// openraft's type configuration for the metadata service.
    pub TypeConfig:
        D = command::Proposal,
        R = command::ProposalOutcome,
        NodeId = MemberId,
        Node = openraft::BasicNode,
        // A snapshot is a file (`snapshot_file`), streamed in chunks: never whole in memory.
        SnapshotData = tokio::fs::File,
);

pub type Raft = openraft::Raft<TypeConfig>;
