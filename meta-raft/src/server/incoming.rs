//! What every authenticated route shares: the request as received ([`Incoming`]), its
//! signature check and JSON body, and forwarding to the leader.
//!
//! The signature is checked on the headers before the body is read, and the body is
//! then read up to its route's limit ([`body_limit`]): a stranger, or a client sending
//! a key lookup the size of a snapshot, costs the member no memory and no wait.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, Uri};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::roles::authorize;
use crate::auth::{AuthError, Sender};
use crate::node::MetaNode;
use crate::wire::{HEADER_FORWARDED, HEADER_LEADER_ADDRESS};

pub type Shared = State<Arc<MetaNode>>;

/// Largest body of a route that carries keys, not values (get, scan, delete, votes,
/// membership changes, status).
pub const SMALL_BODY_BYTES_MAX: usize = 64 * 1024;

/// The largest body `path` accepts: raft entries, snapshots and writes get the
/// configured limit, everything else [`SMALL_BODY_BYTES_MAX`].
pub fn body_limit(path: &str, config: &crate::config::MetaConfig) -> usize {
    let large = [
        crate::network::PATH_APPEND,
        crate::network::PATH_SNAPSHOT,
        crate::wire::PATH_PUT,
        crate::wire::PATH_BATCH,
    ];
    if large.contains(&path) {
        config.request_body_bytes_max
    } else {
        SMALL_BODY_BYTES_MAX.min(config.request_body_bytes_max)
    }
}

/// An authenticated and authorised request: signature, caller's access to the route,
/// and body hash verified. Every route but `/health` and `/metrics` extracts it, so
/// no route can forget a check.
pub struct Incoming {
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub sender: Sender,
}

impl Incoming {
    fn path_and_query(&self) -> &str {
        self.uri
            .path_and_query()
            .map(|path| path.as_str())
            .unwrap_or("/")
    }

    /// Parses the JSON body; 400 naming the problem (and where in the body) otherwise.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|error| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                format!("invalid JSON body: {error}"),
            )
        })
    }

    fn was_forwarded(&self) -> bool {
        self.headers.contains_key(HEADER_FORWARDED)
    }
}

/// 401 (503 when the replay cache is full) naming the reason, counted by reason. The
/// log line names the reason and path, never a header value.
fn unauthenticated(node: &MetaNode, path: &str, error: AuthError) -> Response {
    node.metrics
        .auth_refused_total
        .with_label_values(&[error.reason()])
        .inc();
    tracing::warn!(%error, path, "unauthenticated request");
    let code = match error {
        AuthError::ReplayCacheFull { .. } => "replay_cache_full",
        _ => "unauthenticated",
    };
    ApiError::new(error.status(), code, error.to_string()).into_response()
}

impl FromRequest<Arc<MetaNode>> for Incoming {
    type Rejection = Response;

    async fn from_request(request: Request, node: &Arc<MetaNode>) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let target = parts
            .uri
            .path_and_query()
            .map(|path| path.as_str())
            .unwrap_or("/");
        let path = parts.uri.path();
        let verified = node
            .auth
            .verify_headers(parts.method.as_str(), target, &parts.headers);
        node.metrics
            .replay_cache_entries
            .set(node.auth.replay_cache_entries() as i64);
        let verified = verified.map_err(|error| unauthenticated(node, path, error))?;
        if let Err(reason) = authorize(path, verified.caller, verified.forwarded) {
            node.metrics
                .auth_refused_total
                .with_label_values(&["forbidden"])
                .inc();
            tracing::warn!(path, caller = ?verified.caller, "refused a caller outside its role");
            return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", reason).into_response());
        }
        let limit = body_limit(parts.uri.path(), &node.config);
        let body = axum::body::to_bytes(body, limit).await.map_err(|error| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the body of {} could not be read within its limit of {limit} bytes: {error}",
                    parts.uri.path()
                ),
            )
            .into_response()
        })?;
        verified
            .verify_body(&body)
            .map_err(|error| unauthenticated(node, parts.uri.path(), error))?;
        Ok(Incoming {
            uri: parts.uri,
            headers: parts.headers,
            body,
            sender: verified.sender,
        })
    }
}

/// Sends `incoming` on to the leader at `leader_address` and relays its answer, unless it
/// was already forwarded once (then the caller gets 503 with the leader hint and retries).
pub async fn forward_to_leader(
    node: &MetaNode,
    incoming: &Incoming,
    leader_address: Option<String>,
) -> Result<Response, ApiError> {
    let Some(leader_address) = leader_address else {
        return Err(ApiError::no_leader(None));
    };
    if incoming.was_forwarded() || leader_address == node.advertise_address {
        return Err(ApiError::no_leader(Some(leader_address)));
    }
    let path = incoming.path_and_query();
    let url = format!("{}{path}", node.config.transport.url(&leader_address));
    let mut request = node
        .forward_http
        .post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(incoming.body.clone());
    let sender = Sender::Member(node.config.member_id);
    // Re-signed by this member (a new nonce, the leader's host): the caller's own
    // signature was for this member and is spent.
    let signature = node
        .auth
        .member_key()
        .sign("POST", &leader_address, path, &sender, &incoming.body, true)
        .map_err(ApiError::internal)?;
    for (name, value) in signature {
        request = request.header(name, value);
    }
    let response = request.send().await.map_err(|error| {
        if error.is_connect() {
            // Never reached the leader: nothing was proposed, the client may retry.
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "leader_unreachable",
                format!("forwarding to leader {leader_address} failed: {error}"),
            )
            .with_leader(Some(leader_address.clone()))
        } else {
            // Sent, answer lost: the leader may have applied it.
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "outcome_unknown",
                format!("leader {leader_address} did not answer a forwarded request: {error}"),
            )
        }
    })?;
    let status = response.status();
    let body = response.bytes().await.map_err(|error| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "outcome_unknown",
            format!("reading the leader's answer failed: {error}"),
        )
    })?;
    let mut relayed = (status, body).into_response();
    relayed.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = http::HeaderValue::from_str(&leader_address) {
        relayed.headers_mut().insert(HEADER_LEADER_ADDRESS, value);
    }
    Ok(relayed)
}
