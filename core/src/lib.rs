//! `shardlet-core`: the vocabulary every other Shardlet crate speaks.
//!
//! Pure logic only: nothing in this crate touches a disk, a socket or a clock, so every
//! decision it makes can be replayed in tests and in the simulator.
//!
//! | module | its one job |
//! |---|---|
//! | [`ids`] | node, object, shardlet and fragment ids and their text forms |
//! | [`checksum`] | CRC32C, the checksum every fragment carries |
//! | [`scheme`] | redundancy schemes (replicas, Reed-Solomon k+m) and access classes |
//! | [`codec`] | erasure coding of one shardlet into fragments and back |
//! | [`sizing`] | how an upload is cut into variable-size shardlets |
//! | [`topology`] | regions → zones → nodes, parsed from the topology file |
//! | [`placement`] | jump consistent hash over the topology: where each fragment goes |
//! | [`fuzzing`] | the properties the fuzz targets check (`fuzz/`), and their input reader |
//!
//! It must never import another Shardlet crate (every one of them imports it), nor
//! anything that does I/O: no tokio, no HTTP, no filesystem.

pub mod checksum;
pub mod codec;
pub mod fuzzing;
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
