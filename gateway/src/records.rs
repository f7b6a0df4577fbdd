//! The metadata records the gateway reads and writes, and where they live.
//!
//! These mirror `shardlet-meta`'s `schema` (same key layout, same encoding: one format
//! version byte, then a JSON document), so records written here are read there and the
//! other way round. The few fields only the gateway needs (stored S3 checksums, the
//! multipart part count, upload intents) are `#[serde(default)]` additions, which
//! readers that do not know them ignore. When `shardlet-meta` is merged these types
//! are replaced by its own and the additions move there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shardlet_core::{
    Codec, Crc32c, FragmentId, FragmentIndex, Generation, NodeId, ObjectId, RedundancyLevel,
    Scheme, ShardletId,
};

/// A record type stored in the metadata service.
pub trait Record: Serialize + serde::de::DeserializeOwned {
    /// What the record is, for error messages.
    const KIND: &'static str;
    /// The newest format this build writes and the newest it can read.
    const FORMAT_VERSION: u8;
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{kind} record is empty")]
    Empty { kind: &'static str },
    #[error("{kind} record has format version {found}; this build reads up to {supported}")]
    UnsupportedVersion {
        kind: &'static str,
        found: u8,
        supported: u8,
    },
    #[error("{kind} record is malformed: {source}")]
    Malformed {
        kind: &'static str,
        source: serde_json::Error,
    },
}

pub fn encode<R: Record>(record: &R) -> Vec<u8> {
    let mut bytes = vec![R::FORMAT_VERSION];
    // Our plain structs always serialize; an empty document would fail to decode loudly.
    if let Err(error) = serde_json::to_writer(&mut bytes, record) {
        tracing::error!(kind = R::KIND, %error, "record serialization failed");
    }
    bytes
}

pub fn decode<R: Record>(bytes: &[u8]) -> Result<R, DecodeError> {
    let (&version, document) = bytes
        .split_first()
        .ok_or(DecodeError::Empty { kind: R::KIND })?;
    if version == 0 || version > R::FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            kind: R::KIND,
            found: version,
            supported: R::FORMAT_VERSION,
        });
    }
    serde_json::from_slice(document).map_err(|source| DecodeError::Malformed {
        kind: R::KIND,
        source,
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub name: String,
    pub owner: String,
    pub default_redundancy: RedundancyLevel,
    pub created_unix_ms: u64,
    /// Gateway addition: set while `DeleteBucket` checks emptiness (see `catalog.rs`).
    #[serde(default)]
    pub deleting: bool,
}

impl Record for BucketRecord {
    const KIND: &'static str = "bucket";
    const FORMAT_VERSION: u8 = 1;
}

/// One shardlet of an object, in object order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardletReference {
    pub id: ShardletId,
    pub size_bytes: u64,
}

/// S3 checksums of a whole object (or part), base64 as S3 sends them. Only the ones the
/// client sent (and the gateway verified) are stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChecksums {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub bucket: String,
    pub key: String,
    pub id: ObjectId,
    pub size_bytes: u64,
    pub etag: String,
    pub content_type: String,
    #[serde(default)]
    pub user_metadata: BTreeMap<String, String>,
    /// The S3 storage class the client asked for, as sent (e.g. `STANDARD`).
    #[serde(default)]
    pub storage_class: Option<String>,
    pub redundancy: RedundancyLevel,
    pub created_unix_ms: u64,
    pub shardlets: Vec<ShardletReference>,
    /// Gateway addition: verified S3 checksums, returned with `x-amz-checksum-mode`.
    #[serde(default)]
    pub checksums: StoredChecksums,
    /// Gateway addition: number of parts for a multipart object (ETag suffix).
    #[serde(default)]
    pub parts_count: Option<u32>,
}

impl Record for ObjectRecord {
    const KIND: &'static str = "object";
    const FORMAT_VERSION: u8 = 1;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartUploadRecord {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub object_id: ObjectId,
    pub content_type: String,
    #[serde(default)]
    pub user_metadata: BTreeMap<String, String>,
    pub redundancy: RedundancyLevel,
    pub initiated_unix_ms: u64,
    /// Gateway addition: the storage class asked for at creation.
    #[serde(default)]
    pub storage_class: Option<String>,
}

impl Record for MultipartUploadRecord {
    const KIND: &'static str = "multipart upload";
    const FORMAT_VERSION: u8 = 1;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub upload_id: String,
    pub part_number: u16,
    pub size_bytes: u64,
    pub etag: String,
    pub shardlets: Vec<ShardletReference>,
    pub uploaded_unix_ms: u64,
    /// Gateway addition: the object id the part's shardlets are named after (each part
    /// upload gets its own, so a re-uploaded part never collides with the old one).
    #[serde(default = "ObjectId::random")]
    pub part_object_id: ObjectId,
    #[serde(default)]
    pub checksums: StoredChecksums,
}

impl Record for PartRecord {
    const KIND: &'static str = "part";
    const FORMAT_VERSION: u8 = 1;
}

/// Where one fragment of a shardlet lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentLocation {
    pub index: FragmentIndex,
    pub node: NodeId,
    pub generation: Generation,
    pub checksum: Crc32c,
    pub size_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessCounters {
    pub reads_total: u64,
    pub writes_total: u64,
    pub last_access_unix_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardletRecord {
    pub id: ShardletId,
    pub size_bytes: u64,
    /// Checksum of the whole shardlet's bytes, checked after reassembly.
    pub checksum: Crc32c,
    pub scheme: Scheme,
    pub codec: Codec,
    pub fragments: Vec<FragmentLocation>,
    #[serde(default)]
    pub access: AccessCounters,
}

impl ShardletRecord {
    pub fn fragment_id(&self, location: &FragmentLocation) -> FragmentId {
        FragmentId::new(self.id, location.generation, location.index)
    }
}

impl Record for ShardletRecord {
    const KIND: &'static str = "shardlet";
    const FORMAT_VERSION: u8 = 1;
}

/// An S3 secret key. Never printed: `Debug` redacts it and it has no `Display`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretKey(pub String);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SecretKey(<redacted>)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    pub access_key: String,
    pub secret_key: SecretKey,
    pub owner: String,
    pub created_unix_ms: u64,
}

impl Record for CredentialRecord {
    const KIND: &'static str = "credential";
    const FORMAT_VERSION: u8 = 1;
}

/// Why fragments named after an object id may exist without a committed owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentState {
    /// An upload is writing fragments; it deletes the intent in its commit batch. Older
    /// than the GC timeout means abandoned.
    Uploading,
    /// Nothing references the object id any more (failed upload, overwritten or
    /// deleted object, aborted part): collect at once.
    Garbage,
}

/// Gateway addition (key `i/{object id}`): fragments and shardlet records named after
/// the listed object ids may exist on storage nodes and in metadata without a committed
/// owner; `gc.rs` collects them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentRecord {
    pub object_id: ObjectId,
    pub state: IntentState,
    pub bucket: String,
    pub key: String,
    pub created_unix_ms: u64,
    /// Every object id whose shardlets are to collect (a multipart object's parts each
    /// have their own); empty means just `object_id`.
    #[serde(default)]
    pub object_ids: Vec<ObjectId>,
    /// True when every fragment has a shardlet record saying where it is (committed
    /// data); false for uploads that may have written fragments before recording them,
    /// which the collector then also looks for on every node.
    #[serde(default)]
    pub records_complete: bool,
}

impl IntentRecord {
    pub fn collected_ids(&self) -> Vec<ObjectId> {
        if self.object_ids.is_empty() {
            vec![self.object_id]
        } else {
            self.object_ids.clone()
        }
    }
}

impl Record for IntentRecord {
    const KIND: &'static str = "upload intent";
    const FORMAT_VERSION: u8 = 1;
}

/// The key layout (identical to `shardlet-meta`'s `schema::keys`, plus `i/`).
pub mod keys {
    use shardlet_core::{FragmentId, NodeId, ObjectId, ShardletId};

    pub const BUCKET_PREFIX: &str = "b/";
    pub const OBJECT_PREFIX: &str = "o/";
    pub const UPLOAD_PREFIX: &str = "u/";
    pub const PART_PREFIX: &str = "p/";
    pub const SHARDLET_PREFIX: &str = "s/";
    pub const CREDENTIAL_PREFIX: &str = "c/";
    pub const NODE_FRAGMENT_INDEX_PREFIX: &str = "x/nf/";
    pub const INTENT_PREFIX: &str = "i/";

    pub fn bucket(name: &str) -> Vec<u8> {
        format!("{BUCKET_PREFIX}{name}").into_bytes()
    }

    pub fn object(bucket: &str, key: &str) -> Vec<u8> {
        format!("{OBJECT_PREFIX}{bucket}/{key}").into_bytes()
    }

    /// All objects of a bucket, in key order; append a key prefix for `prefix=` listing.
    pub fn objects_of_bucket(bucket: &str) -> Vec<u8> {
        format!("{OBJECT_PREFIX}{bucket}/").into_bytes()
    }

    pub fn upload(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
        format!("{UPLOAD_PREFIX}{bucket}/{key}\0{upload_id}").into_bytes()
    }

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

    pub fn credential(access_key: &str) -> Vec<u8> {
        format!("{CREDENTIAL_PREFIX}{access_key}").into_bytes()
    }

    pub fn node_fragment(node: NodeId, fragment: FragmentId) -> Vec<u8> {
        format!("{NODE_FRAGMENT_INDEX_PREFIX}{:08x}/{fragment}", node.0).into_bytes()
    }

    pub fn intent(object: ObjectId) -> Vec<u8> {
        format!("{INTENT_PREFIX}{object}").into_bytes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn records_round_trip_and_unknown_versions_are_refused() {
        let record = BucketRecord {
            name: "photos".into(),
            owner: "alice".into(),
            default_redundancy: RedundancyLevel::High,
            created_unix_ms: 7,
            deleting: false,
        };
        let bytes = encode(&record);
        assert_eq!(bytes[0], 1);
        assert_eq!(decode::<BucketRecord>(&bytes).unwrap(), record);
        let mut future = bytes.clone();
        future[0] = 2;
        assert!(matches!(
            decode::<BucketRecord>(&future),
            Err(DecodeError::UnsupportedVersion { found: 2, .. })
        ));
        assert!(matches!(
            decode::<BucketRecord>(&[]),
            Err(DecodeError::Empty { .. })
        ));
        assert!(matches!(
            decode::<BucketRecord>(&[1, b'{']),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn an_object_record_without_gateway_additions_still_decodes() {
        // What `shardlet-meta` writes: no `checksums`, no `parts_count`.
        let text = r#"{"bucket":"b","key":"k","id":"000102030405060708090a0b0c0d0e0f","size_bytes":3,
            "etag":"\"x\"","content_type":"text/plain","redundancy":"medium","created_unix_ms":1,
            "shardlets":[]}"#;
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(text.as_bytes());
        let record: ObjectRecord = decode(&bytes).unwrap();
        assert_eq!(record.checksums, StoredChecksums::default());
        assert_eq!(record.parts_count, None);
    }

    #[test]
    fn shardlet_keys_of_one_object_share_a_prefix_no_other_object_has() {
        let object = ObjectId([7; 16]);
        let other = ObjectId([8; 16]);
        let prefix = keys::shardlets_of_object(object);
        assert!(keys::shardlet(ShardletId::new(object, 3)).starts_with(&prefix));
        assert!(!keys::shardlet(ShardletId::new(other, 3)).starts_with(&prefix));
    }
}
