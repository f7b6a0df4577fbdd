//! Keeps this controller's copy of the cluster layout current: re-reads `g/layout`
//! every `--layout-poll-seconds` and installs a newer version (never an older one), so
//! detection, repair, scrub and transitions work on the new nodes without a restart.
//! Every controller runs it, standbys too, so one that takes the lease is current.
//!
//! With `--auto-apply-announced` (development, Kubernetes), the lease holder also
//! applies the nodes that announced themselves with a complete role (region, zone,
//! capacity, address) as the next version; an operator's staged changes are left for
//! the operator.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shardlet_model::layout::operations::apply_announced;
use shardlet_model::layout::Seen;

use super::clock::unix_ms_now;
use super::shared::ServiceShared;
use super::worker::{Pace, Pass, Stop, Worker};

pub struct LayoutWorker {
    pub shared: Arc<ServiceShared>,
    pub poll_interval: Duration,
    pub auto_apply_announced: bool,
}

#[async_trait]
impl Worker for LayoutWorker {
    fn name(&self) -> &'static str {
        "layout"
    }

    fn pace(&self) -> Pace {
        Pace::Every(self.poll_interval)
    }

    async fn step(&self, _: &Stop) -> anyhow::Result<Pass> {
        let shared = &self.shared;
        let seen = shared
            .cluster
            .refresh_layout(&shared.metadata)
            .await
            .map_err(|error| anyhow::Error::new(error).context("cannot read the cluster layout"))?;
        if let Seen::Older { read, installed } = seen {
            tracing::warn!(
                read,
                installed,
                "read an older layout version than the one in use; keeping the newer one"
            );
        }
        if self.auto_apply_announced && shared.lease.is_active() {
            match apply_announced(&shared.metadata, unix_ms_now()).await {
                Ok(Some(applied)) => {
                    shared.metrics.layout_auto_applies_total.inc();
                    tracing::info!(
                        version = applied.record.version,
                        "applied the nodes that announced themselves (--auto-apply-announced)"
                    );
                    shared.cluster.install_layout(applied.record);
                }
                Ok(None) => {}
                Err(error) => {
                    // Stays staged for an operator to see (`shardlet admin layout show`).
                    tracing::warn!(%error, "cannot auto-apply the announced nodes");
                }
            }
        }
        shared
            .metrics
            .layout_version
            .set(i64::try_from(shared.cluster.members().version()).unwrap_or(i64::MAX));
        Ok(Pass::Worked)
    }
}
