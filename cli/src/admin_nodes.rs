//! `shardlet admin nodes` (node states from meta-raft, as the controller wrote them)
//! and `shardlet admin drain NODE` (mark a node draining; the controller evacuates it;
//! a progress bar follows the node → fragment index down to zero).

use crate::output::{complain, out};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use shardlet_core::{NodeId, NodeState};
use shardlet_meta::{Batch, BatchOutcome, Blob, Condition, MetaClient, ReadConsistency};
use shardlet_model::schema::{decode, encode, keys, NodeRecord};
use shardlet_net::Transport;

use shardlet_auth::{KeyName, Keyring, MetaCaller, RequestParts};

use crate::connect::KeyArguments;

/// Index entries counted per node at most (the table says "≥" beyond).
const COUNT_MAX: usize = 10_000_000;
const SCAN_PAGE: usize = 10_000;
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Bound on the controller's answer to `/v1/status`.
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct NodesArguments {
    /// Metadata service members (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub meta: Vec<String>,
    /// The controller (e.g. http://127.0.0.1:9600): adds its lease and each node's risk
    /// from its signed `/v1/status`.
    #[arg(long)]
    pub controller: Option<String>,
    /// The admin's keys (`meta.admin`, `controller`), or the cluster secret.
    #[command(flatten)]
    pub keys: KeyArguments,
}

#[derive(clap::Args)]
pub struct DrainArguments {
    /// The storage node to empty.
    pub node: u32,
    #[arg(long, value_delimiter = ',', required = true)]
    pub meta: Vec<String>,
    /// Mark the node draining and return without waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds (the drain itself continues).
    #[arg(long, default_value_t = 24 * 3600)]
    pub timeout_seconds: u64,
    /// The admin's keys (`meta.admin`), or the cluster secret.
    #[command(flatten)]
    pub keys: KeyArguments,
}

fn client(
    meta: &[String],
    keys: &KeyArguments,
    transport: &Transport,
) -> anyhow::Result<MetaClient> {
    crate::connect::admin_meta_client(meta, keys, transport)
}

/// How many fragments the node → fragment index puts on `node`.
pub(crate) async fn fragments_on(meta: &MetaClient, node: NodeId) -> anyhow::Result<usize> {
    let prefix = keys::fragments_of_node(node);
    let mut count = 0;
    let mut after: Option<Blob> = None;
    loop {
        let page = meta
            .scan(
                prefix.clone(),
                after,
                SCAN_PAGE,
                ReadConsistency::Linearizable,
            )
            .await?;
        count += page.entries.len();
        match page.next_start_after {
            Some(next) if count < COUNT_MAX => after = Some(next),
            _ => return Ok(count),
        }
    }
}

/// The controller's `/v1/status`, signed with the `controller` key, over `transport`
/// (the URL's scheme must be the transport's: `https://` with the cluster's CA).
async fn controller_status(
    base_url: &str,
    keyring: &Keyring,
    transport: &Transport,
) -> anyhow::Result<serde_json::Value> {
    let key = crate::connect::signing_key(keyring, KeyName::Controller)?;
    let base_url = base_url.trim_end_matches('/');
    let url = reqwest::Url::parse(base_url)
        .with_context(|| format!("--controller {base_url:?} is not a URL"))?;
    if url.scheme() != transport.scheme() {
        bail!(
            "--controller {base_url:?}: this cluster is reached over {}://, not {}://",
            transport.scheme(),
            url.scheme()
        );
    }
    let host = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => bail!("--controller {base_url:?} names no host"),
    };
    let target = "/v1/status";
    let parts = RequestParts {
        method: "GET",
        host: &host,
        target,
        headers: &[],
        payload_sha256: None,
    };
    let signature = key.sign(&parts, SystemTime::now())?;
    let mut request = transport
        .client_builder()
        .timeout(STATUS_TIMEOUT)
        .build()?
        .get(format!("{base_url}{target}"));
    for (name, value) in signature.iter() {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the controller at {base_url}"))?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("the controller answered {status}: {body}");
    }
    serde_json::from_str(&body).context("the controller's /v1/status is not JSON")
}

pub async fn nodes(arguments: NodesArguments, transport: &Transport) -> anyhow::Result<()> {
    let keyring = crate::connect::load_keyring(&arguments.keys, None)?;
    let meta =
        crate::connect::meta_client(&arguments.meta, &keyring, MetaCaller::Admin, transport)?;
    let mut risk: BTreeMap<u64, f64> = BTreeMap::new();
    if let Some(controller) = &arguments.controller {
        let status = controller_status(controller, &keyring, transport).await?;
        out!(
            "controller {}: {}, risk from {}",
            status["holder"].as_str().unwrap_or("?"),
            if status["active"].as_bool() == Some(true) {
                "active"
            } else {
                "standby"
            },
            status["risk_source"].as_str().unwrap_or("nothing yet")
        );
        for node in status["nodes"].as_array().into_iter().flatten() {
            if let (Some(id), Some(value)) = (node["id"].as_u64(), node["risk"].as_f64()) {
                risk.insert(id, value);
            }
        }
    }
    let page = meta
        .scan(
            keys::NODE_PREFIX,
            None,
            SCAN_PAGE,
            ReadConsistency::Linearizable,
        )
        .await?;
    if page.entries.is_empty() {
        out!("no node records yet (a running controller registers every node of the cluster layout: `shardlet admin layout show`)");
        return Ok(());
    }
    let now = shardlet_controller::service::unix_ms_now();
    out!(
        "{:>6}  {:<15}  {:<22}  {:<12}  {:<12}  {:>15}  {:>10}  {:>6}",
        "node",
        "state",
        "address",
        "region",
        "zone",
        "last heartbeat",
        "fragments",
        "risk"
    );
    for (key, entry) in page.entries {
        let record: NodeRecord = match decode(entry.value.as_slice()) {
            Ok(record) => record,
            Err(error) => {
                complain!("{}: {error}", String::from_utf8_lossy(key.as_slice()));
                continue;
            }
        };
        let fragments = fragments_on(&meta, record.id).await?;
        let age = now.saturating_sub(record.last_heartbeat_unix_ms) as f64 / 1000.0;
        let node_risk = risk
            .get(&u64::from(record.id.0))
            .map_or("-".to_string(), |value| format!("{value:.2}"));
        out!(
            "{:>6}  {:<15}  {:<22}  {:<12}  {:<12}  {:>13.1}s  {:>10}  {:>6}",
            record.id.0,
            format!("{:?}", record.state).to_lowercase(),
            record.address,
            record.region,
            record.zone,
            age,
            fragments,
            node_risk
        );
        if let Some(reason) = &record.writes_refused {
            out!(
                "{:>6}  refuses writes (drained for it): {reason}",
                record.id.0
            );
        }
    }
    Ok(())
}

pub async fn drain(arguments: DrainArguments, transport: &Transport) -> anyhow::Result<()> {
    let meta = client(&arguments.meta, &arguments.keys, transport)?;
    let node = NodeId(arguments.node);
    let key = keys::node(node);
    let Some(entry) = meta.get(key.clone(), ReadConsistency::Linearizable).await? else {
        bail!("node {node} has no record: is it in the cluster layout (`shardlet admin layout show`), and is a controller running?");
    };
    let mut record: NodeRecord = decode(entry.value.as_slice())
        .with_context(|| format!("the record of node {node} is unreadable"))?;
    match record.state {
        NodeState::Draining => out!("node {node} is already draining"),
        NodeState::Decommissioned => bail!("node {node} is decommissioned"),
        _ => {
            record.state = NodeState::Draining;
            let batch =
                Batch::of_put(key.clone(), encode(&record)).when(Condition::VersionEquals {
                    key: key.into(),
                    version: entry.version,
                });
            if let BatchOutcome::ConditionFailed { .. } = meta.batch(batch).await? {
                bail!(
                    "node {node}'s record changed while marking it draining; run the command again"
                );
            }
            out!("node {node} marked draining; the controller moves its fragments away");
        }
    }
    if arguments.no_wait {
        return Ok(());
    }
    let initial = fragments_on(&meta, node).await?;
    let bar = indicatif::ProgressBar::new(initial as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} evacuating node {msg} [{bar:40}] {pos}/{len} fragments ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(node.to_string());
    let give_up = tokio::time::Instant::now() + Duration::from_secs(arguments.timeout_seconds);
    loop {
        let remaining = fragments_on(&meta, node).await?;
        bar.set_position(initial.saturating_sub(remaining) as u64);
        if remaining == 0 {
            bar.finish();
            out!("node {node} holds no fragments any more");
            return Ok(());
        }
        if tokio::time::Instant::now() >= give_up {
            bar.abandon();
            bail!(
                "node {node} still holds {remaining} fragments after {}s; the drain continues",
                arguments.timeout_seconds
            );
        }
        tokio::time::sleep(DRAIN_POLL_INTERVAL).await;
    }
}
