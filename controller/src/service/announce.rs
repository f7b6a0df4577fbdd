//! `POST /v1/announce`: a storage node says who and where it is (docs/layout.md).
//!
//! The request must be signed with a storage node's own key (`node-NAME`, verified by
//! deriving it from the `storage` key this controller holds), with its body's SHA-256
//! signed and a nonce seen once; the key's name must be the name announced, so a node
//! can speak only for itself. The body is read only after the signature passed, and at
//! most [`ANNOUNCE_BODY_BYTES_MAX`] of it. Then the layout is updated
//! ([`shardlet_model::layout::operations::announce`]): an unknown node becomes a pending
//! role, a known one learns its id (and its new address is written).
//!
//! Answers: 200 [`AnnounceAnswer`]; 401 unauthenticated (any signature failure), 403
//! another node's name, 400 a malformed or invalid body, 409 a decommissioned name, 413
//! a body too large, 503 metadata unavailable or too many changes staged. Every
//! outcome is counted in `shardlet_controller_announcements_total{outcome}`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use shardlet_auth::{KeyName, NodeName, Verifier};
use shardlet_model::layout::operations::{announce, Announced, Announcement};
use shardlet_model::layout::{LayoutError, LayoutOpError};
use shardlet_node::announce::{
    AnnounceAnswer, AnnounceRequest, AnnounceState, ANNOUNCE_BODY_BYTES_MAX,
};

use super::clock::unix_ms_now;
use super::shared::ServiceShared;

/// Nonces of announcements remembered (a node announces a few times at start): 64 Ki
/// entries, at most ~2.5 MiB.
pub const ANNOUNCE_REPLAY_CACHE_ENTRIES_MAX: usize = 64 * 1024;

fn refuse(
    shared: &ServiceShared,
    status: StatusCode,
    code: &'static str,
    message: String,
) -> Response {
    shared
        .metrics
        .announcements_total
        .with_label_values(&[code])
        .inc();
    tracing::warn!(%status, code, %message, "announcement refused");
    (
        status,
        Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response()
}

pub async fn handle(
    State((shared, verifier)): State<(Arc<ServiceShared>, Arc<Verifier>)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let verified = match verifier.verify(
        parts.method.as_str(),
        target,
        &parts.headers,
        SystemTime::now(),
    ) {
        Ok(verified) => verified,
        Err(error) => {
            shared
                .metrics
                .auth_refused_total
                .with_label_values(&[error.reason()])
                .inc();
            return refuse(
                &shared,
                error.status(),
                "unauthenticated",
                error.to_string(),
            );
        }
    };
    if let Err(error) = verified.require_payload_hash() {
        return refuse(
            &shared,
            error.status(),
            "unauthenticated",
            error.to_string(),
        );
    }
    let bytes = match read_body(body).await {
        Ok(bytes) => bytes,
        Err(message) => {
            return refuse(
                &shared,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                message,
            )
        }
    };
    if let Err(error) = verified.check_body(&bytes) {
        return refuse(
            &shared,
            error.status(),
            "unauthenticated",
            error.to_string(),
        );
    }
    let announced: AnnounceRequest = match serde_json::from_slice(&bytes) {
        Ok(announced) => announced,
        Err(error) => {
            return refuse(
                &shared,
                StatusCode::BAD_REQUEST,
                "malformed_body",
                format!("the announcement is not the expected JSON: {error}"),
            )
        }
    };
    let name = match NodeName::parse(&announced.name) {
        Ok(name) => name,
        Err(error) => {
            return refuse(
                &shared,
                StatusCode::BAD_REQUEST,
                "invalid_announcement",
                error.to_string(),
            )
        }
    };
    if verified.key != KeyName::Node(name) {
        return refuse(
            &shared,
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "key {} may announce only its own node, not node {name}",
                verified.key
            ),
        );
    }
    let announcement = Announcement {
        name,
        address: announced.address,
        region: announced.region,
        zone: announced.zone,
        capacity_bytes: announced.capacity_bytes,
    };
    match announce(&shared.metadata, &announcement, unix_ms_now()).await {
        Ok(outcome) => {
            let answer = match outcome {
                Announced::Assigned {
                    id,
                    layout_version,
                    mismatches,
                } => AnnounceAnswer {
                    state: AnnounceState::Assigned,
                    node_id: Some(id.0),
                    layout_version,
                    mismatches,
                },
                Announced::Pending { layout_version } => AnnounceAnswer {
                    state: AnnounceState::Pending,
                    node_id: None,
                    layout_version,
                    mismatches: Vec::new(),
                },
            };
            let label = match answer.state {
                AnnounceState::Assigned => "assigned",
                AnnounceState::Pending => "pending",
            };
            shared
                .metrics
                .announcements_total
                .with_label_values(&[label])
                .inc();
            tracing::debug!(node = %name, state = label, "announcement");
            Json(answer).into_response()
        }
        Err(LayoutOpError::Layout(error @ LayoutError::Decommissioned(_))) => refuse(
            &shared,
            StatusCode::CONFLICT,
            "decommissioned",
            error.to_string(),
        ),
        Err(LayoutOpError::Layout(error @ LayoutError::TooManyStaged(_))) => refuse(
            &shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_staged",
            error.to_string(),
        ),
        Err(LayoutOpError::Layout(error)) => refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            "invalid_announcement",
            error.to_string(),
        ),
        Err(error) => refuse(
            &shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            error.to_string(),
        ),
    }
}

/// The body, at most [`ANNOUNCE_BODY_BYTES_MAX`] bytes.
async fn read_body(body: Body) -> Result<axum::body::Bytes, String> {
    axum::body::to_bytes(body, ANNOUNCE_BODY_BYTES_MAX)
        .await
        .map_err(|error| {
            format!("the announcement body could not be read within {ANNOUNCE_BODY_BYTES_MAX} bytes (ANNOUNCE_BODY_BYTES_MAX): {error}")
        })
}
