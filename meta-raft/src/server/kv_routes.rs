//! The key-value API. Writes go through group commit on the leader; a follower forwards
//! them. Reads are linearizable by default (read index on the leader), or served from
//! the local replica when the caller asks for `stale`.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;

use super::error::ApiError;
use super::incoming::{forward_to_leader, Incoming, Shared};
use crate::batcher::WriteError;
use crate::command::{validate_key, Batch, BatchOutcome};
use crate::node::MetaNode;
use crate::wire::{
    DeleteRequest, GetRequest, GetResponse, PutRequest, ReadConsistency, ScanRequest,
    SCAN_LIMIT_DEFAULT, SCAN_LIMIT_MAX,
};

fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// `Ok(None)`: this member may serve the read. `Ok(Some(response))`: the leader served
/// it (forwarded).
async fn prepare_read(
    node: &MetaNode,
    incoming: &Incoming,
    consistency: ReadConsistency,
) -> Result<Option<Response>, ApiError> {
    if consistency == ReadConsistency::Stale {
        return Ok(None);
    }
    match node.ensure_linearizable().await {
        Ok(()) => Ok(None),
        Err(WriteError::NotLeader { leader_address, .. }) => {
            forward_to_leader(node, incoming, leader_address)
                .await
                .map(Some)
        }
        Err(error) => Err(error.into()),
    }
}

pub async fn get(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    let request: GetRequest = incoming.json()?;
    validate_key(request.key.as_slice())
        .map_err(|error| bad_request("invalid_key", error.to_string()))?;
    if let Some(forwarded) = prepare_read(&node, &incoming, request.consistency).await? {
        return Ok(forwarded);
    }
    match node
        .reader
        .get(request.key.as_slice())
        .map_err(ApiError::internal)?
    {
        Some(entry) => Ok(Json(GetResponse { entry }).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            format!("no such key: {:?}", request.key),
        )),
    }
}

pub async fn scan(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    let request: ScanRequest = incoming.json()?;
    let limit = request.limit.unwrap_or(SCAN_LIMIT_DEFAULT);
    if limit == 0 || limit > SCAN_LIMIT_MAX {
        return Err(bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {SCAN_LIMIT_MAX} (SCAN_LIMIT_MAX), got {limit}"),
        ));
    }
    if let Some(forwarded) = prepare_read(&node, &incoming, request.consistency).await? {
        return Ok(forwarded);
    }
    let page = node
        .reader
        .scan(
            request.prefix.as_slice(),
            request.start_after.as_ref().map(|key| key.as_slice()),
            limit,
        )
        .map_err(ApiError::internal)?;
    Ok(Json(page).into_response())
}

/// Validates and commits a batch; 200 with the new version, 409 with the failed
/// condition when a compare-and-set does not hold (nothing was applied).
async fn write(node: &MetaNode, incoming: &Incoming, batch: Batch) -> Result<Response, ApiError> {
    batch
        .validate(node.config.value_bytes_max)
        .map_err(|error| {
            let status = match error {
                crate::command::BatchInvalid::ValueTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError::new(status, "invalid_batch", error.to_string())
        })?;
    match node.batcher.write(batch).await {
        Ok(outcome @ BatchOutcome::Applied { .. }) => Ok(Json(outcome).into_response()),
        Ok(outcome @ BatchOutcome::ConditionFailed { .. }) => {
            Ok((StatusCode::CONFLICT, Json(outcome)).into_response())
        }
        Err(WriteError::NotLeader { leader_address, .. }) => {
            forward_to_leader(node, incoming, leader_address).await
        }
        Err(error) => Err(error.into()),
    }
}

pub async fn put(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    let request: PutRequest = incoming.json()?;
    write(&node, &incoming, Batch::of_put(request.key, request.value)).await
}

pub async fn delete(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    let request: DeleteRequest = incoming.json()?;
    write(&node, &incoming, Batch::of_delete(request.key)).await
}

pub async fn batch(state: Shared, incoming: Incoming) -> Result<Response, ApiError> {
    let node = state.0;
    let batch: Batch = incoming.json()?;
    write(&node, &incoming, batch).await
}
