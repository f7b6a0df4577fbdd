#![allow(clippy::unwrap_used)]

use shardlet_core::{
    Codec, Crc32c, FragmentIndex, Generation, NodeId, ObjectId, RedundancyLevel, Scheme, ShardletId,
};

use super::index::write_shardlet;
use super::*;
use shardlet_meta::command::Operation;

fn shardlet(nodes: &[u32]) -> ShardletRecord {
    ShardletRecord {
        id: ShardletId::new(ObjectId([7; 16]), 0),
        size_bytes: 1024,
        checksum: Crc32c(9),
        scheme: Scheme::Replicated {
            copies: nodes.len() as u8,
        },
        codec: Codec::None,
        fragments: nodes
            .iter()
            .enumerate()
            .map(|(index, node)| FragmentLocation {
                index: FragmentIndex(index as u8),
                node: NodeId(*node),
                generation: Generation(1),
                checksum: Crc32c(9),
                size_bytes: 1024,
            })
            .collect(),
        access: AccessCounters::default(),
        level: Some(RedundancyLevel::Medium),
        layout_changed_unix_ms: 0,
        layout_version: 4,
    }
}

#[test]
fn a_format_1_shardlet_record_reads_with_layout_version_0_and_is_rewritten_as_format_2() {
    let mut written = shardlet(&[1, 2, 3]);
    written.layout_version = 0;
    let mut document = serde_json::to_value(&written).unwrap();
    document.as_object_mut().unwrap().remove("layout_version");
    let mut old = vec![1u8];
    old.extend(serde_json::to_vec(&document).unwrap());
    let read: ShardletRecord = decode(&old).unwrap();
    assert_eq!(read, written);
    assert_eq!(encode(&read)[0], 2);
    // A format-1-only reader refuses the new records instead of losing the field.
    assert!(matches!(
        decode::<ShardletRecord>(&[3, b'{', b'}']),
        Err(DecodeError::UnsupportedVersion {
            found: 3,
            supported: 2,
            ..
        })
    ));
}

#[test]
fn records_round_trip_with_their_format_version_first() {
    let bucket = BucketRecord {
        name: "photos".into(),
        owner: "alice".into(),
        default_redundancy: RedundancyLevel::High,
        created_unix_ms: 5,
        deleting: false,
        grants: Vec::new(),
        tags: Vec::new(),
    };
    let bytes = encode(&bucket);
    assert_eq!(bytes[0], BucketRecord::FORMAT_VERSION);
    assert_eq!(decode::<BucketRecord>(&bytes).unwrap(), bucket);
    let record = shardlet(&[1, 2, 3]);
    assert_eq!(decode::<ShardletRecord>(&encode(&record)).unwrap(), record);
}

#[test]
fn unknown_fields_from_a_newer_writer_are_ignored() {
    let document = br#"{"name":"b","owner":"o","default_redundancy":"low","created_unix_ms":1,"added_in_v2":[1,2]}"#;
    let mut bytes = vec![1];
    bytes.extend_from_slice(document);
    assert_eq!(decode::<BucketRecord>(&bytes).unwrap().name, "b");
}

#[test]
fn a_newer_format_version_is_refused_not_misread() {
    let mut bytes = encode(&shardlet(&[1]));
    bytes[0] = 99;
    assert!(matches!(
        decode::<ShardletRecord>(&bytes),
        Err(DecodeError::UnsupportedVersion { found: 99, .. })
    ));
}

#[test]
fn empty_and_garbage_records_are_errors() {
    assert!(matches!(
        decode::<NodeRecord>(&[]),
        Err(DecodeError::Empty { .. })
    ));
    assert!(matches!(
        decode::<NodeRecord>(&[1, b'{']),
        Err(DecodeError::Malformed { .. })
    ));
}

#[test]
fn credential_debug_never_shows_the_secret() {
    let credential = CredentialRecord {
        access_key: "AKIA".into(),
        secret_key: SecretKey("very-secret".into()),
        owner: "alice".into(),
        created_unix_ms: 0,
    };
    assert!(!format!("{credential:?}").contains("very-secret"));
}

#[test]
fn moving_a_fragment_moves_its_index_entry_in_the_same_batch() {
    let before = shardlet(&[1, 2]);
    let mut after = before.clone();
    after.fragments[1].node = NodeId(5);
    after.fragments[1].generation = Generation(2);
    let batch = write_shardlet(Some(&before), &after, 17);
    let deleted: Vec<_> = batch
        .operations
        .iter()
        .filter_map(|operation| match operation {
            Operation::Delete { key } => Some(key.0.clone()),
            Operation::Put { .. } => None,
        })
        .collect();
    assert_eq!(
        deleted,
        vec![keys::node_fragment(
            NodeId(2),
            before.fragment_id(&before.fragments[1])
        )]
    );
    let index_key = keys::node_fragment(NodeId(5), after.fragment_id(&after.fragments[1]));
    assert!(batch
        .operations
        .iter()
        .any(|operation| operation.key().0 == index_key));
    assert_eq!(
        keys::fragment_of_index_key(&index_key),
        Some(after.fragment_id(&after.fragments[1]))
    );
    assert_eq!(batch.conditions.len(), 1);
}

#[test]
fn numeric_ids_sort_numerically_in_keys() {
    assert!(keys::node(NodeId(9)) < keys::node(NodeId(10)));
    assert!(keys::part("u", 9) < keys::part("u", 10));
}

#[test]
fn an_object_record_written_before_the_checksum_fields_still_decodes() {
    // An object record with no `checksums` and no `parts_count`: both default.
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

#[test]
fn keys_for_the_longest_s3_names_fit_the_key_limit() {
    use shardlet_meta::command::{validate_key, KEY_BYTES_MAX};
    // S3's limits: bucket names up to 63 bytes, object keys up to 1024 bytes of UTF-8.
    let bucket = "b".repeat(63);
    let key = "é".repeat(512);
    assert_eq!(key.len(), 1024);
    let upload_id = "0123456789abcdef0123456789abcdef";
    let longest = [
        keys::bucket(&bucket),
        keys::object(&bucket, &key),
        keys::upload(&bucket, &key, upload_id),
        keys::part(upload_id, 10_000),
    ];
    for built in &longest {
        assert_eq!(validate_key(built), Ok(()), "{} bytes", built.len());
    }
    assert_eq!(keys::upload(&bucket, &key, upload_id).len(), 1123);
    assert!(validate_key(&vec![b'k'; KEY_BYTES_MAX + 1]).is_err());
}

#[test]
fn bucket_grants_round_trip_and_a_bucket_without_grants_encodes_as_before() {
    let mut bucket = BucketRecord {
        name: "shared".into(),
        owner: "alice".into(),
        default_redundancy: RedundancyLevel::Medium,
        created_unix_ms: 5,
        deleting: false,
        grants: Vec::new(),
        tags: Vec::new(),
    };
    let plain = encode(&bucket);
    assert!(!String::from_utf8_lossy(&plain).contains("grants"));
    bucket.grants.push(BucketGrant {
        access_key: "KBOB".into(),
        permission: GrantPermission::ReadWrite,
    });
    let bytes = encode(&bucket);
    assert!(String::from_utf8_lossy(&bytes).contains(r#""permission":"read-write""#));
    assert_eq!(decode::<BucketRecord>(&bytes).unwrap(), bucket);
}

#[test]
fn bucket_tags_round_trip_and_a_record_without_them_reads_as_no_tags() {
    // A record written before tags existed (no `tags` field) decodes with none.
    let json = br#"{"name":"b","owner":"alice","default_redundancy":"medium","created_unix_ms":5}"#;
    let format_version = encode(&BucketRecord {
        name: "b".into(),
        owner: "alice".into(),
        default_redundancy: RedundancyLevel::Medium,
        created_unix_ms: 5,
        deleting: false,
        grants: Vec::new(),
        tags: Vec::new(),
    })[0];
    let old = [&[format_version][..], &json[..]].concat();
    let decoded = decode::<BucketRecord>(&old);
    let mut bucket = match decoded {
        Ok(bucket) => bucket,
        Err(error) => panic!("an old record must decode: {error}"),
    };
    assert!(bucket.tags.is_empty());
    assert!(!String::from_utf8_lossy(&encode(&bucket)).contains("tags"));
    bucket.tags.push(BucketTag {
        key: "team".into(),
        value: "日本".into(),
    });
    assert_eq!(decode::<BucketRecord>(&encode(&bucket)).unwrap(), bucket);
}
