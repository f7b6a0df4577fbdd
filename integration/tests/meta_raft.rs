//! End-to-end tests of the metadata service: `shardlet meta` members run as child
//! processes on loopback and are driven through `MetaClient` and raw HTTP.
#![allow(clippy::unwrap_used)]

#[path = "meta_raft/harness.rs"]
mod harness;
#[path = "meta_raft/linearizability.rs"]
mod linearizability;
#[path = "meta_raft/load.rs"]
mod load;

#[path = "meta_raft/bad_input.rs"]
mod bad_input;
#[path = "meta_raft/failover.rs"]
mod failover;
#[path = "meta_raft/linearizable_history.rs"]
mod linearizable_history;
#[path = "meta_raft/membership.rs"]
mod membership;
#[path = "meta_raft/single_member.rs"]
mod single_member;
