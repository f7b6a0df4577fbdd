//! Raft RPC from other members. Only a member of the current configuration may call
//! these (a member with no configuration yet, i.e. a learner being added, accepts any
//! authenticated member: the leader adding it is not yet known to it), only a member of
//! the same cluster (`x-shardlet-cluster`, `crate::identity`), and none while this
//! member is being formed (`crate::gate::RaftGate`).

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use openraft::raft::{AppendEntriesRequest, VoteRequest};

use super::error::ApiError;
use super::incoming::{Incoming, Shared};
use crate::auth::Sender;
use crate::identity::HEADER_CLUSTER;
use crate::node::MetaNode;
use crate::snapshot_receive::Refused;
use crate::types::{MemberId, TypeConfig};

fn authorize_member(node: &MetaNode, incoming: &Incoming) -> Result<MemberId, ApiError> {
    let sender = match incoming.sender.clone() {
        Sender::Member(id) => id,
        Sender::Client => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_a_member",
                "raft RPC is only accepted from cluster members",
            ))
        }
    };
    if let Some(reason) = node.gate.closed_reason() {
        // 503: openraft retries, and will be let in once the formation is decided.
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "member_starting",
            format!("member {} is being formed: {reason}", node.config.member_id),
        ));
    }
    let cluster = incoming
        .headers
        .get(HEADER_CLUSTER)
        .map(|value| value.to_str().unwrap_or("(not text)"));
    if let Err(mismatch) = node.identity.admit(cluster) {
        node.metrics
            .auth_refused_total
            .with_label_values(&["wrong_cluster"])
            .inc();
        tracing::warn!(sender, %mismatch, "raft RPC from another cluster refused");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_cluster",
            format!(
                "member {} refuses raft RPC from member {sender}: {mismatch}",
                node.config.member_id
            ),
        ));
    }
    let members = node.members();
    if !members.is_empty() && !members.contains(&sender) {
        tracing::warn!(sender, ?members, "raft RPC from a non-member refused");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_member",
            format!("member {sender} is not in this cluster's configuration {members:?}"),
        ));
    }
    Ok(sender)
}

pub async fn append(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    authorize_member(&node, &incoming)?;
    let request: AppendEntriesRequest<TypeConfig> = incoming.json()?;
    let leader_commit = request.leader_commit.map(|log_id| log_id.index);
    let answer = node.raft.append_entries(request).await;
    if answer.is_ok() {
        // Readiness: how far behind the leader's commit index this member is.
        let applied = node
            .raft
            .metrics()
            .borrow()
            .last_applied
            .map(|log_id| log_id.index);
        node.readiness_state.observe_leader(leader_commit, applied);
    }
    Ok(Json(answer).into_response())
}

pub async fn vote(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    authorize_member(&node, &incoming)?;
    let request: VoteRequest<MemberId> = incoming.json()?;
    Ok(Json(node.raft.vote(request).await).into_response())
}

pub async fn snapshot(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    authorize_member(&node, &incoming)?;
    let request = crate::snapshot_receive::decode_chunk(&incoming.body)
        .map_err(|reason| ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", reason))?;
    // Not `raft.install_snapshot`: the receiver checks the whole snapshot before raft
    // installs it (`snapshot_receive`).
    match node.snapshot_receiver.receive(&node.raft, request).await {
        Ok(answer) => Ok(Json(answer).into_response()),
        Err(refused) => Err(snapshot_refused(refused)),
    }
}

fn snapshot_refused(refused: Refused) -> ApiError {
    let (status, code) = match &refused {
        Refused::Invalid(_) => (StatusCode::BAD_REQUEST, "snapshot_invalid"),
        Refused::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "snapshot_too_large"),
        Refused::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "snapshot_unreadable"),
    };
    ApiError::new(status, code, refused.to_string())
}
