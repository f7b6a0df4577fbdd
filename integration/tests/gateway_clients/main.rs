//! The gateway driven by the real S3 clients applications use — the aws CLI, boto3,
//! rclone and s3cmd — against real processes (metadata member, storage nodes, gateway)
//! on loopback. Each test starts its own cluster; clients are configured with
//! temporary files only (never ~/.aws or ~/.config). Install the clients with
//! `scripts/install-deps.sh test`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tools;

mod aws_cli;
mod boto3;
mod sync;
