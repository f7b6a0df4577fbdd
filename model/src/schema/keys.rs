//! The key layout. Keys are text with one-letter prefixes and `/` separators; numeric ids
//! are fixed-width lowercase hex so byte order equals numeric order, and a prefix scan
//! lists exactly one kind (and one parent) in a useful order.
//!
//! | key | record |
//! |---|---|
//! | `b/{bucket}` | [`BucketRecord`](super::BucketRecord) |
//! | `o/{bucket}/{object key}` | [`ObjectRecord`](super::ObjectRecord) |
//! | `u/{bucket}/{object key}\0{upload id}` | [`MultipartUploadRecord`](super::MultipartUploadRecord) |
//! | `p/{upload id}/{part number, 5 digits}` | [`PartRecord`](super::PartRecord) |
//! | `s/{shardlet id}` | [`ShardletRecord`](super::ShardletRecord) |
//! | `n/{node id, 8 hex}` | [`NodeRecord`](super::NodeRecord) |
//! | `c/{access key}` | [`CredentialRecord`](super::CredentialRecord) |
//! | `x/nf/{node id, 8 hex}/{fragment id}` | empty: node → fragment index |
//! | `i/{object id}` | [`IntentRecord`](super::IntentRecord): fragments that may lack an owner |
//! | `l/controller` | [`LeaseRecord`](super::LeaseRecord): which controller acts |
//! | `l/controller-term` | [`LeaseFence`](super::LeaseFence): the lease's fencing token |
//! | `g/settings` | [`ClusterSettings`](super::ClusterSettings): settings every process shares |
//! | `g/layout` | [`LayoutRecord`](crate::layout::LayoutRecord): the cluster layout |
//!
//! Bucket names never contain `/` (S3 naming rules), so `o/{bucket}/` delimits exactly
//! one bucket's objects even though object keys may contain `/`.

use shardlet_core::{FragmentId, NodeId, ObjectId, ShardletId};

pub const BUCKET_PREFIX: &str = "b/";
pub const OBJECT_PREFIX: &str = "o/";
pub const UPLOAD_PREFIX: &str = "u/";
pub const PART_PREFIX: &str = "p/";
pub const SHARDLET_PREFIX: &str = "s/";
pub const NODE_PREFIX: &str = "n/";
pub const CREDENTIAL_PREFIX: &str = "c/";
pub const NODE_FRAGMENT_INDEX_PREFIX: &str = "x/nf/";
pub const INTENT_PREFIX: &str = "i/";
pub const CONTROLLER_LEASE: &str = "l/controller";
pub const CONTROLLER_LEASE_FENCE: &str = "l/controller-term";
pub const CLUSTER_SETTINGS: &str = "g/settings";
pub const CLUSTER_LAYOUT: &str = "g/layout";
/// The rebalance's progress ([`super::RebalanceRecord`]), written by the active controller.
pub const CLUSTER_REBALANCE: &str = "g/rebalance";

pub fn bucket(name: &str) -> Vec<u8> {
    format!("{BUCKET_PREFIX}{name}").into_bytes()
}

pub fn object(bucket: &str, key: &str) -> Vec<u8> {
    format!("{OBJECT_PREFIX}{bucket}/{key}").into_bytes()
}

/// All objects of a bucket, in key order; append a key prefix for S3 `prefix=` listing.
pub fn objects_of_bucket(bucket: &str) -> Vec<u8> {
    format!("{OBJECT_PREFIX}{bucket}/").into_bytes()
}

pub fn upload(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    format!("{UPLOAD_PREFIX}{bucket}/{key}\0{upload_id}").into_bytes()
}

/// Every multipart upload in a bucket, by object key then upload id.
pub fn uploads_of_bucket(bucket: &str) -> Vec<u8> {
    format!("{UPLOAD_PREFIX}{bucket}/").into_bytes()
}

pub fn part(upload_id: &str, part_number: u16) -> Vec<u8> {
    format!("{PART_PREFIX}{upload_id}/{part_number:05}").into_bytes()
}

pub fn parts_of_upload(upload_id: &str) -> Vec<u8> {
    format!("{PART_PREFIX}{upload_id}/").into_bytes()
}

pub fn shardlet(id: ShardletId) -> Vec<u8> {
    format!("{SHARDLET_PREFIX}{id}").into_bytes()
}

/// Every shardlet record of one object id (shardlet ids start with the object id).
pub fn shardlets_of_object(object: ObjectId) -> Vec<u8> {
    format!("{SHARDLET_PREFIX}{object}-").into_bytes()
}

pub fn node(id: NodeId) -> Vec<u8> {
    format!("{NODE_PREFIX}{:08x}", id.0).into_bytes()
}

pub fn credential(access_key: &str) -> Vec<u8> {
    format!("{CREDENTIAL_PREFIX}{access_key}").into_bytes()
}

pub fn node_fragment(node: NodeId, fragment: FragmentId) -> Vec<u8> {
    format!("{NODE_FRAGMENT_INDEX_PREFIX}{:08x}/{fragment}", node.0).into_bytes()
}

/// Every index entry of one node: what repair must rebuild when the node dies.
pub fn fragments_of_node(node: NodeId) -> Vec<u8> {
    format!("{NODE_FRAGMENT_INDEX_PREFIX}{:08x}/", node.0).into_bytes()
}

/// Parses the fragment id back out of a node → fragment index key.
pub fn fragment_of_index_key(key: &[u8]) -> Option<FragmentId> {
    let text = std::str::from_utf8(key).ok()?;
    let rest = text.strip_prefix(NODE_FRAGMENT_INDEX_PREFIX)?;
    let (_, fragment) = rest.split_once('/')?;
    fragment.parse().ok()
}

pub fn intent(object: ObjectId) -> Vec<u8> {
    format!("{INTENT_PREFIX}{object}").into_bytes()
}
