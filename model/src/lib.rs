//! `shardlet-model`: what Shardlet's metadata means, and the one typed way to read and
//! change it.
//!
//! The metadata service (`shardlet-meta`) is a plain replicated key-value store of
//! bytes. This crate gives the bytes meaning and is the only place that does:
//!
//! | module | its one job |
//! |---|---|
//! | [`schema`] | the records (buckets, objects, uploads, parts, shardlets, nodes, credentials, intents, leases), their versioned encoding and the key layout |
//! | [`store`] | [`MetadataStore`]: the key-value API the layers above use (get, scan, compare-and-set batch), implemented by `shardlet_meta::MetaClient` |
//! | [`access`] | [`Metadata`]: typed versioned reads, paged and bounded scans that say when they are incomplete, compare-and-set updates with bounded retries |
//! | [`permission`] | who may do what to a bucket: owner, grants ([`permission::authorize`]), pure |
//! | [`layout`] | the cluster layout: nodes, zones, capacities, staged changes, versions; its checks, operations and watch |
//! | [`settings`] | settings every process shares (the upload deadline): bounds, reads, the operator's change, a per-process cache |
//! | `memory` | `InMemoryMetadata` (feature `test-support`): a fake store for unit tests of one module |
//! | [`fuzzing`] | the properties the fuzz target of the records checks (`fuzz/`) |
//!
//! Used by the gateway and the controller alike. It must never import the gateway, the
//! controller, the storage node or HTTP: it depends on `shardlet-core` (ids, schemes)
//! and on `shardlet-meta`'s client and command types only.

pub mod access;
pub mod fuzzing;
pub mod layout;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
pub mod permission;
pub mod schema;
pub mod settings;
pub mod store;

pub use access::{Metadata, Scan, Stored, UpdateError};
pub use store::{MetadataError, MetadataStore};
