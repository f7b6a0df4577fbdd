//! `shardlet meta`: run one member of the metadata service; how it comes to belong to a
//! cluster (`--bootstrap`, `--initial-members`, or added later) is
//! `shardlet_meta::formation`.

use crate::output::say;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use shardlet_meta::formation::parse_initial_members;
use shardlet_meta::{Formation, MetaConfig, MetaNode};
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
    /// Form a new one-member cluster, once: refused when the data directory already
    /// belongs to a cluster (start again without it) or when a member answers at a
    /// `--peers` address. Without it (and without --initial-members) a new member waits
    /// to be added: `shardlet admin meta add`.
    #[arg(long, conflicts_with = "initial_members")]
    pub bootstrap: bool,
    /// With --bootstrap: addresses (host:port, comma-separated) where members of this
    /// cluster may run; if any answers as a member of a cluster, bootstrap is refused.
    #[arg(long, value_delimiter = ',', requires = "bootstrap")]
    pub peers: Vec<String>,
    /// The initial members of a new cluster, `ID=HOST:PORT,…` (this one included; an odd
    /// number, at most 7): the lowest id forms the cluster once all answer and belong to
    /// none, the others wait. Safe to give on every start (a member that belongs to the
    /// cluster just starts). This member's entry is its advertised address.
    #[arg(long, env = "SHARDLET_META_INITIAL_MEMBERS")]
    pub initial_members: Option<String>,
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
    config.formation = match (&args.initial_members, args.bootstrap) {
        (Some(text), _) => Formation::InitialMembers(
            parse_initial_members(text).map_err(|error| anyhow::anyhow!(error))?,
        ),
        (None, true) => Formation::Bootstrap { peers: args.peers },
        (None, false) => Formation::Join,
    };
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
    // Tests and scripts read this line to learn the bound port.
    say!(
        "shardlet meta: member {} listening on {}",
        args.member_id,
        config_url(&running.node.config.port, running.address)
    );
    // SIGTERM or SIGINT: stop accepting, finish requests in flight, stop raft, flush
    // RocksDB, exit 0.
    running.run_until(shardlet_net::shutdown_signal()).await
}

/// `scheme://address` as the port serves it.
fn config_url(port: &shardlet_net::PortConfig, address: SocketAddr) -> String {
    let scheme = if port.tls.is_some() { "https" } else { "http" };
    format!("{scheme}://{address}")
}
