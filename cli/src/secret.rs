//! Loading the cluster secret from `--secret-file` or `SHARDLET_CLUSTER_SECRET`.

use anyhow::{bail, Context};
use shardlet_auth::ClusterSecret;

use crate::SecretArguments;

/// The secret named by the arguments: the file wins over the environment.
pub fn load(arguments: &SecretArguments) -> anyhow::Result<ClusterSecret> {
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
