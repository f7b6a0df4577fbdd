//! How a command reaches the cluster: the cluster secret (`--secret-file` or
//! `SHARDLET_CLUSTER_SECRET`), the metadata service, the topology file. The lowest
//! module of the binary: every command imports it, it imports no command.

use std::path::PathBuf;

use anyhow::{bail, Context};
use shardlet_auth::ClusterSecret;
use shardlet_core::Topology;
use shardlet_meta::client::ClientOptions;
use shardlet_meta::MetaClient;

/// Where the cluster secret comes from: a file, or the environment.
#[derive(clap::Args, Clone)]
pub struct SecretArguments {
    /// File holding the cluster secret (surrounding whitespace ignored).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// The cluster secret itself; prefer the environment over the command line.
    #[arg(
        long = "secret-env",
        env = "SHARDLET_CLUSTER_SECRET",
        hide_env_values = true,
        hide = true
    )]
    secret_from_environment: Option<String>,
}

/// The secret named by the arguments: the file wins over the environment.
pub fn load_secret(arguments: &SecretArguments) -> anyhow::Result<ClusterSecret> {
    if let Some(path) = &arguments.secret_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the cluster secret file {}", path.display()))?;
        return ClusterSecret::new(&text)
            .with_context(|| format!("invalid cluster secret in {}", path.display()));
    }
    match &arguments.secret_from_environment {
        Some(text) => ClusterSecret::new(text).context("invalid SHARDLET_CLUSTER_SECRET"),
        None => bail!("no cluster secret: pass --secret-file PATH or set SHARDLET_CLUSTER_SECRET"),
    }
}

/// The topology file at `path`, parsed; errors name the file (and line, from the parser).
pub fn load_topology(path: &PathBuf) -> anyhow::Result<Topology> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the topology file {}", path.display()))?;
    Topology::from_toml_str(&text, &path.display().to_string())
        .map_err(|error| anyhow::anyhow!("{error}"))
}

/// A client of the metadata service members at `addresses`, signing with `secret`,
/// over `transport` (plaintext, or TLS trusting the cluster's CA).
pub fn meta_client(
    addresses: &[String],
    secret: &shardlet_auth::ClusterSecret,
    transport: &shardlet_net::Transport,
) -> anyhow::Result<MetaClient> {
    MetaClient::new(
        addresses.to_vec(),
        secret.expose(),
        ClientOptions {
            transport: transport.clone(),
            ..ClientOptions::default()
        },
    )
}
