//! `shardlet gateway`: the S3 gateway; `shardlet admin key create`: S3 credentials.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use shardlet_core::SizingPolicy;
use shardlet_gateway::object::catalog::Catalog;
use shardlet_gateway::object::commit::Buckets;
use shardlet_gateway::object::gc::CollectorConfig;
use shardlet_gateway::object::node_fragments::NodeFragments;
use shardlet_gateway::object::topology_source::TopologySource;
use shardlet_gateway::server::{BoundGateway, GatewayConfig};

use shardlet_auth::{KeyName, MetaCaller, Role};

use crate::connect::{load_keyring, load_topology, meta_client, require, KeyArguments};

#[derive(clap::Args)]
pub struct GatewayArguments {
    /// Where S3 clients connect; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Metadata service members (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub meta: Vec<String>,
    /// The topology file: which storage nodes exist, where, and their addresses.
    #[arg(long)]
    pub topology: PathBuf,
    /// Region reported to S3 clients.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Removed: the upload deadline is one cluster setting now (`shardlet admin cluster
    /// set upload-deadline-seconds N`), shared with the controller's orphan grace.
    #[arg(long, hide = true)]
    pub upload_timeout_seconds: Option<u64>,
    /// The gateway's keys (`meta.gateway`, `storage`): `--key-file` from `shardlet admin
    /// key derive --role gateway`.
    #[command(flatten)]
    pub keys: KeyArguments,
}

pub async fn run(arguments: GatewayArguments) -> anyhow::Result<()> {
    anyhow::ensure!(
        arguments.upload_timeout_seconds.is_none(),
        "--upload-timeout-seconds was removed: the upload deadline is a cluster setting \
         shared by every gateway and the controller; set it with `shardlet admin cluster \
         set upload-deadline-seconds N --meta …`"
    );
    let keyring = load_keyring(&arguments.keys, Some(Role::Gateway))?;
    let topology = Arc::new(TopologySource::new(load_topology(&arguments.topology)?));
    let metadata = Arc::new(meta_client(&arguments.meta, &keyring, MetaCaller::Gateway)?);
    let storage_key = require(&keyring, KeyName::Storage)?;
    let fragments = Arc::new(NodeFragments::new(topology.clone(), storage_key));
    let config = GatewayConfig {
        listen: arguments.listen,
        region: arguments.region,
        sizing: SizingPolicy::default(),
        collector: CollectorConfig::default(),
    };
    let gateway = BoundGateway::bind(config, metadata, fragments, topology).await?;
    let address = gateway.local_address()?;
    // Parents (`shardlet dev`, tests) read this line to learn the bound port.
    println!("shardlet gateway listening on http://{address}");
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
    /// The admin's keys (`meta.admin`), or the cluster secret.
    #[command(flatten)]
    pub keys: KeyArguments,
}

/// Creates an access key + secret in meta-raft and prints them.
pub async fn create_key(arguments: KeyCreateArguments) -> anyhow::Result<()> {
    let keyring = load_keyring(&arguments.keys, None)?;
    let buckets = Buckets::new(Catalog::new(Arc::new(meta_client(
        &arguments.meta,
        &keyring,
        MetaCaller::Admin,
    )?)));
    let record = buckets.create_credential(&arguments.owner).await?;
    println!("access key: {}", record.access_key);
    println!("secret key: {}", record.secret_key.0);
    Ok(())
}
