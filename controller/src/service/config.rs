//! The daemon's settings (from `shardlet controller`'s flags).

use std::net::SocketAddr;
use std::time::Duration;

use shardlet_auth::{AuthError, Key, KeyName, Keyring, MetaCaller, SigningKey};
use shardlet_net::{PortConfig, Transport};

use crate::detector::DetectorConfig;
use crate::heat::HeatConfig;
use crate::policy::PolicyConfig;
use crate::scheduler::SchedulerConfig;

#[derive(Clone)]
pub struct ServiceConfig {
    pub meta_addresses: Vec<String>,
    pub keys: ControllerKeys,
    pub listen: SocketAddr,
    /// How often the cluster layout is re-read (`--layout-poll-seconds`).
    pub layout_poll_interval: Duration,
    /// Apply nodes that announced themselves with a complete role without an operator
    /// (`--auto-apply-announced`: development, Kubernetes).
    pub auto_apply_announced: bool,
    /// The HTTP port's connection limit, header-read timeout, shutdown grace and
    /// metrics token.
    pub port: PortConfig,
    /// How the daemon reaches nodes, metadata members and the predictor.
    pub transport: Transport,
    /// This controller's name in the lease (unique per process).
    pub holder: String,
    pub lease_duration: Duration,
    pub detector: DetectorConfig,
    pub probe_interval: Duration,
    pub repair_interval: Duration,
    pub scheduler: SchedulerConfig,
    /// Pause between scrub passes; `None` disables the scrub.
    pub scrub_interval: Option<Duration>,
    pub scrub_bytes_per_second: u64,
    /// Pause between transition passes; `None` disables transitions.
    pub transition_interval: Option<Duration>,
    /// Pause between rebalance passes; `None` disables the rebalance.
    pub rebalance_interval: Option<Duration>,
    pub policy: PolicyConfig,
    pub heat: HeatConfig,
    /// Background I/O budget in bytes per second (a share of cluster bandwidth).
    pub budget_bytes_per_second: f64,
    pub predictor_url: Option<String>,
    /// Drain a node whose risk reaches this (predictive evacuation); `None`: never.
    pub evacuate_risk: Option<f64>,
}

/// The keys a controller holds (role `controller`), each for one purpose. `Debug`
/// shows their names only.
#[derive(Clone, Debug)]
pub struct ControllerKeys {
    /// `meta.controller`: signs metadata requests.
    pub meta: SigningKey,
    /// `storage`: each node's key (`node-NAME`) derives from it; verifies announcements.
    pub storage: Key,
    /// `controller`: verifies `/v1/status` (the admin signs with it).
    pub status: Key,
    /// `predictor`: signs `/v1/score` and verifies the sidecar's answers; only needed
    /// with a predictor.
    pub predictor: Option<Key>,
}

impl ControllerKeys {
    /// The controller's keys from `keyring` (its role key file, or the root).
    pub fn from_keyring(keyring: &Keyring) -> Result<Self, AuthError> {
        Ok(ControllerKeys {
            meta: keyring.signing_key(KeyName::MetaCaller(MetaCaller::Controller))?,
            storage: keyring.require(KeyName::Storage)?,
            status: keyring.require(KeyName::Controller)?,
            predictor: keyring.key(KeyName::Predictor),
        })
    }
}
