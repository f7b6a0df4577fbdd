//! Configuration of one metadata-service member, with the limits it enforces.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use shardlet_auth::Key;
use shardlet_net::{PortConfig, Transport};

use crate::formation_plan::Formation;
use crate::types::MemberId;

/// Default largest value accepted by a put: metadata records are small; object data never
/// goes through raft.
pub const VALUE_BYTES_MAX_DEFAULT: usize = 1024 * 1024;
/// Default largest HTTP request body (a full batch of large values plus JSON overhead).
pub const REQUEST_BODY_BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;

/// How long the leader waits for one snapshot chunk's answer; the last chunk's answer
/// comes after the follower checked and installed the whole snapshot.
pub const SNAPSHOT_INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Clone, Debug)]
pub struct MetaConfig {
    pub member_id: MemberId,
    /// Where the HTTP API (raft RPC, key-value, admin, metrics) listens.
    pub listen_address: SocketAddr,
    /// The address other members and clients use to reach this member; defaults to the
    /// bound listen address (useful when listening on port 0).
    pub advertise_address: Option<String>,
    pub data_dir: PathBuf,
    /// The `meta` key, shared by every member: every caller's key derives from it
    /// (`shardlet_auth::keys`), so a member verifies them all. `Debug` never shows it.
    pub meta_key: Key,
    /// Nonces of accepted requests remembered for replay refusal (~40 bytes each at
    /// most); beyond it requests get 503 until older ones expire.
    pub replay_cache_entries_max: usize,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_after_entries: u64,
    /// Log entries kept after a snapshot, so slightly lagging followers catch up by log
    /// instead of by snapshot.
    pub entries_kept_after_snapshot: u64,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    pub value_bytes_max: usize,
    pub request_body_bytes_max: usize,
    /// Most client batches folded into one raft entry by group commit.
    pub group_commit_batches_max: usize,
    /// Most client batches waiting for the group-commit batcher; beyond it writers wait.
    pub group_commit_queue_max: usize,
    /// Bound on raft RPC to another member.
    pub rpc_timeout: Duration,
    /// The port's connection limit, header-read timeout, shutdown grace, metrics token
    /// and certificate.
    pub port: PortConfig,
    /// How this member reaches the others (raft RPC, forwarding to the leader).
    pub transport: Transport,
    /// Whether this member forms a cluster or waits to be added (`crate::formation`).
    pub formation: Formation,
}

impl MetaConfig {
    pub fn new(
        member_id: MemberId,
        listen_address: SocketAddr,
        data_dir: PathBuf,
        meta_key: Key,
    ) -> Self {
        MetaConfig {
            member_id,
            listen_address,
            advertise_address: None,
            data_dir,
            meta_key,
            replay_cache_entries_max: shardlet_auth::REPLAY_CACHE_ENTRIES_MAX_DEFAULT,
            snapshot_after_entries: 10_000,
            entries_kept_after_snapshot: 1_000,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(500),
            election_timeout_max: Duration::from_millis(1000),
            value_bytes_max: VALUE_BYTES_MAX_DEFAULT,
            request_body_bytes_max: REQUEST_BODY_BYTES_MAX_DEFAULT,
            group_commit_batches_max: 256,
            group_commit_queue_max: 4096,
            rpc_timeout: Duration::from_secs(5),
            port: PortConfig::default(),
            transport: Transport::Plaintext,
            formation: Formation::Join,
        }
    }

    pub fn raft_config(&self) -> anyhow::Result<openraft::Config> {
        let config = openraft::Config {
            cluster_name: "shardlet-meta".to_string(),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries),
            max_in_snapshot_log_to_keep: self.entries_kept_after_snapshot,
            // Per chunk; the last one waits for the whole install (minutes for millions
            // of records), so it is bounded separately from other RPC.
            install_snapshot_timeout: millis(self.rpc_timeout.max(SNAPSHOT_INSTALL_TIMEOUT)),
            snapshot_max_chunk_size: crate::snapshot_receive::chunk_bytes_max(
                self.request_body_bytes_max,
            ),
            // Replication sends up to this many entries per RPC; each entry already holds
            // up to `group_commit_batches_max` client batches.
            max_payload_entries: 64,
            ..Default::default()
        };
        Ok(config.validate()?)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
