//! Configuration of one storage node, with every limit named.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use shardlet_auth::{Key, NodeName};
use shardlet_net::PortConfig;

use crate::announce::AnnounceConfig;

pub const MEBIBYTE: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The node's name: its identity in the cluster layout (which gives it its id) and
    /// the name of its key.
    pub name: NodeName,
    /// This node's key (`node-NAME`, derived from `storage`): it verifies requests to this
    /// node and to no other, and signs the node's announcements. `Debug` never shows it.
    pub key: Key,
    /// Where and what the node announces about itself (`None`: it announces nothing;
    /// its id stays unknown, 0 in `/health`, unless the layout already names it).
    pub announce: Option<AnnounceConfig>,
    /// Nonces of accepted requests remembered for replay refusal (~40 bytes each at
    /// most); beyond it requests get 503 until older ones expire.
    pub replay_cache_entries_max: usize,
    /// Largest fragment body accepted (413 above it, before reading the body).
    pub max_fragment_bytes: u64,
    /// PUTs that would leave less free space than this are refused with 507.
    pub reserve_bytes: u64,
    /// Largest `limit` a listing accepts.
    pub list_limit_max: usize,
    /// Listing page size when the request names none.
    pub list_limit_default: usize,
    /// PUTs in progress at once; more wait up to `write_queue_timeout` for a slot.
    pub max_concurrent_writes: usize,
    /// How long a PUT may wait for a write slot before it gets 503.
    pub write_queue_timeout: Duration,
    /// Longest pause between two chunks of a request body before the PUT is abandoned.
    pub body_idle_timeout: Duration,
    /// Longest a whole PUT body may take, so a trickling client cannot hold a write
    /// slot indefinitely (16 MiB at this bound is ~56 KB/s).
    pub body_total_timeout: Duration,
    /// Ranges up to this size are read and verified whole before the response starts,
    /// so a checksum failure becomes a clean 500; longer ones stream in
    /// `read_chunk_bytes` pieces, each verified before it is sent.
    pub verify_before_response_bytes: u64,
    pub read_chunk_bytes: u64,
    /// How often the health sampler reads /proc and statvfs.
    pub health_interval: Duration,
    /// The port's connection limit, header-read timeout, shutdown grace (how long
    /// graceful shutdown waits for requests in flight) and metrics token.
    pub port: PortConfig,
}

impl NodeConfig {
    /// A configuration with the documented defaults.
    pub fn new(listen: SocketAddr, data_dir: PathBuf, name: NodeName, key: Key) -> Self {
        Self {
            listen,
            data_dir,
            name,
            key,
            announce: None,
            replay_cache_entries_max: shardlet_auth::REPLAY_CACHE_ENTRIES_MAX_DEFAULT,
            max_fragment_bytes: 16 * MEBIBYTE,
            reserve_bytes: 1024 * MEBIBYTE,
            list_limit_max: 10_000,
            list_limit_default: 1000,
            max_concurrent_writes: 256,
            write_queue_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(30),
            body_total_timeout: Duration::from_secs(300),
            verify_before_response_bytes: 4 * MEBIBYTE,
            read_chunk_bytes: MEBIBYTE,
            health_interval: Duration::from_secs(5),
            port: PortConfig::default(),
        }
    }
}
