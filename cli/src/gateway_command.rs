//! `shardlet gateway`: the S3 gateway; `shardlet admin key create`: S3 credentials.

use crate::output::{out, say};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use shardlet_core::{SizingPolicy, Topology};
use shardlet_gateway::admin::admin_port_limits;
use shardlet_gateway::object::catalog::Catalog;
use shardlet_gateway::object::commit::Buckets;
use shardlet_gateway::object::gc::CollectorConfig;
use shardlet_gateway::object::node_fragments::NodeFragments;
use shardlet_gateway::object::topology_source::TopologySource;
use shardlet_gateway::s3::host::VirtualHosts;
use shardlet_gateway::server::{s3_port_limits, AdminConfig, BoundGateway, GatewayConfig};
use shardlet_net::arguments::TlsArguments;
use shardlet_net::PortConfig;

use shardlet_auth::{KeyName, MetaCaller, Role};

use crate::connect::{layout_poll_interval, load_keyring, meta_client, require, KeyArguments};

#[derive(clap::Args)]
pub struct GatewayArguments {
    /// Where S3 clients connect; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// The admin port: `GET /metrics` (Prometheus) and `GET /health`, off the public S3
    /// port; loopback by default. Port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Metadata service members (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub meta: Vec<String>,
    /// Removed: the cluster layout lives in meta-raft; import a topology file once with
    /// `shardlet admin layout import FILE`.
    #[arg(long, hide = true)]
    pub topology: Option<PathBuf>,
    /// How often the cluster layout and the nodes' liveness are re-read from meta-raft
    /// (new nodes, drains, down nodes are picked up without a restart).
    #[arg(long, default_value_t = 2.0, env = "SHARDLET_LAYOUT_POLL_SECONDS")]
    pub layout_poll_seconds: f64,
    /// Region reported to S3 clients.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Base domain of virtual-hosted–style requests: `Host: BUCKET.DOMAIN[:port]`
    /// addresses bucket BUCKET; `Host: DOMAIN`, an IP address or any other host stays
    /// path style. Repeatable or comma-separated; DNS names only (no IP, no port). DNS
    /// (and a TLS certificate) must cover `*.DOMAIN`.
    #[arg(long = "domain", value_delimiter = ',', env = "SHARDLET_DOMAIN")]
    pub domains: Vec<String>,
    /// Removed: the upload deadline is one cluster setting now (`shardlet admin cluster
    /// set upload-deadline-seconds N`), shared with the controller's orphan grace.
    #[arg(long, hide = true)]
    pub upload_timeout_seconds: Option<u64>,
    /// The gateway's keys (`meta.gateway`, `storage`): `--key-file` from `shardlet admin
    /// key derive --role gateway`.
    #[command(flatten)]
    pub keys: KeyArguments,
    #[command(flatten)]
    pub server: shardlet_net::arguments::ServerArguments,
}

pub async fn run(arguments: GatewayArguments, tls: &TlsArguments) -> anyhow::Result<()> {
    anyhow::ensure!(
        arguments.upload_timeout_seconds.is_none(),
        "--upload-timeout-seconds was removed: the upload deadline is a cluster setting \
         shared by every gateway and the controller; set it with `shardlet admin cluster \
         set upload-deadline-seconds N --meta …`"
    );
    anyhow::ensure!(
        arguments.topology.is_none(),
        "--topology was removed: the cluster layout lives in meta-raft and the gateway \
         watches it; import the file once with `shardlet admin layout import FILE --meta …`"
    );
    let layout_poll_interval = layout_poll_interval(arguments.layout_poll_seconds)?;
    let virtual_hosts = virtual_hosts(&arguments.domains)?;
    let keyring = load_keyring(&arguments.keys, Some(Role::Gateway))?;
    let transport = tls.transport()?;
    // Empty until the layout is read (before the first request, then every poll).
    let topology = Arc::new(TopologySource::new(Topology::empty(0)));
    let metadata = Arc::new(meta_client(
        &arguments.meta,
        &keyring,
        MetaCaller::Gateway,
        &transport,
    )?);
    let storage_key = require(&keyring, KeyName::Storage)?;
    let fragments = Arc::new(NodeFragments::new(topology.clone(), storage_key, transport));
    let s3_port = arguments.server.port(s3_port_limits(), tls)?;
    let scheme = if s3_port.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let config = GatewayConfig {
        listen: arguments.listen,
        region: arguments.region,
        sizing: SizingPolicy::default(),
        collector: CollectorConfig::default(),
        admin: Some(AdminConfig {
            listen: arguments.admin_listen,
            // The same certificate as the S3 port; the metrics token guards /metrics.
            port: PortConfig {
                limits: admin_port_limits(),
                metrics_token: arguments.server.metrics_token()?,
                tls: s3_port.tls.clone(),
            },
        }),
        port: s3_port,
        layout_poll_interval: Some(layout_poll_interval),
        virtual_hosts: virtual_hosts.clone(),
    };
    let gateway = BoundGateway::bind(config, metadata, fragments, topology).await?;
    let address = gateway.local_address()?;
    // Parents (`shardlet dev`, tests) read these lines to learn the bound ports (the
    // admin line must not contain "listening on": that phrase announces the S3 port).
    say!("shardlet gateway listening on {scheme}://{address}");
    if let Some(admin) = gateway.admin_address() {
        let admin = admin?;
        say!("shardlet gateway admin port (metrics, health): {scheme}://{admin}");
        tracing::info!(%admin, "admin port (metrics, health) listening");
    }
    if let Some(virtual_hosts) = &virtual_hosts {
        let domains = virtual_hosts.domains().join(",");
        say!("shardlet gateway virtual hosts: BUCKET.{{{domains}}}");
        tracing::info!(%domains, "virtual-hosted-style addressing");
    }
    tracing::info!(%address, "S3 gateway listening");
    gateway.serve(shardlet_node::shutdown_signal()).await?;
    tracing::info!("gateway stopped");
    Ok(())
}

/// `--domain`s (or `SHARDLET_DOMAIN`) checked at start: a bad one stops the gateway
/// naming the flag, before it listens. None given: path style only.
pub fn virtual_hosts(domains: &[String]) -> anyhow::Result<Option<Arc<VirtualHosts>>> {
    if domains.is_empty() {
        return Ok(None);
    }
    VirtualHosts::new(domains)
        .map(|virtual_hosts| Some(Arc::new(virtual_hosts)))
        .map_err(|why| anyhow::anyhow!("--domain (or SHARDLET_DOMAIN): {why}"))
}

#[derive(clap::Args)]
pub struct KeyCreateArguments {
    /// Metadata service members (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub meta: Vec<String>,
    /// Who the key belongs to (owns the buckets it creates).
    #[arg(long, default_value = "admin")]
    pub owner: String,
    /// The admin's keys (`meta.admin`), or the cluster secret.
    #[command(flatten)]
    pub keys: KeyArguments,
}

#[derive(clap::Args)]
pub struct KeyDeleteArguments {
    /// The access key to delete (as `key create` printed it).
    pub access_key: String,
    /// Metadata service members (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub meta: Vec<String>,
    /// The admin's keys (`meta.admin`), or the cluster secret.
    #[command(flatten)]
    pub keys: KeyArguments,
}

/// Deletes an access key from meta-raft; gateways refuse it within their credential
/// cache's lifetime.
pub async fn delete_key(
    arguments: KeyDeleteArguments,
    transport: &shardlet_net::Transport,
) -> anyhow::Result<()> {
    let buckets = admin_buckets(&arguments.meta, &arguments.keys, transport)?;
    match buckets.delete_credential(&arguments.access_key).await? {
        Some(record) => say!(
            "deleted access key {} of owner {}; gateways refuse it within {} s (their credential cache); the owner's buckets stay",
            record.access_key,
            record.owner,
            shardlet_gateway::s3::auth::CREDENTIAL_CACHE_TTL.as_secs()
        ),
        None => anyhow::bail!(
            "key delete: no access key {:?} exists",
            arguments.access_key.chars().take(64).collect::<String>()
        ),
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct KeyListArguments {
    /// Only the keys of this owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Metadata service members (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub meta: Vec<String>,
    /// The admin's keys (`meta.admin`), or the cluster secret.
    #[command(flatten)]
    pub keys: KeyArguments,
}

/// The bucket and credential records, as the operator (`meta.admin`) reaches them.
fn admin_buckets(
    meta: &[String],
    keys: &KeyArguments,
    transport: &shardlet_net::Transport,
) -> anyhow::Result<Buckets> {
    Ok(Buckets::new(Catalog::new(Arc::new(
        crate::connect::admin_meta_client(meta, keys, transport)?,
    ))))
}

/// Access keys read from meta-raft per request while listing.
const KEYS_PER_PAGE: usize = 1_000;

/// Lists the access keys with their owner and creation time; never a secret.
pub async fn list_keys(
    arguments: KeyListArguments,
    transport: &shardlet_net::Transport,
) -> anyhow::Result<()> {
    let buckets = admin_buckets(&arguments.meta, &arguments.keys, transport)?;
    if let Some(owner) = &arguments.owner {
        shardlet_gateway::object::commit::check_owner(owner)
            .map_err(|why| anyhow::anyhow!("--owner: {why}"))?;
    }
    out!("{:<32} {:<24} CREATED (UTC)", "ACCESS KEY", "OWNER");
    let mut after: Option<String> = None;
    let mut listed = 0usize;
    loop {
        let (page, more) = buckets.credentials(after.as_deref(), KEYS_PER_PAGE).await?;
        for record in &page {
            if arguments
                .owner
                .as_ref()
                .is_some_and(|owner| owner != &record.owner)
            {
                continue;
            }
            let created =
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(record.created_unix_ms);
            out!(
                "{:<32} {:<24} {}",
                record.access_key,
                record.owner,
                rfc3339(created)
            );
            listed += 1;
        }
        match (more, page.last()) {
            (true, Some(last)) => after = Some(last.access_key.clone()),
            _ => break,
        }
    }
    out!("{listed} access key(s)");
    Ok(())
}

/// `2026-12-06T21:05:18Z`: the SigV4 date (`20261206T210518Z`) with its separators.
fn rfc3339(time: std::time::SystemTime) -> String {
    let compact = shardlet_auth::amz_date::format_amz_date(time);
    match (
        compact.get(0..4),
        compact.get(4..6),
        compact.get(6..8),
        compact.get(9..11),
        compact.get(11..13),
        compact.get(13..15),
    ) {
        (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) => {
            format!("{year}-{month}-{day}T{hour}:{minute}:{second}Z")
        }
        _ => compact,
    }
}

/// Creates an access key + secret in meta-raft and prints them.
pub async fn create_key(
    arguments: KeyCreateArguments,
    transport: &shardlet_net::Transport,
) -> anyhow::Result<()> {
    let buckets = admin_buckets(&arguments.meta, &arguments.keys, transport)?;
    shardlet_gateway::object::commit::check_owner(&arguments.owner)
        .map_err(|why| anyhow::anyhow!("--owner: {why}"))?;
    let record = buckets.create_credential(&arguments.owner).await?;
    say!("access key: {}", record.access_key);
    say!("secret key: {}", record.secret_key.0);
    Ok(())
}
