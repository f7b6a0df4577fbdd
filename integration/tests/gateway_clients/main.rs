//! The gateway driven by the real S3 clients applications use — the aws CLI, boto3,
//! rclone and s3cmd — against real processes (metadata member, storage nodes, gateway)
//! on loopback. Each test starts its own cluster; clients are configured with
//! temporary files only (never ~/.aws or ~/.config). Install the clients with
//! `scripts/install-deps.sh test`. `authorization` checks who may do what, with keys of
//! three owners.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tools;

mod authorization;
mod aws_cli;
mod boto3;
mod bucket_tagging;
mod configuration;
mod key_import;
mod sync;
mod virtual_host;
