//! Asking another member who it is: its `GET /cluster/status`, signed with this
//! member's `meta.member` key. Formation (`crate::formation`) asks every address it was
//! given before it initialises anything, and a member being formed answers it too.

use std::time::Duration;

use crate::auth::Sender;
use crate::node::MetaNode;
use crate::wire::{ClusterStatus, ErrorBody, PATH_STATUS};

/// How long one question may take: a member that does not answer within it counts as
/// unreachable for this round.
pub const PEER_QUESTION_TIMEOUT: Duration = Duration::from_secs(3);

/// What one address answered.
#[derive(Debug, Clone)]
pub enum PeerAnswer {
    /// A metadata member of a cluster made from this secret (initialised or not).
    Member(Box<ClusterStatus>),
    /// Nothing answered (refused, timed out): the member is not running, or not yet.
    Unreachable(String),
    /// Something answered but refused this cluster's key: a member of a cluster made from
    /// another secret (or another signed Shardlet service).
    RefusesOurKey(String),
    /// Something answered, but not as a metadata member.
    NotAMember(String),
}

impl PeerAnswer {
    /// One line for logs and refusals.
    pub fn describe(&self, address: &str) -> String {
        match self {
            PeerAnswer::Member(status) => match (&status.cluster_id, status.initialized) {
                (Some(cluster), _) => format!(
                    "member {} at {address} belongs to cluster {cluster} (voters {:?}, leader {})",
                    status.member_id,
                    status.voters,
                    leader_text(status.leader_id)
                ),
                (None, true) => format!(
                    "member {} at {address} belongs to a cluster (voters {:?}, leader {})",
                    status.member_id,
                    status.voters,
                    leader_text(status.leader_id)
                ),
                (None, false) => format!(
                    "member {} at {address} belongs to no cluster yet",
                    status.member_id
                ),
            },
            PeerAnswer::Unreachable(reason) => format!("{address} is unreachable ({reason})"),
            PeerAnswer::RefusesOurKey(reason) => format!(
                "{address} answers but refuses this cluster's key: a member of another cluster ({reason})"
            ),
            PeerAnswer::NotAMember(reason) => {
                format!("{address} answers, but not as a metadata member ({reason})")
            }
        }
    }
}

fn leader_text(leader: Option<crate::types::MemberId>) -> String {
    leader.map_or("unknown".to_string(), |leader| leader.to_string())
}

/// Asks the member at `address` for its status.
pub async fn ask(node: &MetaNode, address: &str) -> PeerAnswer {
    let url = format!("{}{PATH_STATUS}", node.config.transport.url(address));
    let signature = match node.auth.member_key().sign(
        "GET",
        address,
        PATH_STATUS,
        &Sender::Member(node.config.member_id),
        b"",
        false,
    ) {
        Ok(signature) => signature,
        Err(error) => return PeerAnswer::Unreachable(format!("cannot sign: {error}")),
    };
    let mut request = node.forward_http.get(url).timeout(PEER_QUESTION_TIMEOUT);
    for (name, value) in signature {
        request = request.header(name, value);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return PeerAnswer::Unreachable(error.to_string()),
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => return PeerAnswer::Unreachable(format!("reading the answer: {error}")),
    };
    if status.is_success() {
        return match serde_json::from_slice::<ClusterStatus>(&body) {
            Ok(status) => PeerAnswer::Member(Box::new(status)),
            Err(error) => PeerAnswer::NotAMember(format!("unreadable status: {error}")),
        };
    }
    let reason = serde_json::from_slice::<ErrorBody>(&body)
        .map(|error| format!("HTTP {status}: {}: {}", error.error, error.message))
        .unwrap_or_else(|_| format!("HTTP {status}"));
    if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
        PeerAnswer::RefusesOurKey(reason)
    } else if status == http::StatusCode::SERVICE_UNAVAILABLE {
        // A member whose replay cache is full, or a proxy with no backend yet.
        PeerAnswer::Unreachable(reason)
    } else {
        PeerAnswer::NotAMember(reason)
    }
}
