//! Shardlet on many "machines" on one: every process in its own network namespace (a
//! host of `shardlet_testkit::netns`), hosts grouped in zones, zones cut off by dropping
//! their packets, processes killed with SIGKILL, nodes added and removed, all under a
//! running workload whose every acknowledged write is checked at the end. Needs root
//! (namespaces); skips loudly without it.
#![allow(clippy::unwrap_used)]

mod cluster;
mod partition;
mod scenario;
mod workload;
