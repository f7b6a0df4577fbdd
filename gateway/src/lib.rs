//! `shardlet-gateway`: the S3 API of Shardlet, in two layers over the model.
//!
//! | layer | its one job |
//! |---|---|
//! | [`s3`] | S3 only: translates requests (over `s3s`) to the object layer and answers back in S3's terms (operations, errors, limits, checksums, preconditions, authentication) |
//! | [`object`] | buckets, objects, uploads and their data: the write path, **[`object::commit`] (every metadata batch: where a write becomes visible)**, the read path, listings, garbage collection, access heat |
//! | [`server`] | the S3 port (S3, and `/health` for probes) wiring both together |
//! | [`admin`] | the admin port: `/metrics` and `/health`, off the public S3 port |
//! | [`metrics`] | the gateway's Prometheus metrics, shared by both layers |
//! | [`fuzzing`] | the properties the fuzz targets of our S3 request handling check (`fuzz/`) |
//!
//! Each layer imports only the ones below it: `server` → `s3` → `object` →
//! `shardlet-model` (records, typed metadata access), `shardlet-node` (fragment
//! client), `shardlet-core`. The object layer must never import `s3`, and the S3 layer
//! never builds a metadata batch nor touches the key layout (a test in [`s3`] holds it).
//!
//! The gateway is stateless: everything it knows lives in meta-raft and on storage
//! nodes, so any number of gateways can serve the same cluster.

pub mod admin;
pub mod fuzzing;
pub mod metrics;
pub mod object;
pub mod readiness;
pub mod request_body;
pub mod s3;
pub mod server;
