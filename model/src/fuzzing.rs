//! The properties the fuzz target of the metadata records checks (see
//! `shardlet_core::fuzzing` for how checks, targets and the corpus replay fit
//! together): every record type's stored form, and the node → fragment index keys.

use std::fmt::Debug;

use shardlet_core::fuzzing::{Input, Target};
use shardlet_core::NodeId;

use crate::schema::encoding::{decode, encode, DecodeError, Record};
use crate::schema::keys;
use crate::schema::records::{
    BucketRecord, CredentialRecord, IntentRecord, LeaseFence, LeaseRecord, MultipartUploadRecord,
    NodeRecord, ObjectRecord, PartRecord, SecretKey, ShardletRecord,
};

/// The fuzz targets whose checks live here.
pub const TARGETS: &[Target] = &[("model_records", model_records)];

/// The first byte picks the record type (or, 10, an index key); the rest is the stored
/// bytes, `[format version][JSON]`. What decodes has a format version this build
/// knows, encodes to bytes that decode to the same record, and encoding is stable. A
/// credential's `Debug` never shows its secret.
pub fn model_records(data: &[u8]) {
    let mut input = Input::new(data);
    let kind = input.byte() % 11;
    let bytes = input.rest();
    match kind {
        0 => {
            round_trip::<BucketRecord>(bytes);
        }
        1 => {
            round_trip::<ObjectRecord>(bytes);
        }
        2 => {
            round_trip::<MultipartUploadRecord>(bytes);
        }
        3 => {
            round_trip::<PartRecord>(bytes);
        }
        4 => {
            round_trip::<ShardletRecord>(bytes);
        }
        5 => {
            round_trip::<NodeRecord>(bytes);
        }
        6 => {
            round_trip::<LeaseRecord>(bytes);
        }
        7 => {
            round_trip::<LeaseFence>(bytes);
        }
        8 => {
            round_trip::<IntentRecord>(bytes);
        }
        9 => {
            if let Some(credential) = round_trip::<CredentialRecord>(bytes) {
                secret_never_shown(&credential);
            }
        }
        _ => index_key(bytes),
    }
}

fn round_trip<R: Record + PartialEq + Debug>(bytes: &[u8]) -> Option<R> {
    let record = match decode::<R>(bytes) {
        Ok(record) => record,
        Err(DecodeError::Empty { .. }) => {
            assert!(bytes.is_empty());
            return None;
        }
        Err(DecodeError::UnsupportedVersion { found, .. }) => {
            assert!(found == 0 || found > R::FORMAT_VERSION);
            return None;
        }
        Err(DecodeError::Malformed { .. }) => return None,
    };
    assert!((1..=R::FORMAT_VERSION).contains(&bytes[0]));
    let written = encode(&record);
    assert_eq!(
        written[0],
        R::FORMAT_VERSION,
        "written in the newest format"
    );
    let reread: R = decode(&written).unwrap_or_else(|error| {
        panic!(
            "an encoded {} does not decode: {error}: {}",
            R::KIND,
            String::from_utf8_lossy(&written)
        )
    });
    assert_eq!(reread, record);
    assert_eq!(encode(&reread), written, "encoding is stable");
    Some(record)
}

fn secret_never_shown(credential: &CredentialRecord) {
    let secret = &credential.secret_key.0;
    let mut without = credential.clone();
    without.secret_key = SecretKey(String::new());
    // Only meaningful when nothing else in the record spells the secret.
    if secret.is_empty() || format!("{without:?}").contains(secret.as_str()) {
        return;
    }
    assert!(
        !format!("{credential:?}").contains(secret.as_str()),
        "Debug shows a secret key"
    );
}

/// `x/nf/{node}/{fragment}`: what parses is a key that ends with the fragment's text,
/// and the key written for any node and that fragment parses to the same fragment.
fn index_key(bytes: &[u8]) {
    let Some(fragment) = keys::fragment_of_index_key(bytes) else {
        return;
    };
    let text = fragment.to_string();
    assert!(bytes.starts_with(keys::NODE_FRAGMENT_INDEX_PREFIX.as_bytes()));
    assert!(bytes.ends_with(format!("/{text}").as_bytes()));
    for node in [NodeId(0), NodeId(u32::MAX)] {
        let key = keys::node_fragment(node, fragment);
        assert_eq!(keys::fragment_of_index_key(&key), Some(fragment));
        assert!(key.starts_with(&keys::fragments_of_node(node)));
    }
}
