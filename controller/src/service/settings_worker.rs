//! Keeps this controller's copy of the cluster settings (the upload deadline) fresh and
//! the scrub's orphan grace derived from it. Every controller runs it, standbys too, so
//! one that takes the lease has a current copy at once.

use std::sync::Arc;

use async_trait::async_trait;
use shardlet_model::settings::SETTINGS_REFRESH_INTERVAL;

use super::shared::ServiceShared;
use super::worker::{Pace, Pass, Stop, Worker};

pub struct SettingsWorker {
    pub shared: Arc<ServiceShared>,
}

#[async_trait]
impl Worker for SettingsWorker {
    fn name(&self) -> &'static str {
        "settings"
    }

    fn pace(&self) -> Pace {
        Pace::Every(SETTINGS_REFRESH_INTERVAL)
    }

    async fn step(&self, _: &Stop) -> anyhow::Result<Pass> {
        self.shared.refresh_settings().await.map_err(|error| {
            anyhow::Error::new(error).context("cannot read the cluster settings")
        })?;
        Ok(Pass::Worked)
    }
}
