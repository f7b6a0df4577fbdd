//! Cluster management: add a learner, set the voters, report status. Changes run on the
//! leader (forwarded from a follower).

use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::ApiError;
use super::incoming::{forward_to_leader, Incoming, Shared};
use crate::batcher::WriteError;
use crate::wire::{AddLearnerRequest, ChangeMembershipRequest, ClusterStatus};

async fn relay_not_leader(
    node: &crate::node::MetaNode,
    incoming: &Incoming,
    result: Result<(), WriteError>,
) -> Result<Response, ApiError> {
    match result {
        Ok(()) => Ok(Json(serde_json::json!({ "ok": true })).into_response()),
        Err(WriteError::NotLeader { leader_address, .. }) => {
            forward_to_leader(node, incoming, leader_address).await
        }
        Err(error) => Err(error.into()),
    }
}

pub async fn add_learner(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    let request: AddLearnerRequest = incoming.json()?;
    tracing::info!(member = request.member_id, address = %request.address, "adding learner");
    let result = node.add_learner(request.member_id, request.address).await;
    relay_not_leader(&node, &incoming, result).await
}

pub async fn change_membership(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    let request: ChangeMembershipRequest = incoming.json()?;
    if request.voters.is_empty() {
        return Err(ApiError::new(
            http::StatusCode::BAD_REQUEST,
            "invalid_membership",
            "a cluster needs at least one voter",
        ));
    }
    tracing::info!(voters = ?request.voters, "changing membership");
    let result = node.change_membership(request.voters).await;
    relay_not_leader(&node, &incoming, result).await
}

/// Authenticated by extracting [`Incoming`]; the body is not used.
pub async fn status(state: Shared, _signed: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    let metrics = node.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters = membership.voter_ids().collect();
    let learners = membership.learner_ids().collect();
    Ok(Json(ClusterStatus {
        member_id: metrics.id,
        leader_id: metrics.current_leader,
        term: metrics.current_term,
        last_log_index: metrics.last_log_index,
        last_applied_index: metrics.last_applied.map(|log_id| log_id.index),
        snapshot_index: metrics.snapshot.map(|log_id| log_id.index),
        purged_index: metrics.purged.map(|log_id| log_id.index),
        voters,
        learners,
    })
    .into_response())
}
