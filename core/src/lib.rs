//! `shardlet-core`: the vocabulary every other Shardlet crate speaks.
//!
//! Pure logic only: nothing in this crate touches a disk, a socket or a clock, so every
//! decision it makes can be replayed in tests and in the simulator.

pub mod checksum;
pub mod codec;
pub mod health_report;
pub mod ids;
pub mod placement;
pub mod scheme;
pub mod sizing;
pub mod topology;

pub use checksum::{Crc32c, Crc32cHasher};
pub use codec::{CodecError, Decoded, EncodedFragment};
pub use ids::{FragmentId, FragmentIndex, Generation, IdError, NodeId, ObjectId, ShardletId};
pub use placement::{FailureDomain, Placement, PlacementError, PlacementMap, Spread};
pub use scheme::{AccessClass, Codec, RedundancyLevel, Scheme, SchemeError};
pub use sizing::{ShardletPlan, ShardletSpan, SizingError, SizingPolicy};
pub use topology::{InvalidTopology, Node, NodeState, Topology, TopologyFileError};
