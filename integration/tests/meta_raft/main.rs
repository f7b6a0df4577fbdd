//! End-to-end tests of the metadata service: `shardlet meta` members run as child
//! processes on loopback and are driven through `MetaClient` and raw HTTP.
#![allow(clippy::unwrap_used)]

mod linearizability;
mod load;
mod members;

mod admin_meta;
mod bad_input;
mod failover;
mod formation;
mod linearizable_history;
mod membership;
mod roles;
mod single_member;
mod snapshots;
