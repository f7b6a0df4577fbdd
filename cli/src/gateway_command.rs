//! `shardlet gateway`: the S3 gateway; `shardlet admin key create`: S3 credentials.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use shardlet_core::SizingPolicy;
use shardlet_gateway::admin::admin_port_limits;
use shardlet_gateway::object::catalog::Catalog;
use shardlet_gateway::object::commit::Buckets;
use shardlet_gateway::object::gc::CollectorConfig;
use shardlet_gateway::object::node_fragments::NodeFragments;
use shardlet_gateway::object::topology_source::TopologySource;
use shardlet_gateway::server::{s3_port_limits, AdminConfig, BoundGateway, GatewayConfig};
use shardlet_net::arguments::TlsArguments;
use shardlet_net::PortConfig;

use crate::connect::{load_secret, load_topology, meta_client, SecretArguments};

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
    /// The topology file: which storage nodes exist, where, and their addresses.
    #[arg(long)]
    pub topology: PathBuf,
    /// Region reported to S3 clients.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Abandoned uploads are garbage-collected after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub upload_timeout_seconds: u64,
    #[command(flatten)]
    pub secret: SecretArguments,
    #[command(flatten)]
    pub server: shardlet_net::arguments::ServerArguments,
}

pub async fn run(arguments: GatewayArguments, tls: &TlsArguments) -> anyhow::Result<()> {
    let secret = load_secret(&arguments.secret)?;
    let transport = tls.transport()?;
    let topology = Arc::new(TopologySource::new(load_topology(&arguments.topology)?));
    let metadata = Arc::new(meta_client(&arguments.meta, &secret, &transport)?);
    let fragments = Arc::new(NodeFragments::new(topology.clone(), secret, transport));
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
        collector: CollectorConfig {
            upload_timeout: std::time::Duration::from_secs(arguments.upload_timeout_seconds),
            ..CollectorConfig::default()
        },
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
    };
    let gateway = BoundGateway::bind(config, metadata, fragments, topology).await?;
    let address = gateway.local_address()?;
    // Parents (`shardlet dev`, tests) read these lines to learn the bound ports (the
    // admin line must not contain "listening on": that phrase announces the S3 port).
    println!("shardlet gateway listening on {scheme}://{address}");
    if let Some(admin) = gateway.admin_address() {
        let admin = admin?;
        println!("shardlet gateway admin port (metrics, health): {scheme}://{admin}");
        tracing::info!(%admin, "admin port (metrics, health) listening");
    }
    tracing::info!(%address, "S3 gateway listening");
    gateway.serve(shardlet_node::shutdown_signal()).await?;
    tracing::info!("gateway stopped");
    Ok(())
}

#[derive(clap::Args)]
pub struct KeyCreateArguments {
    /// Metadata service members (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub meta: Vec<String>,
    /// Who the key belongs to (owns the buckets it creates).
    #[arg(long, default_value = "admin")]
    pub owner: String,
    #[command(flatten)]
    pub secret: SecretArguments,
}

/// Creates an access key + secret in meta-raft and prints them.
pub async fn create_key(
    arguments: KeyCreateArguments,
    transport: &shardlet_net::Transport,
) -> anyhow::Result<()> {
    let secret = load_secret(&arguments.secret)?;
    let buckets = Buckets::new(Catalog::new(Arc::new(meta_client(
        &arguments.meta,
        &secret,
        transport,
    )?)));
    let record = buckets.create_credential(&arguments.owner).await?;
    println!("access key: {}", record.access_key);
    println!("secret key: {}", record.secret_key.0);
    Ok(())
}
