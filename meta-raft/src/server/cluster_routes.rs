//! Cluster management: add a learner, promote it, remove a member, set the voters,
//! report status. Changes run on the leader (forwarded from a follower).

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;

use super::error::ApiError;
use super::incoming::{forward_to_leader, Incoming, Shared};
use crate::batcher::WriteError;
use crate::node::{MembershipError, MetaNode};
use crate::wire::{AddLearnerRequest, ChangeMembershipRequest, MemberRequest};

async fn relay_not_leader(
    node: &MetaNode,
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

/// A membership change's answer: done, forwarded to the leader, or 400 naming why not.
async fn relay_membership(
    node: &MetaNode,
    incoming: &Incoming,
    result: Result<(), MembershipError>,
) -> Result<Response, ApiError> {
    match result {
        Err(MembershipError::Invalid(reason)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_membership",
            reason,
        )),
        Err(MembershipError::Write(error)) => relay_not_leader(node, incoming, Err(error)).await,
        Ok(()) => relay_not_leader(node, incoming, Ok(())).await,
    }
}

/// The leader decides membership: a follower forwards at once, so the checks below run
/// against the leader's (current) configuration.
async fn forward_unless_leader(
    node: &MetaNode,
    incoming: &Incoming,
) -> Option<Result<Response, ApiError>> {
    let metrics = node.raft.metrics().borrow().clone();
    if metrics.current_leader == Some(node.config.member_id) {
        return None;
    }
    let leader_address = metrics
        .current_leader
        .and_then(|leader| node.addresses().get(&leader).cloned());
    Some(forward_to_leader(node, incoming, leader_address).await)
}

fn check_address(address: &str) -> Result<(), ApiError> {
    let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port != 0)
    });
    if valid && !address.contains('/') && address.len() <= 255 {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_membership",
            format!(
                "{:?} is not HOST:PORT",
                address.chars().take(300).collect::<String>()
            ),
        ))
    }
}

pub async fn add_learner(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    let request: AddLearnerRequest = incoming.json()?;
    check_address(&request.address)?;
    if let Some(forwarded) = forward_unless_leader(&node, &incoming).await {
        return forwarded;
    }
    tracing::info!(member = request.member_id, address = %request.address, "adding learner");
    let result = node
        .add_learner(request.member_id, request.address, request.wait)
        .await;
    relay_membership(&node, &incoming, result).await
}

pub async fn promote(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    let request: MemberRequest = incoming.json()?;
    if let Some(forwarded) = forward_unless_leader(&node, &incoming).await {
        return forwarded;
    }
    tracing::info!(member = request.member_id, "promoting learner to voter");
    let result = node.promote(request.member_id).await;
    relay_membership(&node, &incoming, result).await
}

pub async fn remove(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    let request: MemberRequest = incoming.json()?;
    if let Some(forwarded) = forward_unless_leader(&node, &incoming).await {
        return forwarded;
    }
    tracing::info!(member = request.member_id, "removing member");
    let result = node.remove(request.member_id).await;
    relay_membership(&node, &incoming, result).await
}

pub async fn change_membership(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    let request: ChangeMembershipRequest = incoming.json()?;
    if request.voters.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
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
    Ok(Json(state.0.status().await).into_response())
}
