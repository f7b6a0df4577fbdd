//! Where fragments may go: the topology and its precomputed placement map.
//!
//! The topology comes from the cluster layout in meta-raft combined with the node
//! records' liveness (`shardlet_model::layout::to_topology`), refreshed by
//! [`super::layout_refresh`]; its epoch is the layout version. Swapping in a new one is
//! one atomic pointer store; requests in flight keep the map they started with.

use std::sync::{Arc, RwLock};

use shardlet_core::{PlacementMap, Topology};

pub struct TopologySource {
    current: RwLock<Arc<Snapshot>>,
}

pub struct Snapshot {
    pub topology: Topology,
    pub placement: PlacementMap,
}

/// What [`TopologySource::update`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Updated {
    /// A newer epoch (layout version), or the same epoch with other node states.
    Installed,
    /// Exactly the topology installed already.
    Unchanged,
    /// An older epoch than the one installed: ignored (never go back).
    Older,
}

impl TopologySource {
    pub fn new(topology: Topology) -> Self {
        let placement = PlacementMap::new(&topology);
        Self {
            current: RwLock::new(Arc::new(Snapshot {
                topology,
                placement,
            })),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Installs `topology` when its epoch is newer, or the same with changed node states
    /// (liveness moves within one layout version); an older epoch is ignored.
    pub fn update(&self, topology: Topology) -> Updated {
        {
            let current = self.snapshot();
            if topology.epoch() < current.topology.epoch() {
                return Updated::Older;
            }
            if topology == current.topology {
                return Updated::Unchanged;
            }
        }
        let placement = PlacementMap::new(&topology);
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Checked again under the lock: another refresh may have installed a newer one.
        if topology.epoch() < guard.topology.epoch() {
            return Updated::Older;
        }
        *guard = Arc::new(Snapshot {
            topology,
            placement,
        });
        Updated::Installed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use shardlet_core::{NodeId, NodeState};

    use super::*;

    fn example(epoch: u64) -> Topology {
        let topology = Topology::from_toml_str(
            include_str!("../../../examples/topology.toml"),
            "topology.toml",
        )
        .unwrap();
        Topology::new(epoch, topology.nodes().to_vec()).unwrap()
    }

    #[test]
    fn newer_epochs_and_new_states_are_installed_older_epochs_never() {
        let source = TopologySource::new(example(2));
        assert_eq!(source.update(example(2)), Updated::Unchanged);
        assert_eq!(source.update(example(1)), Updated::Older);
        assert_eq!(source.snapshot().topology.epoch(), 2);
        let down = example(2)
            .with_node_state(2, NodeId(3), NodeState::Down)
            .unwrap();
        assert_eq!(source.update(down), Updated::Installed);
        assert_eq!(
            source.snapshot().topology.node(NodeId(3)).unwrap().state,
            NodeState::Down
        );
        assert_eq!(source.update(example(3)), Updated::Installed);
        assert_eq!(source.snapshot().topology.epoch(), 3);
    }
}
