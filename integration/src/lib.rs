//! `shardlet-testkit`: real Shardlet processes for the end-to-end suites
//! (`integration/tests/`) and the benchmarks (`cli/benches/`), and the local-cluster
//! supervision `shardlet dev` shares with them.
//!
//! Two layers, in one crate so that what `shardlet dev` and the tests both do exists once:
//! - production ([`process`], [`poll`], [`local_cluster`]): a child process with its log
//!   and pid file, stopped with SIGTERM then SIGKILL and killed with its children when
//!   dropped; polling with a deadline; the topology file; `/health` probing; stopping a
//!   whole cluster. `shardlet dev` runs on these, so they return errors and never panic.
//!   They never import the test layer.
//! - tests (everything else): storage nodes, metadata members, gateway and controller
//!   processes, whole clusters ([`cluster::Cluster`], [`dev_cluster::DevCluster`]), raw
//!   HTTP, request signing, an S3 client, free ports. These panic with the processes'
//!   logs on failure, which is what a test wants.
//!
//! Must never import the crates of the servers it starts (storage-node, gateway,
//! controller): they are driven as processes over their wire protocols, so a test
//! proves the protocol and not a crate's own client. The `shardlet` binary cannot be
//! imported either: Cargo names the freshly built binary (`CARGO_BIN_EXE_shardlet`) and
//! the scratch directory (`CARGO_TARGET_TMPDIR`) only to that package's own tests and
//! benches, so those pass them in through [`shardlet_binary!`].
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bench;
pub mod binary;
pub mod cluster;
pub mod controller;
pub mod dev_cluster;
pub mod faulty_disk;
pub mod fixtures;
pub mod host_process;
pub mod local_cluster;
pub mod local_tls;
pub mod meta_member;
pub mod netns;
pub mod node;
pub mod node_http;
pub mod poll;
pub mod ports;
pub mod process;
pub mod raw_http;
pub mod records;
pub mod s3_client;
pub mod service;
pub mod signing;
pub mod slowloris;
pub mod wait;

pub use binary::{clients_dir, ShardletBinary};
pub use cluster::Cluster;
pub use dev_cluster::{DevCluster, DevPorts};
pub use faulty_disk::FaultyDisk;
pub use fixtures::{
    crc32c_hex, files_under, metric_total, pattern_bytes, random_fragment_id, write_private_file,
};
pub use node::{NodeOptions, NodeProcess};
pub use node_http::{put_request, Auth, NodeHttp};
pub use process::ChildProcess;
pub use s3_client::{S3Access, S3Client, S3Error};
pub use service::{ServiceProcess, START_DEADLINE};
pub use wait::wait_until;
