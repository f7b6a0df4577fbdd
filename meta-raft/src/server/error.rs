//! The API's error response: a status, a stable code and a reason, as JSON.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;

use crate::batcher::WriteError;
use crate::wire::ErrorBody;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: code.to_string(),
                message: message.into(),
                leader_address: None,
            },
        }
    }

    pub fn with_leader(mut self, leader_address: Option<String>) -> Self {
        self.body.leader_address = leader_address;
        self
    }

    pub fn no_leader(leader_address: Option<String>) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_leader",
            "this member is not the leader and cannot forward; retry at the leader",
        )
        .with_leader(leader_address)
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            error.to_string(),
        )
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::NotLeader { leader_address, .. } => ApiError::no_leader(leader_address),
            WriteError::Unavailable(reason) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason)
            }
            // 500, not 503: a client must not retry a write that may have committed.
            WriteError::Ambiguous(reason) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "outcome_unknown", reason)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
