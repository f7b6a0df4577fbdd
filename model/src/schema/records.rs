//! The typed metadata records. Times are unix milliseconds (`*_unix_ms`), sizes bytes.
//! Fields added later must be `#[serde(default)]` so older records still decode.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
pub use shardlet_core::NodeState;
use shardlet_core::{
    Codec, Crc32c, FragmentId, FragmentIndex, Generation, NodeId, ObjectId, RedundancyLevel,
    Scheme, ShardletId,
};

use super::encoding::Record;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub name: String,
    pub owner: String,
    pub default_redundancy: RedundancyLevel,
    pub created_unix_ms: u64,
    /// Set while `DeleteBucket` checks emptiness, so no object is created meanwhile.
    #[serde(default)]
    pub deleting: bool,
    /// Access given to keys of other owners (`shardlet admin bucket grant`), one entry
    /// per access key. Empty (and not written) for a bucket only its owner uses. A build
    /// that predates grants ignores them: it denies the grantees, never more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<BucketGrant>,
    /// The bucket's S3 tags (PutBucketTagging), in the order they were given; keys are
    /// unique. Empty (and not written) for a bucket without tags, so records written
    /// before tags existed read as "no tags", and a build that predates them ignores
    /// them (tags grant nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<BucketTag>,
}

/// One S3 tag of a bucket. Validated by the gateway before it is stored (S3's limits).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketTag {
    pub key: String,
    pub value: String,
}

/// One key's access to a bucket it does not own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketGrant {
    pub access_key: String,
    pub permission: GrantPermission,
}

/// What a grant allows. Owner-only operations (DeleteBucket, its ACL and settings) are
/// never granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantPermission {
    /// Reads and listings of objects and uploads.
    Read,
    /// Read, plus writes, deletes and multipart uploads.
    ReadWrite,
}

impl GrantPermission {
    /// The name operators type (`read`, `read-write`).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantPermission::Read => "read",
            GrantPermission::ReadWrite => "read-write",
        }
    }
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
    /// Verified S3 checksums, returned with `x-amz-checksum-mode: ENABLED`.
    #[serde(default)]
    pub checksums: StoredChecksums,
    /// Number of parts of a multipart object (the `-N` suffix of its ETag).
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
    /// The S3 storage class asked for at creation, as sent.
    #[serde(default)]
    pub storage_class: Option<String>,
    /// Set by CompleteMultipartUpload and AbortMultipartUpload before they read the
    /// parts, so that no part can be committed or replaced between that read and their
    /// batch (a part commit is conditioned on the upload's version, which the mark
    /// changes). A completion refused for its part list takes the mark back.
    #[serde(default)]
    pub closing: bool,
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
    /// The object id the part's shardlets are named after (each part upload gets its
    /// own, so a re-uploaded part never collides with the old one).
    #[serde(default = "ObjectId::random")]
    pub part_object_id: ObjectId,
    #[serde(default)]
    pub checksums: StoredChecksums,
}

impl Record for PartRecord {
    const KIND: &'static str = "part";
    const FORMAT_VERSION: u8 = 1;
}

/// Where one fragment of a shardlet lives. `generation` changes every time the fragment
/// is rewritten (repair, re-encode), so a stale copy on a returning node is recognisable.
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
    /// The durability level promised for this shardlet (the object's). `None` in
    /// records written before the field existed; the controller then infers it from
    /// the scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<RedundancyLevel>,
    /// When the scheme last changed (creation, or a controller transition); the policy
    /// waits a minimum dwell after it before changing the scheme again for heat alone.
    #[serde(default)]
    pub layout_changed_unix_ms: u64,
    /// The cluster layout version under which the fragments' nodes were last chosen in
    /// full (the gateway's write, a controller transition; a repair replaces one
    /// fragment and keeps it): the rebalance compares it with the current version to
    /// find what was placed under an older layout. 0: written before layouts were
    /// versioned (format 1), or under no layout.
    #[serde(default)]
    pub layout_version: u64,
}

impl ShardletRecord {
    pub fn fragment_id(&self, location: &FragmentLocation) -> FragmentId {
        FragmentId::new(self.id, location.generation, location.index)
    }
}

/// Format 2 added `layout_version` (format-1 records read with 0). A build that reads
/// only format 1 refuses a format-2 record instead of dropping the field when it
/// rewrites the record.
impl Record for ShardletRecord {
    const KIND: &'static str = "shardlet";
    const FORMAT_VERSION: u8 = 2;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: NodeId,
    pub region: String,
    pub zone: String,
    pub address: String,
    pub state: NodeState,
    pub capacity_bytes: u64,
    #[serde(default)]
    pub used_bytes: u64,
    pub last_heartbeat_unix_ms: u64,
    /// Why the node stopped acknowledging writes (a failed fsync, from its `/health`),
    /// recorded by the controller when it drains the node for it; kept after the node
    /// restarts, as the reason it is draining. Not written while `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes_refused: Option<String>,
}

impl Record for NodeRecord {
    const KIND: &'static str = "node";
    const FORMAT_VERSION: u8 = 1;
}

/// The controller lease (`l/controller`): one controller acts at a time. Taken and
/// renewed by compare-and-set on the key's version; `term` grows by one each time a
/// different holder (or the same holder after expiry) takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub holder: String,
    pub expires_unix_ms: u64,
    pub term: u64,
}

impl Record for LeaseRecord {
    const KIND: &'static str = "controller lease";
    const FORMAT_VERSION: u8 = 1;
}

/// The fencing token of the controller lease (`l/controller-term`): `holder` and `term`,
/// changed only when the lease changes hands. Every layout commit of a controller is
/// conditioned on this value, so a controller that lost its lease (paused, partitioned)
/// can never commit over its successor's work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseFence {
    pub holder: String,
    pub term: u64,
}

impl Record for LeaseFence {
    const KIND: &'static str = "controller lease fence";
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
    /// than the collection timeout means abandoned.
    Uploading,
    /// Nothing references the object id any more (failed upload, overwritten or
    /// deleted object, aborted part): collect at once.
    Garbage,
}

/// Fragments and shardlet records named after the listed object ids may exist on storage
/// nodes and in metadata without a committed owner; the gateway's collector removes them.
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

/// The upload deadline when no operator set one: longer than a 5 GiB PUT takes at any
/// sane speed (~1.5 MB/s).
pub const UPLOAD_DEADLINE_SECONDS_DEFAULT: u64 = 3600;
/// Shortest upload deadline accepted. One second is only useful to tests: below a
/// minute, large uploads cannot finish.
pub const UPLOAD_DEADLINE_SECONDS_MIN: u64 = 1;
/// Longest upload deadline accepted (7 days): the controller keeps unreferenced
/// fragments for about twice the deadline, so this also bounds how long garbage of a
/// crashed upload occupies disks.
pub const UPLOAD_DEADLINE_SECONDS_MAX: u64 = 7 * 24 * 3600;

/// Settings every gateway and controller must agree on (`g/settings`), changed by an
/// operator (`shardlet admin cluster set …`) and read through
/// [`crate::settings::SettingsCache`]. Absent means every setting has its default; a
/// setting added later gets a `#[serde(default)]`, so an older record still decodes.
/// Bounds are checked where the record is written and where it is read
/// ([`crate::settings`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    /// How long an upload (PutObject, UploadPart, CopyObject, UploadPartCopy) may take
    /// from its intent to its commit. The gateway refuses to commit an older one and
    /// its collector abandons it; the controller's orphan grace is derived from it.
    #[serde(default = "upload_deadline_seconds_default")]
    pub upload_deadline_seconds: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            upload_deadline_seconds: UPLOAD_DEADLINE_SECONDS_DEFAULT,
        }
    }
}

fn upload_deadline_seconds_default() -> u64 {
    UPLOAD_DEADLINE_SECONDS_DEFAULT
}

impl Record for ClusterSettings {
    const KIND: &'static str = "cluster settings";
    const FORMAT_VERSION: u8 = 1;
}

/// The rebalance's progress (`g/rebalance`), written by the active controller after
/// each pass, read by `shardlet admin layout status` and by a controller taking over
/// (to keep counting from where the previous one stopped). It is a report, not a
/// cursor: the work itself is re-derived every pass from the records (their
/// `layout_version` against the layout in use), so a lost or stale copy loses no work.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebalanceRecord {
    /// The layout version data is being moved towards.
    pub layout_version: u64,
    /// When the rebalance towards that version was first seen by a controller.
    pub started_unix_ms: u64,
    /// When this record was written (the end of the last pass).
    pub updated_unix_ms: u64,
    /// Moved since `started_unix_ms`.
    pub shardlets_moved: u64,
    pub bytes_moved: u64,
    /// What the last pass planned to move and did not (yet).
    pub shardlets_remaining: u64,
    pub bytes_remaining: u64,
    /// Shardlets with a fragment on a node that is not up (down, draining, …): the
    /// repair worker's, counted here so `status` shows why the rebalance waits.
    pub shardlets_left_to_repair: u64,
    /// Why the last pass stopped early, if it did (repair first, budget spent, …).
    #[serde(default)]
    pub waiting_for: Option<String>,
}

impl Record for RebalanceRecord {
    const KIND: &'static str = "rebalance progress";
    const FORMAT_VERSION: u8 = 1;
}
