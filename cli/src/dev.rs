//! `shardlet dev`: a local setup in one directory, for trying Shardlet. Until the gateway
//! exists it is one storage node, in this process. Running it again on the same
//! directory keeps the data and the secret.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use shardlet_auth::ClusterSecret;
use shardlet_core::NodeId;
use shardlet_node::{BoundNode, NodeClient, NodeConfig};

/// How long the node may take to answer its first `/health`.
const READY_DEADLINE: Duration = Duration::from_secs(30);
const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(clap::Args)]
pub struct DevArguments {
    /// Directory for everything: the cluster secret and each node's data.
    #[arg(long)]
    data: PathBuf,
    /// Port of the storage node.
    #[arg(long, default_value_t = 19101)]
    port: u16,
}

pub async fn run(arguments: DevArguments) -> anyhow::Result<()> {
    std::fs::create_dir_all(&arguments.data)
        .with_context(|| format!("cannot create {}", arguments.data.display()))?;
    let secret = load_or_create_secret(&arguments.data.join("cluster-secret"))?;
    let listen = SocketAddr::from(([127, 0, 0, 1], arguments.port));
    let node_dir = arguments.data.join("node-1");
    let config = NodeConfig::new(listen, node_dir.clone(), NodeId(1), secret.clone());
    let node = BoundNode::bind(config).await?;
    let address = node.local_address();
    let server = tokio::spawn(node.serve(shardlet_node::shutdown_signal()));

    let url = format!("http://{address}");
    let client = NodeClient::new(&url, secret.clone())?;
    let give_up = tokio::time::Instant::now() + READY_DEADLINE;
    while let Err(error) = client.health().await {
        if tokio::time::Instant::now() >= give_up {
            anyhow::bail!("the storage node did not become healthy: {error}");
        }
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    }
    print_welcome(&url, &arguments.data, &node_dir, &secret);
    server.await.context("the storage node task failed")??;
    println!("stopped; data kept in {}", arguments.data.display());
    Ok(())
}

/// Reads `path`, or creates it with 32 random bytes in hex, readable by the owner only.
///
/// Crash while creating: the file may exist empty or partial; the next run reports it
/// as invalid and names the file, rather than silently using a weak secret.
fn load_or_create_secret(path: &Path) -> anyhow::Result<ClusterSecret> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return ClusterSecret::new(&text)
                .with_context(|| format!("invalid cluster secret in {}", path.display()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
    let text = hex::encode(rand::random::<[u8; 32]>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(format!("{text}\n").as_bytes())?;
    file.sync_all()?;
    Ok(ClusterSecret::new(&text)?)
}

fn print_welcome(url: &str, data: &Path, node_dir: &Path, secret: &ClusterSecret) {
    let id = "0123456789abcdef0123456789abcdef-00000000-00000000-00";
    let binary = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| "shardlet".to_string());
    println!(
        "\
Shardlet dev is running (one storage node; data in {node_dir}).

  health:   curl {url}/health
  metrics:  curl {url}/metrics

Talk to the node with the admin CLI:

  export SHARDLET_CLUSTER_SECRET={secret}
  echo hello > /tmp/hello.txt
  {binary} admin fragment put --node {url} {id} --file /tmp/hello.txt
  {binary} admin fragment get --node {url} {id}
  {binary} admin fragment list --node {url}

The secret is kept in {secret_file}. Stop with Ctrl-C; data and secret are kept.",
        node_dir = node_dir.display(),
        secret = secret.expose(),
        secret_file = data.join("cluster-secret").display(),
    );
}
