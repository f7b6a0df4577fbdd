//! Keeps the gateway's topology current: every `--layout-poll-seconds` (2 s by default)
//! one linearizable read of the cluster layout (`g/layout`) and one scan of the node
//! records (liveness, written by the controller), combined into the placement topology
//! (`shardlet_model::layout::to_topology`) and installed in the [`TopologySource`].
//!
//! - The layout only moves forward ([`LayoutWatch`]): an older version read from a
//!   lagging source is ignored and logged.
//! - New fragments go only to nodes whose placement state accepts them: the layout's
//!   draining and decommissioned nodes and the controller's down nodes take none.
//! - A failed read keeps the last topology (counted in
//!   `shardlet_gateway_layout_refresh_failures_total`, logged); the gauge
//!   `shardlet_gateway_layout_version` says which version is in use.

use std::sync::Arc;
use std::time::Duration;

use shardlet_model::layout::watch::read_liveness;
use shardlet_model::layout::{to_topology, LayoutWatch, Seen};
use shardlet_model::Metadata;

use crate::metrics::Metrics;
use crate::object::topology_source::{TopologySource, Updated};

/// What the refresh loop needs.
pub struct LayoutRefresh {
    pub topology: Arc<TopologySource>,
    pub watch: LayoutWatch,
    pub metadata: Metadata,
    pub metrics: Arc<Metrics>,
}

impl LayoutRefresh {
    /// One refresh; errors are counted and logged, the last topology stays.
    pub async fn once(&self) {
        if let Err(error) = self.try_once().await {
            self.metrics.layout_refresh_failures_total.inc();
            tracing::warn!(%error, version = self.watch.version(), "cannot refresh the cluster layout; keeping the last one");
        }
        self.metrics
            .layout_version
            .set(i64::try_from(self.topology.snapshot().topology.epoch()).unwrap_or(i64::MAX));
    }

    async fn try_once(&self) -> anyhow::Result<()> {
        match self.watch.refresh(&self.metadata).await? {
            Seen::Older { read, installed } => {
                tracing::warn!(
                    read,
                    installed,
                    "read an older layout version than the one in use; keeping the newer one"
                );
            }
            Seen::Newer { from, to } => {
                tracing::info!(from, to, "new cluster layout version");
            }
            Seen::Same(_) => {}
        }
        let Some(layout) = self.watch.current() else {
            return Ok(());
        };
        let liveness = read_liveness(&self.metadata).await?;
        let topology = to_topology(&layout, &liveness)?;
        if self.topology.update(topology) == Updated::Older {
            tracing::warn!(
                version = layout.version,
                "the layout is older than the topology in use; keeping the newer one"
            );
        }
        Ok(())
    }

    /// Refreshes every `interval` until `stop` turns true.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = ticker.tick() => self.once().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use shardlet_core::{NodeId, NodeState, Topology};
    use shardlet_model::layout::operations;
    use shardlet_model::memory::InMemoryMetadata;
    use shardlet_model::schema::{encode, keys, NodeRecord};
    use shardlet_model::store::{Batch, MetadataStore};

    use super::*;

    fn example() -> Topology {
        Topology::from_toml_str(
            include_str!("../../../examples/topology.toml"),
            "topology.toml",
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_refresh_installs_the_layout_with_liveness_and_reports_its_version() {
        let store = Arc::new(InMemoryMetadata::default());
        let metadata = Metadata::new(store.clone());
        let refresh = LayoutRefresh {
            topology: Arc::new(TopologySource::new(Topology::empty(0))),
            watch: LayoutWatch::new(),
            metadata: metadata.clone(),
            metrics: Arc::new(Metrics::new()),
        };
        // No layout yet: still no nodes, version 0, no failure.
        refresh.once().await;
        assert!(refresh.topology.snapshot().topology.nodes().is_empty());
        assert_eq!(refresh.metrics.layout_refresh_failures_total.get(), 0);

        operations::import(&metadata, &example(), false, 1)
            .await
            .unwrap();
        let down = NodeRecord {
            id: NodeId(3),
            region: "eu-west".into(),
            zone: "eu-west-a".into(),
            address: "127.0.0.1:19103".into(),
            state: NodeState::Down,
            capacity_bytes: 1 << 40,
            used_bytes: 0,
            last_heartbeat_unix_ms: 0,
            writes_refused: None,
        };
        store
            .batch(Batch::of_put(keys::node(NodeId(3)), encode(&down)))
            .await
            .unwrap();
        refresh.once().await;
        let snapshot = refresh.topology.snapshot();
        assert_eq!(snapshot.topology.epoch(), 1);
        assert_eq!(snapshot.topology.nodes().len(), 12);
        assert_eq!(
            snapshot.topology.node(NodeId(3)).unwrap().state,
            NodeState::Down,
            "the controller's down node takes no new fragments"
        );
        assert_eq!(refresh.metrics.layout_version.get(), 1);
    }
}
