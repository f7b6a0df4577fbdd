//! `shardlet-gateway`: the S3 API of Shardlet.
//!
//! - `s3_*.rs`: the S3 operations (over `s3s`), authentication, limits;
//! - `write_path.rs`: request → shardlets → fragments → commit;
//! - `read_path.rs`: shardlets → response, ranges, degraded reads;
//! - `catalog.rs` over `metadata.rs`: typed records in meta-raft (`bucket_cache.rs`:
//!   recently read buckets for the write path);
//! - `gc.rs`, `heat.rs`: background work;
//! - `server.rs`: the HTTP server (`/metrics`, `/health`, S3).
//!
//! The gateway is stateless: everything it knows lives in meta-raft and on storage
//! nodes, so any number of gateways can serve the same cluster.

pub mod bucket_cache;
pub mod catalog;
pub mod checksums;
#[cfg(test)]
mod commit_tests;
pub mod conditions;
pub mod errors;
pub mod etag;
pub mod fragments;
pub mod gateway;
pub mod gc;
pub mod heat;
pub mod limits;
pub mod listing;
pub mod meta_store;
pub mod metadata;
pub mod metrics;
pub mod node_fragments;
pub mod object_range;
#[cfg(test)]
mod paths_tests;
pub mod read_path;
pub mod s3_auth;
pub mod s3_buckets;
pub mod s3_listing;
pub mod s3_multipart;
pub mod s3_objects;
pub mod server;
pub mod storage_class;
pub mod topology_source;
pub mod write_path;
