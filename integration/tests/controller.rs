//! The controller end to end: real metadata member, twelve storage nodes, the gateway
//! and one or two `shardlet controller` processes, driven through S3 and hurt with
//! `kill -9` and flipped bytes on disk. Every wait polls a condition with a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../harness/mod.rs"]
mod harness;

#[allow(dead_code)]
#[path = "gateway/s3_client.rs"]
mod s3_client;

#[path = "controller/support.rs"]
mod support;

#[path = "controller/repair.rs"]
mod repair;

#[path = "controller/scrub.rs"]
mod scrub;

#[path = "controller/transitions.rs"]
mod transitions;

#[path = "controller/lease.rs"]
mod lease;
