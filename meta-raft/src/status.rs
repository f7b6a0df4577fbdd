//! What a member says about itself: `/ready` (`crate::readiness` has the rules),
//! `GET /cluster/status`, and the raft gauges of `/metrics`, all read from openraft's
//! metrics and the state the member keeps.

use std::time::Instant;

use openraft::ServerState;
use shardlet_net::Readiness;

use crate::formation::Formation;
use crate::metrics::RaftGauges;
use crate::node::MetaNode;
use crate::readiness::{LEADER_CHECK_CACHED_FOR, LEADER_CHECK_TIMEOUT};
use crate::wire::ClusterStatus;

fn state_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Learner => "learner",
        ServerState::Candidate => "candidate",
        ServerState::Shutdown => "shutdown",
    }
}

impl MetaNode {
    /// Whether this member can serve now (`crate::readiness`).
    pub async fn readiness(&self) -> Readiness {
        if let Some(reason) = self.gate.closed_reason() {
            return Readiness::not_ready(format!("being formed: {reason}"));
        }
        let metrics = self.raft.metrics().borrow().clone();
        if metrics
            .membership_config
            .membership()
            .nodes()
            .next()
            .is_none()
        {
            return Readiness::not_ready(match &self.config.formation {
                Formation::InitialMembers(members) => format!(
                    "not a member of a cluster yet: waiting for member {} (the lowest id of --initial-members) to form it",
                    members.keys().next().copied().unwrap_or_default()
                ),
                _ => "not a member of a cluster yet: waiting to be added (shardlet admin meta add)"
                    .to_string(),
            });
        }
        let Some(leader) = metrics.current_leader else {
            return Readiness::not_ready(format!(
                "no leader known (term {}, {:?})",
                metrics.current_term, metrics.state
            ));
        };
        if leader != self.config.member_id {
            return self.readiness_state.follower_readiness();
        }
        let mut cached = self.readiness_state.leader_check.lock().await;
        if let Some((at, readiness)) = cached.as_ref() {
            if at.elapsed() < LEADER_CHECK_CACHED_FOR {
                return readiness.clone();
            }
        }
        let readiness =
            match tokio::time::timeout(LEADER_CHECK_TIMEOUT, self.ensure_linearizable()).await {
                Ok(Ok(())) => Readiness::Ready,
                Ok(Err(error)) => {
                    Readiness::not_ready(format!("leader cannot confirm its leadership: {error}"))
                }
                Err(_) => Readiness::not_ready(format!(
                    "leader could not confirm its leadership with a quorum within {} s",
                    LEADER_CHECK_TIMEOUT.as_secs()
                )),
            };
        *cached = Some((Instant::now(), readiness.clone()));
        readiness
    }

    /// This member's status (`GET /cluster/status`, `shardlet admin meta status`).
    pub async fn status(&self) -> ClusterStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let committed_index = self.committed_index().await;
        let readiness = self.readiness().await;
        let state = state_name(metrics.state);
        ClusterStatus {
            member_id: metrics.id,
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            last_applied_index: metrics.last_applied.map(|log_id| log_id.index),
            snapshot_index: metrics.snapshot.map(|log_id| log_id.index),
            purged_index: metrics.purged.map(|log_id| log_id.index),
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            cluster_id: self.identity.get(),
            initialized: self.raft.is_initialized().await.unwrap_or(false),
            committed_index,
            state: state.to_string(),
            addresses: membership
                .nodes()
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect(),
            joint: membership.get_joint_config().len() > 1,
            replication: metrics.replication.as_ref().map(|replication| {
                replication
                    .iter()
                    .map(|(id, matched)| (*id, matched.map(|log_id| log_id.index)))
                    .collect()
            }),
            ready: readiness.is_ready(),
            not_ready_reason: match readiness {
                shardlet_net::Readiness::Ready => None,
                shardlet_net::Readiness::NotReady(reason) => Some(reason),
            },
        }
    }

    /// The highest log index this member knows to be committed (asks the raft core).
    async fn committed_index(&self) -> Option<u64> {
        self.raft
            .with_raft_state(|state| state.committed.map(|log_id| log_id.index))
            .await
            .ok()
            .flatten()
    }

    /// Sets the raft gauges of `/metrics` from what raft reports now (called on every
    /// scrape, so they are exactly as fresh as the scrape).
    pub async fn refresh_metrics(&self) {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let last_log_index = metrics.last_log_index.unwrap_or(0);
        let gauges = RaftGauges {
            is_leader: metrics.state == ServerState::Leader,
            term: metrics.current_term,
            last_log_index,
            committed_index: self.committed_index().await.unwrap_or(0),
            applied_index: metrics.last_applied.map_or(0, |log_id| log_id.index),
            voters: membership.voter_ids().count(),
            learners: membership.learner_ids().count(),
            follower_lag_entries: metrics
                .replication
                .iter()
                .flatten()
                .filter(|(id, _)| **id != self.config.member_id)
                .map(|(id, matched)| {
                    let matched = matched.map_or(0, |log_id| log_id.index);
                    (*id, last_log_index.saturating_sub(matched))
                })
                .collect(),
            ready: self.readiness().await.is_ready(),
            has_leader: metrics.current_leader.is_some(),
        };
        self.metrics.record_raft(&gauges);
    }
}
