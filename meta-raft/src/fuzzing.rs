//! The properties the fuzz target of the metadata service checks (see
//! `shardlet_core::fuzzing` for how checks, targets and the corpus replay fit together):
//! every JSON body a member accepts or a client reads, the stored entry format, and a
//! received snapshot.

use std::collections::BTreeMap;

use openraft::raft::{AppendEntriesRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shardlet_core::fuzzing::{Input, Target};

use crate::command::{
    check_conditions, Batch, BatchInvalid, BatchOutcome, Condition, Operation, ScanPage,
    VersionedValue, BATCH_ITEMS_MAX, KEY_BYTES_MAX,
};
use crate::snapshot::SnapshotPayload;
use crate::snapshot_file::{SnapshotReader, SnapshotWriter};
use crate::snapshot_receive::{decode_chunk, encode_chunk};
use crate::types::{MemberId, TypeConfig};
use crate::wire::{
    AddLearnerRequest, ChangeMembershipRequest, ClusterStatus, DeleteRequest, ErrorBody,
    GetRequest, GetResponse, PutRequest, ScanRequest,
};

/// The fuzz targets whose checks live here.
pub const TARGETS: &[Target] = &[("meta_wire", meta_wire)];

/// The first byte picks what the rest is:
/// - 0–6: a request body of `/kv/get`, `/kv/scan`, `/kv/put`, `/kv/delete`,
///   `/kv/batch`, `/cluster/add-learner`, `/cluster/change-membership`;
/// - 7–9: raft's append-entries and vote bodies, and a snapshot chunk's binary body;
/// - 10–14: what a client reads back: a get answer, a scan page, a batch outcome, an
///   error body, a cluster status;
/// - 15: a stored entry (`VersionedValue`'s binary form);
/// - 16: a received snapshot: the format-2 file a member installs, and the format-1
///   payload it converts at start-up.
///
/// Every body that parses writes back to JSON that parses and writes to the same bytes.
/// A batch (also a put or delete turned into one) passes `validate` exactly when it
/// respects every documented limit, and then applies with compare-and-set semantics.
pub fn meta_wire(data: &[u8]) {
    let mut input = Input::new(data);
    let kind = input.byte() % 17;
    // Small enough that the fuzzer reaches the value limit with short inputs.
    let value_bytes_max = input.number(2) as usize;
    let body = input.rest();
    match kind {
        0 => {
            round_trip::<GetRequest>(body);
        }
        1 => {
            round_trip::<ScanRequest>(body);
        }
        2 => {
            if let Some(put) = round_trip::<PutRequest>(body) {
                batch_limits(&Batch::of_put(put.key, put.value), value_bytes_max);
            }
        }
        3 => {
            if let Some(delete) = round_trip::<DeleteRequest>(body) {
                batch_limits(&Batch::of_delete(delete.key), value_bytes_max);
            }
        }
        4 => {
            if let Some(batch) = round_trip::<Batch>(body) {
                batch_limits(&batch, value_bytes_max);
            }
        }
        5 => {
            round_trip::<AddLearnerRequest>(body);
        }
        6 => {
            round_trip::<ChangeMembershipRequest>(body);
        }
        7 => {
            round_trip::<AppendEntriesRequest<TypeConfig>>(body);
        }
        8 => {
            round_trip::<VoteRequest<MemberId>>(body);
        }
        9 => snapshot_chunk(body),
        10 => {
            round_trip::<GetResponse>(body);
        }
        11 => {
            round_trip::<ScanPage>(body);
        }
        12 => {
            round_trip::<BatchOutcome>(body);
        }
        13 => {
            round_trip::<ErrorBody>(body);
        }
        14 => {
            round_trip::<ClusterStatus>(body);
        }
        15 => stored_entry(body),
        _ => snapshot(body),
    }
}

/// `T` parsed from `bytes`, after checking it writes back to JSON that parses to a `T`
/// that writes the same JSON (the wire types need no `PartialEq` for this).
fn round_trip<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(bytes).ok()?;
    let written = serde_json::to_vec(&value).unwrap_or_else(|error| panic!("{error}"));
    let reread: T = serde_json::from_slice(&written).unwrap_or_else(|error| {
        panic!(
            "written JSON does not parse: {error}: {}",
            String::from_utf8_lossy(&written)
        )
    });
    let rewritten = serde_json::to_vec(&reread).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(rewritten, written, "JSON round trip changed the body");
    Some(value)
}

/// `validate` accepts exactly the batches inside the limits, and refuses the others
/// naming a limit they break; an accepted batch's conditions, checked against a store
/// built from the conditions themselves, pass or fail as compare-and-set says.
fn batch_limits(batch: &Batch, value_bytes_max: usize) {
    let keys = batch
        .operations
        .iter()
        .map(Operation::key)
        .chain(batch.conditions.iter().map(Condition::key));
    let keys_ok = keys
        .clone()
        .all(|key| !key.is_empty() && key.len() <= KEY_BYTES_MAX);
    let values = batch
        .operations
        .iter()
        .filter_map(|operation| match operation {
            Operation::Put { value, .. } => Some(value),
            Operation::Delete { .. } => None,
        })
        .chain(
            batch
                .conditions
                .iter()
                .filter_map(|condition| match condition {
                    Condition::ValueEquals { value, .. } => value.as_ref(),
                    Condition::VersionEquals { .. } => None,
                }),
        );
    let values_ok = values.clone().all(|value| value.len() <= value_bytes_max);
    let within =
        !batch.operations.is_empty() && batch.len() <= BATCH_ITEMS_MAX && keys_ok && values_ok;
    match batch.validate(value_bytes_max) {
        Ok(()) => assert!(within, "validate accepted a batch outside the limits"),
        Err(error) => {
            assert!(
                !within,
                "validate refused a batch inside the limits: {error}"
            );
            match error {
                BatchInvalid::NoOperations => assert!(batch.operations.is_empty()),
                BatchInvalid::TooManyItems { items, limit } => {
                    assert!(items == batch.len() && items > limit)
                }
                BatchInvalid::EmptyKey => assert!(keys.clone().any(|key| key.is_empty())),
                BatchInvalid::KeyTooLong { bytes, limit } => {
                    assert!(bytes > limit && keys.clone().any(|key| key.len() == bytes))
                }
                BatchInvalid::ValueTooLarge { bytes, limit } => {
                    assert!(bytes > limit && values.clone().any(|value| value.len() == bytes))
                }
            }
            return;
        }
    }
    // The store holds, for each condition's key, the entry its first condition
    // describes: later conditions on the same key may hold or not. `check_conditions`
    // passes exactly when every condition holds, and otherwise names the first that
    // does not, with the version it found.
    let mut store: BTreeMap<Vec<u8>, VersionedValue> = BTreeMap::new();
    for condition in &batch.conditions {
        match condition {
            Condition::VersionEquals { key, version } if *version > 0 => {
                let entry = VersionedValue {
                    version: *version,
                    value: key.clone(),
                };
                store.entry(key.0.clone()).or_insert(entry);
            }
            Condition::ValueEquals {
                key,
                value: Some(value),
            } => {
                let entry = VersionedValue {
                    version: 1,
                    value: value.clone(),
                };
                store.entry(key.0.clone()).or_insert(entry);
            }
            _ => {}
        }
    }
    let all_hold = batch
        .conditions
        .iter()
        .all(|condition| condition.holds(store.get(condition.key().as_slice())));
    let outcome = check_conditions(batch, |key| store.get(key).cloned());
    match outcome {
        Ok(()) => assert!(all_hold),
        Err(BatchOutcome::ConditionFailed {
            condition_index,
            key,
            actual_version,
        }) => {
            assert!(!all_hold);
            let failed = &batch.conditions[condition_index];
            assert_eq!(failed.key(), &key);
            assert!(!failed.holds(store.get(key.as_slice())));
            assert!(batch.conditions[..condition_index]
                .iter()
                .all(|condition| condition.holds(store.get(condition.key().as_slice()))));
            assert_eq!(
                actual_version,
                store.get(key.as_slice()).map_or(0, |entry| entry.version)
            );
        }
        Err(other) => panic!("check_conditions answered {other:?}"),
    }
}

/// The binary form of a stored entry: decodes exactly when it holds a version, and
/// encodes back to the same bytes.
fn stored_entry(bytes: &[u8]) {
    match VersionedValue::decode(bytes) {
        Some(entry) => {
            assert!(bytes.len() >= 8);
            assert_eq!(entry.encode(), bytes);
        }
        None => assert!(bytes.len() < 8),
    }
}

/// A received snapshot: what installs holds only entries a batch could have written
/// (keys inside the limits, strictly ascending, versions in `1..=revision`), and writes
/// back to a payload that decodes to the same.
fn snapshot(bytes: &[u8]) {
    snapshot_file(bytes);
    let Ok(payload) = SnapshotPayload::decode(bytes) else {
        return;
    };
    for pair in payload.entries.windows(2) {
        assert!(pair[0].0 < pair[1].0, "keys not strictly ascending");
    }
    for (key, value) in &payload.entries {
        assert!(
            !key.is_empty() && key.len() <= KEY_BYTES_MAX,
            "key of {} bytes",
            key.len()
        );
        let entry = VersionedValue::decode(value.as_slice())
            .unwrap_or_else(|| panic!("an installed entry without a version"));
        assert!(
            (1..=payload.revision).contains(&entry.version),
            "version {} with revision {}",
            entry.version,
            payload.revision
        );
    }
    let written = serde_json::to_vec(&payload).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(SnapshotPayload::decode(&written), Ok(payload));
}

/// A format-2 snapshot file: what the reader accepts holds only entries a batch could
/// have written, in ascending order, and writing them again gives the same bytes.
fn snapshot_file(bytes: &[u8]) {
    let Ok(mut reader) = SnapshotReader::open(bytes) else {
        return;
    };
    let revision = reader.revision();
    let mut entries = Vec::new();
    loop {
        match reader.next_block() {
            Ok(Some(block)) => entries.push(block),
            Ok(None) => break,
            Err(_) => return,
        }
    }
    let mut writer =
        SnapshotWriter::new(Vec::new(), revision).unwrap_or_else(|error| panic!("{error}"));
    let mut previous: Option<&[u8]> = None;
    for (key, entry) in entries.iter().flatten() {
        assert!(
            previous.is_none_or(|previous| previous < key.as_slice()),
            "keys not ascending"
        );
        let version = VersionedValue::decode(entry)
            .unwrap_or_else(|| panic!("an installed entry without a version"))
            .version;
        assert!(
            (1..=revision).contains(&version),
            "version {version} with revision {revision}"
        );
        previous = Some(key);
        writer
            .push(key, entry)
            .unwrap_or_else(|error| panic!("{error}"));
    }
    let (written, _, _) = writer.finish().unwrap_or_else(|error| panic!("{error}"));
    // Blocks close at the same sizes, so the same entries give the same file — unless
    // the input cut its blocks elsewhere, which the writer never does: compare entries.
    let mut reread =
        SnapshotReader::open(written.as_slice()).unwrap_or_else(|error| panic!("{error}"));
    let mut again = Vec::new();
    while let Some(block) = reread
        .next_block()
        .unwrap_or_else(|error| panic!("{error}"))
    {
        again.extend(block);
    }
    assert_eq!(again, entries.into_iter().flatten().collect::<Vec<_>>());
}

/// A snapshot chunk's body (`snapshot_receive::decode_chunk`): what decodes encodes back
/// to a body that decodes to the same chunk.
fn snapshot_chunk(bytes: &[u8]) {
    let Ok(chunk) = decode_chunk(bytes) else {
        return;
    };
    let written = encode_chunk(&chunk).unwrap_or_else(|error| panic!("{error}"));
    let again = decode_chunk(&written).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        (again.vote, again.offset, again.done, &again.data),
        (chunk.vote, chunk.offset, chunk.done, &chunk.data)
    );
    assert_eq!(again.meta, chunk.meta);
}
