//! Where fragments may go: the topology and its precomputed placement map.
//!
//! Until node records in meta-raft drive it, the topology comes from the topology file
//! (`examples/topology.toml` in `shardlet dev`). Swapping in a new epoch is one atomic
//! pointer store; requests in flight keep the map they started with.

use std::sync::{Arc, RwLock};

use shardlet_core::{PlacementMap, Topology};

pub struct TopologySource {
    current: RwLock<Arc<Snapshot>>,
}

pub struct Snapshot {
    pub topology: Topology,
    pub placement: PlacementMap,
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

    /// Installs a newer topology; an older or equal epoch is ignored.
    pub fn update(&self, topology: Topology) {
        let placement = PlacementMap::new(&topology);
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if topology.epoch() > guard.topology.epoch() {
            *guard = Arc::new(Snapshot {
                topology,
                placement,
            });
        }
    }
}
