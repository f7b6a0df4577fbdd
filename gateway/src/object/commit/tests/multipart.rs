//! Multipart commits: parts, completion (and the race it closes), abort.

use std::collections::BTreeMap;

use futures::FutureExt;

use shardlet_core::{ObjectId, RedundancyLevel};
use shardlet_model::schema::{
    keys, IntentRecord, IntentState, MultipartUploadRecord, PartRecord, StoredChecksums,
};
use shardlet_model::Stored;

use super::{object, write, writer_with_bucket, Fixture};
use crate::object::commit::{CommitError, CompleteError, Completion, Uncommitted};

async fn open_upload(gateway: &Fixture) -> Stored<MultipartUploadRecord> {
    let bucket = gateway.catalog.existing_bucket("b").await.unwrap();
    let record = MultipartUploadRecord {
        upload_id: "u1".into(),
        bucket: "b".into(),
        key: "k".into(),
        object_id: ObjectId::random(),
        content_type: "application/octet-stream".into(),
        user_metadata: Default::default(),
        redundancy: RedundancyLevel::Medium,
        initiated_unix_ms: 0,
        storage_class: None,
        closing: false,
    };
    gateway
        .commit
        .create_upload(bucket.version, &record)
        .await
        .unwrap();
    upload(gateway).await.unwrap()
}

async fn upload(gateway: &Fixture) -> Option<Stored<MultipartUploadRecord>> {
    gateway.catalog.upload("b", "k", "u1").await.unwrap()
}

async fn part_data(gateway: &Fixture, bytes: &[u8]) -> Uncommitted {
    write(gateway, "k", bytes).await
}

async fn put_part(
    gateway: &Fixture,
    upload: &Stored<MultipartUploadRecord>,
    number: u16,
    bytes: &[u8],
) -> Result<PartRecord, CommitError> {
    let write = part_data(gateway, bytes).await;
    gateway
        .commit
        .put_part(write, upload, number, StoredChecksums::default())
        .await
}

/// Publishes every stored part, in order.
fn all_of(stored: &BTreeMap<u16, PartRecord>) -> Completion {
    let mut record = object("k", ObjectId::random(), 0);
    record.shardlets = stored
        .values()
        .flat_map(|part| part.shardlets.iter().cloned())
        .collect();
    record.size_bytes = stored.values().map(|part| part.size_bytes).sum();
    Completion {
        record,
        chosen: stored.keys().copied().collect(),
    }
}

async fn intent_state(gateway: &Fixture, id: ObjectId) -> Option<IntentState> {
    gateway
        .catalog
        .read::<IntentRecord>(&keys::intent(id))
        .await
        .unwrap()
        .map(|stored| stored.record.state)
}

/// Whether any garbage intent names `id` among what it collects.
async fn is_garbage(gateway: &Fixture, id: ObjectId) -> bool {
    let (page, _) = gateway
        .catalog
        .scan::<IntentRecord>(keys::INTENT_PREFIX.as_bytes(), None, 1000)
        .await
        .unwrap();
    page.iter().any(|(_, stored)| {
        stored.record.state == IntentState::Garbage && stored.record.collected_ids().contains(&id)
    })
}

#[tokio::test]
async fn a_part_replaced_during_completion_is_refused_and_the_object_keeps_live_parts() {
    let (_, gateway) = writer_with_bucket("b").await;
    let upload_before = open_upload(&gateway).await;
    let first = put_part(&gateway, &upload_before, 1, b"first version")
        .await
        .unwrap();
    // A second upload of part 1 has written its data and commits while the
    // completion is between reading the parts and its own commit.
    let replacement = part_data(&gateway, b"second version").await;
    let replacement_id = replacement.written().object_id;
    let mut raced = None;
    let committed = gateway
        .commit
        .complete_upload(upload_before.clone(), |stored| {
            raced = Some(futures::executor::block_on(gateway.commit.put_part(
                replacement,
                &upload_before,
                1,
                StoredChecksums::default(),
            )));
            Ok::<_, ()>(all_of(stored))
        })
        .await
        .unwrap();
    assert!(
        matches!(raced, Some(Err(CommitError::UploadClosing))),
        "{raced:?}"
    );
    // The object publishes the part it read, whose data nothing turned into garbage;
    // the refused replacement is the garbage.
    assert_eq!(committed.shardlets, first.shardlets);
    assert!(!is_garbage(&gateway, first.part_object_id).await);
    assert_eq!(
        intent_state(&gateway, replacement_id).await,
        Some(IntentState::Garbage)
    );
    let visible = gateway.catalog.object("b", "k").await.unwrap().unwrap();
    assert_eq!(visible.record.shardlets, first.shardlets);
    assert!(upload(&gateway).await.is_none());
}

#[tokio::test]
async fn a_refused_completion_takes_its_mark_back_and_parts_can_follow() {
    let (_, gateway) = writer_with_bucket("b").await;
    let upload_before = open_upload(&gateway).await;
    put_part(&gateway, &upload_before, 1, b"one").await.unwrap();
    let refused = gateway
        .commit
        .complete_upload(upload_before.clone(), |_| Err("InvalidPart"))
        .await;
    assert!(matches!(
        refused,
        Err(CompleteError::Refused("InvalidPart"))
    ));
    let after = upload(&gateway).await.unwrap();
    assert!(!after.record.closing);
    // A part written against the version read before the refused completion still
    // commits: its commit re-reads an upload that is open again.
    put_part(&gateway, &upload_before, 2, b"two").await.unwrap();
    assert!(gateway.catalog.object("b", "k").await.unwrap().is_none());
}

#[tokio::test]
async fn completion_publishes_the_chosen_parts_and_unreferences_the_others() {
    let (_, gateway) = writer_with_bucket("b").await;
    let upload = open_upload(&gateway).await;
    let one = put_part(&gateway, &upload, 1, b"one").await.unwrap();
    let two = put_part(&gateway, &upload, 2, b"two").await.unwrap();
    let replaced = put_part(&gateway, &upload, 3, b"three").await.unwrap();
    let three = put_part(&gateway, &upload, 3, b"three again")
        .await
        .unwrap();
    assert!(is_garbage(&gateway, replaced.part_object_id).await);
    let committed = gateway
        .commit
        .complete_upload(upload, |stored| {
            let mut completion = all_of(stored);
            // Part 2 is left out.
            completion.chosen = vec![1, 3];
            completion.record.shardlets = [&stored[&1], &stored[&3]]
                .iter()
                .flat_map(|part| part.shardlets.iter().cloned())
                .collect();
            Ok::<_, ()>(completion)
        })
        .await
        .unwrap();
    let expected: Vec<_> = one
        .shardlets
        .iter()
        .chain(&three.shardlets)
        .cloned()
        .collect();
    assert_eq!(committed.shardlets, expected);
    assert!(is_garbage(&gateway, two.part_object_id).await);
    assert!(!is_garbage(&gateway, one.part_object_id).await);
    assert!(!is_garbage(&gateway, three.part_object_id).await);
    // Part records are deleted once the object is visible.
    let (parts, _) = gateway.catalog.parts("u1", 0, 100).await.unwrap();
    assert!(parts.is_empty());
}

#[tokio::test]
async fn abort_unreferences_every_part_and_later_parts_find_no_upload() {
    let (_, gateway) = writer_with_bucket("b").await;
    let upload_before = open_upload(&gateway).await;
    let one = put_part(&gateway, &upload_before, 1, b"one").await.unwrap();
    let two = put_part(&gateway, &upload_before, 2, b"two").await.unwrap();
    gateway
        .commit
        .abort_upload(upload_before.clone())
        .await
        .unwrap();
    assert!(upload(&gateway).await.is_none());
    assert!(is_garbage(&gateway, one.part_object_id).await);
    assert!(is_garbage(&gateway, two.part_object_id).await);
    let late = put_part(&gateway, &upload_before, 3, b"late").await;
    assert!(matches!(late, Err(CommitError::NoSuchUpload)), "{late:?}");
    assert!(matches!(
        gateway.commit.abort_upload(upload_before).await,
        Err(CommitError::NoSuchUpload)
    ));
}

#[tokio::test]
async fn an_upload_marked_closing_by_a_crashed_completion_still_completes_or_aborts() {
    let (_, gateway) = writer_with_bucket("b").await;
    let upload_before = open_upload(&gateway).await;
    put_part(&gateway, &upload_before, 1, b"one").await.unwrap();
    // A completion that crashed after its mark: the mark stays.
    let crashed = gateway
        .commit
        .complete_upload(upload_before.clone(), |_| -> Result<Completion, ()> {
            panic!("the gateway crashes here")
        });
    let outcome = std::panic::AssertUnwindSafe(crashed).catch_unwind().await;
    assert!(outcome.is_err(), "the completion must have panicked");
    let marked = upload(&gateway).await.unwrap();
    assert!(marked.record.closing);
    assert!(matches!(
        put_part(&gateway, &marked, 2, b"two").await,
        Err(CommitError::UploadClosing)
    ));
    gateway
        .commit
        .complete_upload(marked, |stored| Ok::<_, ()>(all_of(stored)))
        .await
        .unwrap();
    assert!(gateway.catalog.object("b", "k").await.unwrap().is_some());
}

#[tokio::test]
async fn a_part_older_than_the_upload_deadline_is_refused_and_given_up() {
    let (_, gateway) = writer_with_bucket("b").await;
    let upload = open_upload(&gateway).await;
    let write = part_data(&gateway, b"a part that took too long").await;
    let part_id = write.written().object_id;
    // The deadline passed while the part streamed (an operator lowered it to zero).
    gateway
        .commit
        .collector()
        .settings()
        .set(shardlet_model::schema::ClusterSettings {
            upload_deadline_seconds: 0,
        });
    let error = gateway
        .commit
        .put_part(write, &upload, 1, StoredChecksums::default())
        .await
        .unwrap_err();
    assert!(matches!(error, CommitError::Deadline(_)), "{error}");
    assert!(
        gateway.catalog.part("u1", 1).await.unwrap().is_none(),
        "no part record"
    );
    assert_eq!(
        intent_state(&gateway, part_id).await,
        Some(IntentState::Garbage),
        "the part's data is handed to the collector before the client hears"
    );
}
