//! A node announces itself to the controller: "I am NAME, at ADDRESS, in REGION/ZONE,
//! with CAPACITY", signed with its own key (`node-NAME`), so the announcement proves
//! the name. The controller stages a node it does not know as a pending role of the
//! cluster layout (applied by an operator, or by auto-apply) and answers with the id
//! once the layout has one: that is how a node finds its id from its name.
//!
//! Why the controller and not meta-raft: a node's key opens no metadata (meta-raft
//! refuses node keys), and the controller holds `storage` (so it can verify any
//! node's key) and `meta.controller` (so it can write the staged role). The node stays
//! ignorant of meta-raft; it learns only the controller's URLs.
//!
//! The announcer retries until the node has its id (every [`RETRY_INTERVAL_MIN`],
//! growing to [`RETRY_INTERVAL_MAX`] while the controller is unreachable or the role
//! is still pending), then stops: the layout is durable, and an address change comes
//! with the next start. A refusal (a decommissioned name) is logged at each retry.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use shardlet_auth::{payload_sha256, RequestParts, SigningKey};
use shardlet_net::Transport;

/// Where the controller takes announcements (POST, JSON, signed with `node-NAME`).
pub const ANNOUNCE_PATH: &str = "/v1/announce";
/// Largest announcement body the controller reads.
pub const ANNOUNCE_BODY_BYTES_MAX: usize = 4096;
/// First wait between attempts, and the longest (capped doubling).
pub const RETRY_INTERVAL_MIN: Duration = Duration::from_millis(500);
pub const RETRY_INTERVAL_MAX: Duration = Duration::from_secs(15);
/// One attempt's bound.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a node announces, and to whom (from `shardlet node`'s flags).
#[derive(Debug, Clone)]
pub struct AnnounceConfig {
    /// Base URLs of the controllers (tried in turn), e.g. `http://10.0.0.5:9600`.
    pub controllers: Vec<String>,
    /// `host:port` where gateways and controllers reach this node; `None`: the bound
    /// address (refused when it is a wildcard such as 0.0.0.0, which no one can dial).
    pub advertise: Option<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub capacity_bytes: Option<u64>,
    /// How the controllers are reached (their URLs' scheme must be its).
    pub transport: Transport,
}

/// The announcement's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceRequest {
    pub name: String,
    pub address: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub capacity_bytes: Option<u64>,
}

/// Where the node stands in the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnounceState {
    /// In the applied layout: `node_id` is set.
    Assigned,
    /// Staged, waiting for `shardlet admin layout apply` (or auto-apply).
    Pending,
}

/// The controller's answer (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceAnswer {
    pub state: AnnounceState,
    pub node_id: Option<u32>,
    pub layout_version: u64,
    /// Where the node's flags differ from its role in the layout (the layout wins).
    #[serde(default)]
    pub mismatches: Vec<String>,
}

/// The node's id as far as it knows: 0 until an announcement returned it.
#[derive(Debug, Default)]
pub struct AssignedId(AtomicU32);

impl AssignedId {
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, id: u32) {
        self.0.store(id, Ordering::Relaxed);
    }
}

/// Announces until the node has an id (module docs), writing it to `assigned`.
/// `advertise` is the resolved address (see [`AnnounceConfig::advertise`]).
pub async fn announce_until_assigned(
    config: AnnounceConfig,
    advertise: String,
    key: SigningKey,
    assigned: Arc<AssignedId>,
) {
    if config.controllers.is_empty() {
        tracing::error!("no controller to announce to");
        return;
    }
    let request = AnnounceRequest {
        name: match key.name() {
            shardlet_auth::KeyName::Node(name) => name.to_string(),
            other => {
                tracing::error!(key = %other, "announcements must be signed with a node key");
                return;
            }
        },
        address: advertise,
        region: config.region.clone(),
        zone: config.zone.clone(),
        capacity_bytes: config.capacity_bytes,
    };
    let client = match config
        .transport
        .client_builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the announcement client; not announcing");
            return;
        }
    };
    let mut wait = RETRY_INTERVAL_MIN;
    let mut pending_logged = false;
    for attempt in 0usize.. {
        let controller = &config.controllers[attempt % config.controllers.len()];
        match send(&client, controller, &key, &request).await {
            Ok(answer) => match (answer.state, answer.node_id) {
                (AnnounceState::Assigned, Some(id)) => {
                    assigned.set(id);
                    tracing::info!(
                        node_id = id,
                        layout_version = answer.layout_version,
                        "the cluster layout gives this node its id"
                    );
                    for mismatch in &answer.mismatches {
                        tracing::warn!(%mismatch, "this node's flags differ from its role in the layout (the layout wins; change it with `shardlet admin layout assign`)");
                    }
                    return;
                }
                _ => {
                    if !pending_logged {
                        tracing::info!(
                            layout_version = answer.layout_version,
                            "announced; pending until the layout is applied (`shardlet admin layout apply`, or a controller with --auto-apply-announced)"
                        );
                        pending_logged = true;
                    }
                }
            },
            Err(error) => {
                tracing::warn!(%controller, %error, "announcement not accepted; retrying")
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_INTERVAL_MAX);
    }
}

async fn send(
    client: &reqwest::Client,
    controller: &str,
    key: &SigningKey,
    request: &AnnounceRequest,
) -> Result<AnnounceAnswer, String> {
    let base = controller.trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{base}{ANNOUNCE_PATH}"))
        .map_err(|error| format!("bad controller URL {base:?}: {error}"))?;
    let host = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => return Err(format!("controller URL {base:?} names no host")),
    };
    let body = serde_json::to_vec(request).map_err(|error| error.to_string())?;
    let hash = payload_sha256(&body);
    let parts = RequestParts {
        method: "POST",
        host: &host,
        target: ANNOUNCE_PATH,
        headers: &[],
        payload_sha256: Some(&hash),
    };
    let signature = key
        .sign(&parts, SystemTime::now())
        .map_err(|error| error.to_string())?;
    let mut builder = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in signature.iter() {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.map_err(|error| error.to_string())?;
    let status = response.status();
    let text = response.text().await.map_err(|error| error.to_string())?;
    if !status.is_success() {
        return Err(format!(
            "{status}: {}",
            text.chars().take(512).collect::<String>()
        ));
    }
    serde_json::from_str(&text).map_err(|error| format!("unreadable answer: {error}"))
}
