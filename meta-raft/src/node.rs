//! One metadata-service member as the HTTP routes see it: raft, the state machine's
//! reader, the group-commit batcher, and the membership operations. `crate::member`
//! starts and stops it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openraft::error::{CheckIsLeaderError, InitializeError, RaftError};
use openraft::BasicNode;

use crate::auth::MemberAuth;
use crate::batcher::{raft_write_error, Batcher, WriteError};
use crate::config::MetaConfig;
use crate::metrics::MetaMetrics;
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
    /// Pooled client for forwarding requests to the leader.
    pub forward_http: reqwest::Client,
    /// Where `/raft/snapshot` chunks go (`snapshot_receive`).
    pub snapshot_receiver: crate::snapshot_receive::SnapshotReceiver,
}

impl MetaNode {
    /// Makes this member a single-member cluster, unless it already belongs to one (so a
    /// restart with `--bootstrap` is harmless).
    pub async fn bootstrap(&self) -> anyhow::Result<()> {
        if self.raft.is_initialized().await? {
            return Ok(());
        }
        let members = BTreeMap::from([(
            self.config.member_id,
            BasicNode::new(self.advertise_address.clone()),
        )]);
        match self.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(error) => Err(anyhow::anyhow!("bootstrap failed: {error}")),
        }
    }

    /// Adds a learner and waits until it has caught up with the log (or by snapshot).
    pub async fn add_learner(
        &self,
        member_id: MemberId,
        address: String,
    ) -> Result<(), WriteError> {
        self.raft
            .add_learner(member_id, BasicNode::new(address), true)
            .await
            .map(|_| ())
            .map_err(raft_write_error)
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
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect()
    }
}
