//! What the load benchmarks (`cli/benches/`) share: timed phases of concurrent
//! operations, and the machine's loopback TCP limit measured beside them so that their
//! results read as ratios of what the box can do at all.

pub mod loopback;
pub mod phase;
