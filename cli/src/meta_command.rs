//! `shardlet meta`: run one member of the metadata service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use shardlet_meta::{MetaConfig, MetaNode};
use shardlet_net::arguments::TlsArguments;

// No `Debug`: the arguments may hold keys.
#[derive(clap::Args)]
pub struct MetaArgs {
    /// This member's raft id (unique in the cluster, never reused).
    #[arg(long)]
    pub member_id: u64,
    /// Where to listen (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7380")]
    pub listen: SocketAddr,
    /// The address other members and clients use, if not the bound listen address.
    #[arg(long)]
    pub advertise: Option<String>,
    /// Data directory (RocksDB); kept across restarts.
    #[arg(long)]
    pub data: PathBuf,
    /// The member's key (`meta`): `--key-file` from `shardlet admin key derive --role
    /// member`.
    #[command(flatten)]
    pub keys: crate::connect::KeyArguments,
    /// Form a single-member cluster if this member is not in one yet.
    #[arg(long)]
    pub bootstrap: bool,
    /// Build a snapshot after this many log entries since the last.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_after_entries: u64,
    /// Log entries kept after a snapshot for followers that lag slightly.
    #[arg(long, default_value_t = 1_000)]
    pub entries_kept_after_snapshot: u64,
    /// Largest value a put may carry, in bytes.
    #[arg(long, default_value_t = shardlet_meta::config::VALUE_BYTES_MAX_DEFAULT)]
    pub value_bytes_max: usize,
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval_ms: u64,
    #[arg(long, default_value_t = 500)]
    pub election_timeout_min_ms: u64,
    #[arg(long, default_value_t = 1000)]
    pub election_timeout_max_ms: u64,
    #[command(flatten)]
    pub server: shardlet_net::arguments::ServerArguments,
    /// Nonces of accepted requests remembered to refuse replays (≤ 40 bytes each);
    /// when full, requests get 503 until the oldest expire (60 s).
    #[arg(long, default_value_t = shardlet_auth::REPLAY_CACHE_ENTRIES_MAX_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub replay_cache_entries_max: u64,
}

pub async fn run(args: MetaArgs, tls: &TlsArguments) -> anyhow::Result<()> {
    let keyring = crate::connect::load_keyring(&args.keys, Some(shardlet_auth::Role::Member))?;
    let meta_key = crate::connect::require(&keyring, shardlet_auth::KeyName::Meta)?;
    let mut config = MetaConfig::new(args.member_id, args.listen, args.data, meta_key);
    config.advertise_address = args.advertise;
    config.snapshot_after_entries = args.snapshot_after_entries;
    config.entries_kept_after_snapshot = args.entries_kept_after_snapshot;
    config.value_bytes_max = args.value_bytes_max;
    config.heartbeat_interval = Duration::from_millis(args.heartbeat_interval_ms);
    config.election_timeout_min = Duration::from_millis(args.election_timeout_min_ms);
    config.election_timeout_max = Duration::from_millis(args.election_timeout_max_ms);
    config.port = args.server.port(config.port.limits, tls)?;
    config.transport = tls.transport()?;
    config.replay_cache_entries_max = usize::try_from(args.replay_cache_entries_max)?;
    let running = MetaNode::start(config).await?;
    if args.bootstrap {
        running.node.bootstrap().await?;
    }
    // Tests and scripts read this line to learn the bound port.
    println!(
        "shardlet meta: member {} listening on {}",
        args.member_id,
        config_url(&running.node.config.port, running.address)
    );
    running.wait().await
}

/// `scheme://address` as the port serves it.
fn config_url(port: &shardlet_net::PortConfig, address: SocketAddr) -> String {
    let scheme = if port.tls.is_some() { "https" } else { "http" };
    format!("{scheme}://{address}")
}
