//! What every worker of the daemon shares: clients, the lease, metrics, detection's
//! view of node health, and the scrub's findings waiting for repair. Workers import
//! this file, never `service/mod.rs` (which only wires them).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardlet_core::{NodeId, ShardletId};
use shardlet_meta::MetaClient;
use shardlet_model::schema::ShardletRecord;
use shardlet_model::settings::{SettingsCache, SettingsError};
use shardlet_model::{Metadata, MetadataError, Scan};

use super::clock::unix_ms_now;
use super::cluster::{Cluster, ClusterView};
use super::lease::Lease;
use super::metrics::Metrics;
use super::records;
use super::worker::WorkerBoard;
use crate::orphan_grace::{orphan_grace, DeadlineHold};
use crate::risk::RiskSource;
use crate::view::FragmentLocation;

/// Scrub findings waiting for the repair worker, at most this many.
const SCRUB_LOST_MAX: usize = 1_000_000;
/// The scrub deletes orphans only while its copy of the cluster settings was read
/// within this long (six refreshes): a controller cut off from meta-raft cannot know
/// whether the deadline was raised meanwhile.
pub const SETTINGS_FRESH_MAX: Duration = Duration::from_secs(30);

/// What the rest of the controller reads from detection.
#[derive(Default)]
pub struct NodeHealthView {
    pub risk: BTreeMap<NodeId, f64>,
    pub source: Option<RiskSource>,
    pub last_heartbeat_unix_ms: BTreeMap<NodeId, u64>,
    /// Nodes whose last `/health` said they refuse writes, with the node's reason.
    pub writes_refused: BTreeMap<NodeId, String>,
}

/// What every worker shares.
pub struct ServiceShared {
    pub cluster: Arc<Cluster>,
    /// The raw client, for compare-and-set batches whose ambiguous outcome the caller
    /// handles itself.
    pub meta: Arc<MetaClient>,
    /// Typed reads and honest scans over the same client.
    pub metadata: Metadata,
    pub lease: Arc<Lease>,
    pub metrics: Arc<Metrics>,
    pub health_view: Arc<Mutex<NodeHealthView>>,
    /// Every background worker's progress, for `/v1/status`.
    pub workers: Arc<WorkerBoard>,
    /// The cluster settings (the upload deadline), refreshed by the settings worker.
    pub settings: Arc<SettingsCache>,
    /// The deadline the orphan grace derives from (`None` until the settings are read).
    deadline_hold: Mutex<Option<DeadlineHold>>,
    scrub_lost: Mutex<BTreeSet<(ShardletId, FragmentLocation)>>,
}

impl ServiceShared {
    pub fn new(
        cluster: Arc<Cluster>,
        meta: Arc<MetaClient>,
        lease: Arc<Lease>,
        metrics: Arc<Metrics>,
        health_view: Arc<Mutex<NodeHealthView>>,
        workers: Arc<WorkerBoard>,
    ) -> Self {
        Self {
            cluster,
            metadata: Metadata::new(meta.clone()),
            meta,
            lease,
            metrics,
            health_view,
            workers,
            settings: Arc::new(SettingsCache::default()),
            deadline_hold: Mutex::new(None),
            scrub_lost: Mutex::new(BTreeSet::new()),
        }
    }

    /// Re-reads the cluster settings and derives the orphan grace (see
    /// [`crate::orphan_grace`]). On an error the last copy stays, aging towards
    /// [`SETTINGS_FRESH_MAX`].
    pub async fn refresh_settings(&self) -> Result<(), SettingsError> {
        let refreshed = self.settings.refresh(&self.metadata).await;
        if refreshed.is_ok() {
            let deadline = self.settings.upload_deadline();
            let mut hold = self.deadline_hold.lock().unwrap_or_else(|p| p.into_inner());
            hold.get_or_insert_with(|| DeadlineHold::new(deadline))
                .observe(deadline, unix_ms_now());
            self.metrics
                .upload_deadline_seconds
                .set(i64::try_from(deadline.as_secs()).unwrap_or(i64::MAX));
        }
        let grace = self.orphan_grace();
        self.metrics
            .orphan_grace_seconds
            .set(grace.map_or(0, |grace| {
                i64::try_from(grace.as_secs()).unwrap_or(i64::MAX)
            }));
        refreshed.map(|_| ())
    }

    /// How long the scrub keeps an unreferenced fragment, or `None` while the settings
    /// were not read recently enough to delete orphans at all.
    pub fn orphan_grace(&self) -> Option<Duration> {
        self.settings.fresh_within(SETTINGS_FRESH_MAX)?;
        self.deadline_hold
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|hold| orphan_grace(hold.effective()))
    }

    /// The cluster as meta-raft's node records describe it now.
    pub async fn cluster_view(&self) -> anyhow::Result<ClusterView> {
        let records = self.cluster.node_records(&self.metadata).await?;
        Ok(self.cluster.view(&records))
    }

    /// Every shardlet record, at most `keys_max` keys; undecodable ones are counted
    /// under `worker` (see [`records::shardlets`]).
    pub async fn shardlet_records(
        &self,
        keys_max: usize,
        worker: &str,
    ) -> Result<Scan<ShardletRecord>, MetadataError> {
        records::shardlets(&self.metadata, keys_max, worker, &self.metrics).await
    }

    pub fn node_risk(&self) -> BTreeMap<NodeId, f64> {
        self.health_view
            .lock()
            .map(|view| view.risk.clone())
            .unwrap_or_default()
    }

    pub fn add_scrub_lost(&self, lost: BTreeSet<(ShardletId, FragmentLocation)>) {
        let mut pending = self.scrub_lost.lock().unwrap_or_else(|p| p.into_inner());
        for entry in lost {
            if pending.len() >= SCRUB_LOST_MAX {
                break;
            }
            pending.insert(entry);
        }
    }

    pub fn take_scrub_lost(&self) -> BTreeSet<(ShardletId, FragmentLocation)> {
        std::mem::take(&mut *self.scrub_lost.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
