//! How a command reaches the cluster: its keys (`--key-file` / `SHARDLET_KEYS`, or the
//! cluster secret with `--secret-file` / `SHARDLET_CLUSTER_SECRET`), the metadata
//! service, the topology file. The lowest module of the binary: every command imports
//! it, it imports no command.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use shardlet_auth::load::{load_keys, KeySources};
use shardlet_auth::{Key, KeyName, Keyring, MetaCaller, Role, SigningKey};
use shardlet_core::Topology;
use shardlet_meta::client::ClientOptions;
use shardlet_meta::MetaClient;

/// Where a command's keys come from. No `Debug`: the environment values are secrets.
#[derive(clap::Args, Clone)]
pub struct KeyArguments {
    /// This process's key file: its role's keys (`shardlet admin key derive --role R`).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// The cluster secret file instead: every key is derived from it. Meant for
    /// operators; a server should hold only its role's keys.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// The role keys themselves (key file format); prefer the environment.
    #[arg(
        long = "keys-env",
        env = "SHARDLET_KEYS",
        hide_env_values = true,
        hide = true
    )]
    keys_from_environment: Option<String>,
    /// The cluster secret itself; prefer the environment over the command line.
    #[arg(
        long = "secret-env",
        env = "SHARDLET_CLUSTER_SECRET",
        hide_env_values = true,
        hide = true
    )]
    secret_from_environment: Option<String>,
}

/// The keys named by the arguments (a flag wins over the environment). `server`: the
/// role of a long-running process, which is warned about holding the cluster secret.
pub fn load_keyring(arguments: &KeyArguments, server: Option<Role>) -> anyhow::Result<Keyring> {
    let loaded = load_keys(&KeySources {
        key_file: arguments.key_file.as_deref(),
        secret_file: arguments.secret_file.as_deref(),
        keys_environment: arguments.keys_from_environment.as_deref(),
        secret_environment: arguments.secret_from_environment.as_deref(),
    })?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(role) = server {
        if loaded.holds_root() {
            tracing::warn!(
                source = %loaded.source,
                %role,
                "running with the cluster secret: anyone who takes this process takes every key; hand it only its role's keys (shardlet admin key derive --role {})",
                match role {
                    Role::Node(_) => "node --node NAME".to_string(),
                    other => other.to_string(),
                }
            );
        }
    }
    Ok(loaded.keyring)
}

/// `name`'s key from `keyring`, or an error saying which role file holds it.
pub fn require(keyring: &Keyring, name: KeyName) -> anyhow::Result<Key> {
    keyring
        .require(name)
        .with_context(|| format!("this command needs key {name}"))
}

pub fn signing_key(keyring: &Keyring, name: KeyName) -> anyhow::Result<SigningKey> {
    Ok(SigningKey::new(name, require(keyring, name)?))
}

/// `--layout-poll-seconds`, within the bounds of `shardlet_model::layout::watch`.
pub fn layout_poll_interval(seconds: f64) -> anyhow::Result<std::time::Duration> {
    use shardlet_model::layout::watch::{LAYOUT_POLL_INTERVAL_MAX, LAYOUT_POLL_INTERVAL_MIN};
    let interval = std::time::Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|interval| (LAYOUT_POLL_INTERVAL_MIN..=LAYOUT_POLL_INTERVAL_MAX).contains(interval))
        .with_context(|| {
            format!(
                "--layout-poll-seconds must be between {} and {} seconds, got {seconds}",
                LAYOUT_POLL_INTERVAL_MIN.as_secs_f64(),
                LAYOUT_POLL_INTERVAL_MAX.as_secs_f64()
            )
        })?;
    Ok(interval)
}

/// The topology file at `path`, parsed; errors name the file (and line, from the parser).
pub fn load_topology(path: &PathBuf) -> anyhow::Result<Topology> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the topology file {}", path.display()))?;
    Topology::from_toml_str(&text, &path.display().to_string())
        .map_err(|error| anyhow::anyhow!("{error}"))
}

/// A client of the metadata service members at `addresses`, signing as `caller`, over
/// `transport` (plaintext, or TLS trusting the cluster's CA).
pub fn meta_client(
    addresses: &[String],
    keyring: &Keyring,
    caller: MetaCaller,
    transport: &shardlet_net::Transport,
) -> anyhow::Result<MetaClient> {
    let key = signing_key(keyring, KeyName::MetaCaller(caller))?;
    MetaClient::new(
        addresses.to_vec(),
        key,
        ClientOptions {
            transport: transport.clone(),
            ..ClientOptions::default()
        },
    )
}

/// The operator's metadata client: `meta.admin` from `keys` (a key file or the cluster
/// secret), every `shardlet admin` command's way in.
pub fn admin_meta_client(
    addresses: &[String],
    keys: &KeyArguments,
    transport: &shardlet_net::Transport,
) -> anyhow::Result<MetaClient> {
    let keyring = load_keyring(keys, None)?;
    meta_client(addresses, &keyring, MetaCaller::Admin, transport)
}

/// Writes a file readable by the owner only and fsyncs it: after a crash it holds
/// either the whole content or (if created in the same crash) nothing usable, which the
/// next run reports by name.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    // `mode` applies only to a new file: a stale temporary keeps its own mode otherwise.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}
