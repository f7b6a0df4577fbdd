//! `GET /ready` on the gateway (S3 port and admin port): ready while the metadata
//! service answered recently and a topology with nodes is known; `/health` stays
//! liveness.
//!
//! "Answered recently" is the cluster settings' last successful read: the gateway
//! re-reads them every `SETTINGS_REFRESH_INTERVAL` (`object::upload_deadline`), so the
//! check costs nothing per probe and a stranger polling `/ready` causes no metadata
//! traffic. Three missed refreshes in a row make the gateway not ready; the first
//! success after that makes it ready again.

use std::sync::Arc;
use std::time::Duration;

use shardlet_model::settings::{SettingsCache, SETTINGS_REFRESH_INTERVAL};
use shardlet_net::Readiness;

use crate::object::topology_source::TopologySource;

/// How old the last successful metadata read may be for the gateway to be ready.
pub const METADATA_ANSWERED_WITHIN: Duration = SETTINGS_REFRESH_INTERVAL.saturating_mul(3);

pub struct GatewayReadiness {
    pub settings: Arc<SettingsCache>,
    pub topology: Arc<TopologySource>,
}

impl GatewayReadiness {
    pub fn check(&self) -> Readiness {
        if self
            .settings
            .fresh_within(METADATA_ANSWERED_WITHIN)
            .is_none()
        {
            return Readiness::not_ready(format!(
                "the metadata service has not answered within {} s",
                METADATA_ANSWERED_WITHIN.as_secs()
            ));
        }
        if self.topology.snapshot().topology.nodes().is_empty() {
            return Readiness::not_ready("no storage node is known yet (empty topology)");
        }
        Readiness::Ready
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use shardlet_core::Topology;
    use shardlet_model::schema::ClusterSettings;

    use super::*;

    #[test]
    fn ready_only_once_metadata_answered() {
        let topology = Topology::from_toml_str(
            include_str!("../../examples/topology.toml"),
            "topology.toml",
        )
        .unwrap();
        let readiness = GatewayReadiness {
            settings: Arc::new(SettingsCache::new(ClusterSettings::default())),
            topology: Arc::new(TopologySource::new(topology)),
        };
        let Readiness::NotReady(reason) = readiness.check() else {
            panic!("ready before any metadata read");
        };
        assert!(reason.contains("metadata"), "{reason}");
        readiness.settings.set(ClusterSettings::default());
        assert_eq!(readiness.check(), Readiness::Ready);
    }
}
