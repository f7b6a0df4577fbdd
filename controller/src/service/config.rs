//! The daemon's settings (from `shardlet controller`'s flags).

use std::net::SocketAddr;
use std::time::Duration;

use shardlet_auth::ClusterSecret;
use shardlet_core::Topology;

use crate::detector::DetectorConfig;
use crate::heat::HeatConfig;
use crate::policy::PolicyConfig;
use crate::scheduler::SchedulerConfig;

#[derive(Clone)]
pub struct ServiceConfig {
    pub meta_addresses: Vec<String>,
    pub secret: ClusterSecret,
    pub topology: Topology,
    pub listen: SocketAddr,
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
    pub policy: PolicyConfig,
    pub heat: HeatConfig,
    /// Background I/O budget in bytes per second (a share of cluster bandwidth).
    pub budget_bytes_per_second: f64,
    pub predictor_url: Option<String>,
    /// Drain a node whose risk reaches this (predictive evacuation); `None`: never.
    pub evacuate_risk: Option<f64>,
}
