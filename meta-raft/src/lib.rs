//! `shardlet-meta`: Shardlet's metadata service.
//!
//! openraft replicates a log of key-value command batches; every member applies them to a
//! RocksDB state machine. The parts are separate and swappable, like openraft's
//! `raft-kv-rocksdb` example:
//!
//! | module | its one job |
//! |---|---|
//! | [`log_store`] | the raft log and vote in RocksDB, one synced write batch per append |
//! | [`state_machine`] | applies command batches to the key-value column family; snapshots |
//! | [`network`] | raft RPC to other members over HTTP, signed with the `meta.member` key |
//! | [`identity`] | the cluster id: recorded in the data directory, carried and checked on raft RPC |
//! | [`formation_plan`] | what `shardlet meta` was told about forming a cluster: [`Formation`], `--initial-members` parsing |
//! | [`formation`] | forming a cluster once (`--bootstrap`, `--initial-members`), never by accident |
//! | [`peers`] | asking another member who it is, before forming anything |
//! | [`gate`] | refuses raft RPC while a member decides whether to form a cluster |
//! | [`readiness`] | `/ready`: knows a leader and has caught up |
//! | [`leader_watch`] | counts leaders taking office from raft's metrics channel |
//! | [`status`] | what a member says about itself: `/ready`, `/cluster/status`, raft gauges |
//! | [`membership_rules`] | pure safety rules of membership changes (quorum, odd counts) |
//! | [`auth`] | who may call: caller keys derived from `meta`, body hash, host, per-route roles |
//! | [`batcher`] | group commit: folds concurrent client writes into one raft entry |
//! | [`server`] | the HTTP API: raft RPC, key-value, cluster management, metrics |
//! | [`client`] | [`MetaClient`], the only way the rest of Shardlet reaches metadata |
//! | [`command`] | the key-value API's batches, conditions, outcomes and scan pages |
//! | [`snapshot`] | the checks a received snapshot passes; format 1 (JSON), converted at start |
//! | [`snapshot_file`] | format 2: the state as checksummed blocks, streamed |
//! | [`snapshot_build`], [`snapshot_install`] | streaming a RocksDB view to a file; installing one in bounded batches |
//! | [`snapshot_receive`], [`snapshot_store`] | chunks from the leader, checked; the files and the record of the current one |
//! | [`fuzzing`] | the properties the fuzz targets check (`fuzz/`): request bodies, commands |
//!
//! It is a plain replicated key-value store: keys and values are bytes. It must never
//! import what they mean (buckets, objects, shardlets, nodes: `shardlet-model`), nor the
//! gateway, controller or storage node.

pub mod auth;
pub mod batcher;
pub mod blob;
pub mod client;
pub mod command;
pub mod config;
pub mod formation;
pub mod formation_plan;
pub mod fuzzing;
pub mod gate;
pub mod identity;
pub mod kv_reader;
pub mod leader_watch;
pub mod log_store;
pub mod member;
pub mod membership_rules;
pub mod metrics;
pub mod network;
pub mod node;
pub mod peers;
pub mod readiness;
pub mod server;
pub mod snapshot;
pub mod snapshot_build;
pub mod snapshot_file;
pub mod snapshot_install;
pub mod snapshot_metrics;
pub mod snapshot_receive;
pub mod snapshot_store;
pub mod state_machine;
pub mod status;
pub mod storage;
pub mod types;
pub mod wire;

pub use blob::Blob;
pub use client::{ClientError, MetaClient};
pub use command::{Batch, BatchOutcome, Condition, Operation, ScanPage, VersionedValue};
pub use config::MetaConfig;
pub use formation::Formation;
pub use member::RunningMetaNode;
pub use node::MetaNode;
pub use types::{MemberId, Raft, TypeConfig};
pub use wire::ReadConsistency;
