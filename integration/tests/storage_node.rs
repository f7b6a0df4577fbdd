//! End-to-end tests of the storage node: each test starts its own real `shardlet node`
//! process (own port, own temporary data directory) and checks one property of the
//! HTTP API contract (`docs/storage-node.md`) over real TCP. Requests are signed with
//! the stock `aws-sigv4` crate, independently of the node's own auth code.
#![allow(clippy::unwrap_used)]

#[path = "../harness/mod.rs"]
mod harness;

#[path = "storage_node/bad_input.rs"]
mod bad_input;
#[path = "storage_node/capacity_and_health.rs"]
mod capacity_and_health;
#[path = "storage_node/client.rs"]
mod client;
#[path = "storage_node/durability.rs"]
mod durability;
#[path = "storage_node/round_trip.rs"]
mod round_trip;
#[path = "storage_node/syscall_order.rs"]
mod syscall_order;
