//! End-to-end tests of the storage node: each test starts its own real `shardlet node`
//! process (own port, own temporary data directory) and checks one property of the
//! HTTP API contract (`docs/storage-node.md`) over real TCP. Requests are signed with
//! the stock `aws-sigv4` crate, independently of the node's own auth code, with keys
//! derived by the test kit from the contract (`shardlet_testkit::signing`).
#![allow(clippy::unwrap_used)]

mod authentication;
mod bad_input;
mod capacity_and_health;
mod client;
mod durability;
mod fsync_failure;
mod round_trip;
mod syscall_order;
