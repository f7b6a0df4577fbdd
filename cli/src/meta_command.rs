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
#[command(group(clap::ArgGroup::new("member").required(true).args(["member_id", "member_id_from_hostname"])))]
pub struct MetaArgs {
    /// This member's raft id (unique in the cluster, never reused).
    #[arg(long)]
    pub member_id: Option<u64>,
    /// Take the member id from the host name instead: a StatefulSet pod's name ends in
    /// its ordinal (`meta-2`), and the id is that ordinal + 1 (`HOSTNAME`, else the
    /// kernel's host name; a fully qualified name counts by its first label).
    #[arg(long)]
    pub member_id_from_hostname: bool,
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
    let member_id = match args.member_id {
        Some(id) => id,
        None => member_id_from_hostname(&host_name()?)?,
    };
    let keyring = crate::connect::load_keyring(&args.keys, Some(shardlet_auth::Role::Member))?;
    let meta_key = crate::connect::require(&keyring, shardlet_auth::KeyName::Meta)?;
    let mut config = MetaConfig::new(member_id, args.listen, args.data, meta_key);
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
        member_id,
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

/// Where `--member-id-from-hostname` reads the host name: `HOSTNAME` (Kubernetes sets it
/// to the pod's host name in every container), else the kernel's.
fn host_name() -> anyhow::Result<String> {
    if let Some(name) = std::env::var_os("HOSTNAME").filter(|name| !name.is_empty()) {
        return name.into_string().map_err(|name| {
            anyhow::anyhow!("--member-id-from-hostname: HOSTNAME {name:?} is not UTF-8")
        });
    }
    let path = "/proc/sys/kernel/hostname";
    let name = std::fs::read_to_string(path).map_err(|error| {
        anyhow::anyhow!(
            "--member-id-from-hostname: HOSTNAME is unset and {path} cannot be read: {error}"
        )
    })?;
    Ok(name.trim_end().to_string())
}

/// Host names longer than this are refused unread (a DNS name is at most 253).
const HOST_NAME_CHARACTERS_MAX: usize = 253;

/// The member id of the StatefulSet pod named `host_name`: its ordinal (the trailing
/// `-N` of the first label, decimal, no leading zero) + 1, so ordinal 0 is member 1 as
/// in `--initial-members 1=meta-0…,2=meta-1…`.
fn member_id_from_hostname(host_name: &str) -> anyhow::Result<u64> {
    let shown: String = host_name.chars().take(HOST_NAME_CHARACTERS_MAX).collect();
    let refuse = |why: &str| {
        anyhow::anyhow!(
            "--member-id-from-hostname: host name {shown:?} {why}; a StatefulSet pod is named NAME-ORDINAL (meta-0 is member 1), or give --member-id"
        )
    };
    if host_name.chars().count() > HOST_NAME_CHARACTERS_MAX {
        return Err(refuse("is too long"));
    }
    let label = host_name.split('.').next().unwrap_or_default();
    let Some((prefix, ordinal)) = label.rsplit_once('-') else {
        return Err(refuse("has no trailing -ORDINAL"));
    };
    if prefix.is_empty()
        || ordinal.is_empty()
        || !ordinal.bytes().all(|byte| byte.is_ascii_digit())
        || (ordinal.len() > 1 && ordinal.starts_with('0'))
    {
        return Err(refuse(
            "does not end in -ORDINAL (decimal, no leading zero)",
        ));
    }
    ordinal
        .parse::<u64>()
        .ok()
        .and_then(|ordinal| ordinal.checked_add(1))
        .ok_or_else(|| refuse("has an ordinal too large for a member id"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::member_id_from_hostname;

    #[test]
    fn a_statefulset_ordinal_plus_one_is_the_member_id() {
        assert_eq!(member_id_from_hostname("meta-0").unwrap(), 1);
        assert_eq!(member_id_from_hostname("shardlet-meta-2").unwrap(), 3);
        assert_eq!(
            member_id_from_hostname("my-release-shardlet-meta-10").unwrap(),
            11
        );
        // setHostnameAsFQDN: the first label counts.
        assert_eq!(
            member_id_from_hostname("meta-4.meta-headless.ns.svc.cluster.local").unwrap(),
            5
        );
    }

    #[test]
    fn a_host_name_without_an_ordinal_is_refused_by_name() {
        for bad in [
            "meta",
            "meta-",
            "-3",
            "meta-x",
            "meta-1a",
            "meta-01",
            "meta-+1",
            "",
            "meta-18446744073709551615",
            "meta-99999999999999999999999",
            ".meta-1",
        ] {
            let error = member_id_from_hostname(bad).unwrap_err().to_string();
            assert!(
                error.contains(&format!("{bad:?}")) && error.contains("--member-id"),
                "{bad:?}: {error}"
            );
        }
        let long = format!("{}-1", "a".repeat(300));
        assert!(member_id_from_hostname(&long)
            .unwrap_err()
            .to_string()
            .contains("too long"));
    }
}
