//! JSON bodies of the HTTP API, shared by the server and [`crate::client::MetaClient`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::blob::Blob;
use crate::command::VersionedValue;
use crate::identity::ClusterId;
use crate::types::MemberId;

pub const PATH_GET: &str = "/kv/get";
pub const PATH_SCAN: &str = "/kv/scan";
pub const PATH_PUT: &str = "/kv/put";
pub const PATH_DELETE: &str = "/kv/delete";
pub const PATH_BATCH: &str = "/kv/batch";
pub const PATH_ADD_LEARNER: &str = "/cluster/add-learner";
pub const PATH_CHANGE_MEMBERSHIP: &str = "/cluster/change-membership";
pub const PATH_PROMOTE: &str = "/cluster/promote";
pub const PATH_REMOVE: &str = "/cluster/remove";
pub const PATH_STATUS: &str = "/cluster/status";

/// Set on a request one member forwarded to the leader, so it is never forwarded twice.
pub const HEADER_FORWARDED: &str = "x-shardlet-forwarded";
/// Set on a response that a leader served for a forwarding member: where the leader is,
/// so the client can go there directly next time.
pub const HEADER_LEADER_ADDRESS: &str = "x-shardlet-leader-address";

/// Most entries one scan page returns.
pub const SCAN_LIMIT_MAX: usize = 10_000;
pub const SCAN_LIMIT_DEFAULT: usize = 1_000;

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadConsistency {
    /// Reflects every write acknowledged before the read started (read index through the
    /// leader). The default.
    #[default]
    Linearizable,
    /// Whatever this member has applied: may miss recent writes, never shows uncommitted
    /// ones. No network round trip; for caches and listings that tolerate staleness.
    Stale,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetRequest {
    pub key: Blob,
    #[serde(default)]
    pub consistency: ReadConsistency,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetResponse {
    pub entry: VersionedValue,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScanRequest {
    pub prefix: Blob,
    #[serde(default)]
    pub start_after: Option<Blob>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub consistency: ReadConsistency,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PutRequest {
    pub key: Blob,
    pub value: Blob,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub key: Blob,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AddLearnerRequest {
    pub member_id: MemberId,
    pub address: String,
    /// Answer only once the learner has caught up (the default); `false`: answer once
    /// it is in the configuration, and let the caller follow its progress in the status
    /// (`shardlet admin meta add` does, with a progress bar).
    #[serde(default = "default_true")]
    pub wait: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChangeMembershipRequest {
    pub voters: BTreeSet<MemberId>,
}

/// `POST /cluster/promote` and `POST /cluster/remove`: one member.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberRequest {
    pub member_id: MemberId,
}

/// One member's view of itself and of the cluster (`GET /cluster/status`). Fields after
/// `learners` were added later: `#[serde(default)]`, so older members' answers read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub member_id: MemberId,
    pub leader_id: Option<MemberId>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub voters: BTreeSet<MemberId>,
    pub learners: BTreeSet<MemberId>,
    /// The cluster this member belongs to (`crate::identity`); `None` before it joined one.
    #[serde(default)]
    pub cluster_id: Option<ClusterId>,
    /// Whether this member has raft state (it was initialised or added).
    #[serde(default)]
    pub initialized: bool,
    /// The highest log index this member knows to be committed.
    #[serde(default)]
    pub committed_index: Option<u64>,
    /// `leader`, `follower`, `learner`, `candidate` or `shutdown`.
    #[serde(default)]
    pub state: String,
    /// Every member's address, as the configuration records it.
    #[serde(default)]
    pub addresses: BTreeMap<MemberId, String>,
    /// A membership change is between its two steps (joint consensus).
    #[serde(default)]
    pub joint: bool,
    /// On the leader only: each member's last log index known to match the leader's.
    #[serde(default)]
    pub replication: Option<BTreeMap<MemberId, Option<u64>>>,
    /// What `GET /ready` answers now.
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub not_ready_reason: Option<String>,
}

/// Every error response: a stable machine-readable `error` code and a human reason.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    #[serde(default)]
    pub leader_address: Option<String>,
}
