//! The controller end to end: real metadata member, twelve storage nodes, the gateway
//! and one or two `shardlet controller` processes, driven through S3 and hurt with
//! `kill -9` and flipped bytes on disk. Every wait polls a condition with a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod authentication;
mod failing_disk;
mod layout;
mod lease;
mod rebalance;
mod repair;
mod scrub;
mod transitions;
