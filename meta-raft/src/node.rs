//! One metadata-service member as the HTTP routes see it: raft, the state machine's
//! reader, the group-commit batcher, its cluster identity and formation gate, and the
//! membership operations. `crate::member` starts and stops it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use crate::auth::MemberAuth;
use crate::batcher::{raft_write_error, write_error, Batcher, WriteError};
use crate::config::MetaConfig;
use crate::gate::RaftGate;
use crate::identity::Identity;
use crate::metrics::MetaMetrics;
use crate::readiness::ReadinessState;
use crate::state_machine::KvReader;
use crate::types::{MemberId, Raft};

pub struct MetaNode {
    pub config: MetaConfig,
    pub advertise_address: String,
    pub raft: Raft,
    pub reader: KvReader,
    pub batcher: Batcher,
    pub auth: MemberAuth,
    pub metrics: Arc<MetaMetrics>,
    /// Pooled client for forwarding requests to the leader and asking peers.
    pub forward_http: reqwest::Client,
    /// Which cluster this member belongs to (checked on every raft RPC).
    pub identity: Arc<Identity>,
    /// Closed while this member is being formed: raft RPC waits.
    pub gate: RaftGate,
    /// What `/ready` consults.
    pub readiness_state: ReadinessState,
    /// The database, flushed at shutdown.
    pub db: Arc<rocksdb::DB>,
    /// Where `/raft/snapshot` chunks go (`snapshot_receive`).
    pub snapshot_receiver: crate::snapshot_receive::SnapshotReceiver,
}

/// Why a membership change was not made.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The change is not possible as asked (unknown member, the last voter, a change
    /// already in progress): 400.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Write(#[from] WriteError),
}

fn membership_error(
    error: RaftError<MemberId, ClientWriteError<MemberId, BasicNode>>,
) -> MembershipError {
    match error {
        RaftError::APIError(ClientWriteError::ChangeMembershipError(error)) => {
            MembershipError::Invalid(error.to_string())
        }
        RaftError::APIError(error) => MembershipError::Write(write_error(error)),
        RaftError::Fatal(fatal) => {
            MembershipError::Write(WriteError::Unavailable(fatal.to_string()))
        }
    }
}

impl MetaNode {
    /// Adds a learner; with `wait`, answers once it has caught up with the log (or by
    /// snapshot), otherwise once it is in the configuration.
    pub async fn add_learner(
        &self,
        member_id: MemberId,
        address: String,
        wait: bool,
    ) -> Result<(), MembershipError> {
        let addresses = self.addresses();
        if let Some((other, _)) = addresses
            .iter()
            .find(|(id, known)| **known == address && **id != member_id)
        {
            return Err(MembershipError::Invalid(format!(
                "member {other} already has the address {address}"
            )));
        }
        if let Some(known) = addresses.get(&member_id) {
            if *known != address {
                return Err(MembershipError::Invalid(format!(
                    "member {member_id} is already in the cluster at {known}; remove it before adding it at another address"
                )));
            }
        }
        self.raft
            .add_learner(member_id, BasicNode::new(address), wait)
            .await
            .map(|_| ())
            .map_err(membership_error)
    }

    /// Sets the voters to exactly `voters`; members not listed are removed entirely.
    /// openraft runs joint consensus, so the change is safe under load.
    pub async fn change_membership(&self, voters: BTreeSet<MemberId>) -> Result<(), WriteError> {
        self.raft
            .change_membership(voters, false)
            .await
            .map(|_| ())
            .map_err(raft_write_error)
    }

    /// Makes learner `member_id` a voter (joint consensus, answered once committed).
    pub async fn promote(&self, member_id: MemberId) -> Result<(), MembershipError> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        if membership.voter_ids().any(|id| id == member_id) {
            return Err(MembershipError::Invalid(format!(
                "member {member_id} is already a voter"
            )));
        }
        if !membership.learner_ids().any(|id| id == member_id) {
            return Err(MembershipError::Invalid(format!(
                "member {member_id} is not a learner of this cluster: add it first (shardlet admin meta add)"
            )));
        }
        self.raft
            .change_membership(
                ChangeMembers::AddVoterIds(BTreeSet::from([member_id])),
                false,
            )
            .await
            .map(|_| ())
            .map_err(membership_error)
    }

    /// Removes `member_id`: a voter leaves the voters and the cluster (joint consensus),
    /// a learner leaves the cluster. The last voter is never removed.
    pub async fn remove(&self, member_id: MemberId) -> Result<(), MembershipError> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<MemberId> = membership.voter_ids().collect();
        let change = if voters.contains(&member_id) {
            if voters.len() == 1 {
                return Err(MembershipError::Invalid(format!(
                    "member {member_id} is the last voter: a cluster cannot lose its last voter"
                )));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([member_id]))
        } else if membership.learner_ids().any(|id| id == member_id) {
            ChangeMembers::RemoveNodes(BTreeSet::from([member_id]))
        } else {
            return Err(MembershipError::Invalid(format!(
                "member {member_id} is not in this cluster's configuration"
            )));
        };
        self.raft
            .change_membership(change, false)
            .await
            .map(|_| ())
            .map_err(membership_error)
    }

    /// Waits until a read on this member would be linearizable: confirms leadership with
    /// a quorum (read index) and waits for the state machine to reach it.
    pub async fn ensure_linearizable(&self) -> Result<(), WriteError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
                Err(WriteError::NotLeader {
                    leader_id: forward.leader_id,
                    leader_address: forward.leader_node.map(|node| node.addr),
                })
            }
            Err(error) => Err(WriteError::Unavailable(error.to_string())),
        }
    }

    /// The ids of every member (voters and learners) in the current configuration.
    pub fn members(&self) -> BTreeSet<MemberId> {
        self.addresses().into_keys().collect()
    }

    /// Every member's address, as the configuration records it.
    pub fn addresses(&self) -> BTreeMap<MemberId, String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect()
    }
}
