//! Object commits and the uncommitted-write guard.

use std::time::Duration;

use shardlet_core::ObjectId;
use shardlet_model::schema::{keys, IntentRecord, IntentState};

use super::{object, write, writer_with_bucket, Fixture};
use crate::object::commit::{CommitCondition, CommitError};

async fn intent(gateway: &Fixture, id: ObjectId) -> Option<IntentRecord> {
    gateway
        .catalog
        .read::<IntentRecord>(&keys::intent(id))
        .await
        .unwrap()
        .map(|stored| stored.record)
}

#[tokio::test]
async fn an_uncommitted_write_that_is_dropped_gives_its_upload_up() {
    let (_, gateway) = writer_with_bucket("b").await;
    let pending = write(&gateway, "k", b"hello").await;
    let id = pending.written().object_id;
    assert_eq!(
        intent(&gateway, id).await.unwrap().state,
        IntentState::Uploading
    );
    // An error path that forgot the write, a panic, a client that went away.
    drop(pending);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if intent(&gateway, id).await.map(|intent| intent.state) == Some(IntentState::Garbage) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dropped write's intent was never marked garbage"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(gateway.catalog.object("b", "k").await.unwrap().is_none());
}

#[tokio::test]
async fn a_commit_that_fails_has_given_its_write_up_before_it_answers() {
    let (_, gateway) = writer_with_bucket("b").await;
    let first = write(&gateway, "k", b"one").await;
    let record = object("k", first.written().object_id, 3);
    gateway
        .commit
        .put_object(first, record, CommitCondition::Always, None)
        .await
        .unwrap();
    let second = write(&gateway, "k", b"two").await;
    let id = second.written().object_id;
    let refused = gateway
        .commit
        .put_object(second, object("k", id, 3), CommitCondition::Absent, None)
        .await;
    assert!(matches!(refused, Err(CommitError::PreconditionFailed)));
    assert_eq!(
        intent(&gateway, id).await.unwrap().state,
        IntentState::Garbage
    );
}

#[tokio::test]
async fn an_overwrite_turns_the_replaced_version_into_garbage_in_the_same_batch() {
    let (_, gateway) = writer_with_bucket("b").await;
    let first = write(&gateway, "k", b"one").await;
    let first_id = first.written().object_id;
    gateway
        .commit
        .put_object(
            first,
            object("k", first_id, 3),
            CommitCondition::Always,
            None,
        )
        .await
        .unwrap();
    let second = write(&gateway, "k", b"two").await;
    let second_id = second.written().object_id;
    gateway
        .commit
        .put_object(
            second,
            object("k", second_id, 3),
            CommitCondition::EtagMatches("0".into()),
            None,
        )
        .await
        .unwrap();
    let visible = gateway.catalog.object("b", "k").await.unwrap().unwrap();
    assert_eq!(visible.record.id, second_id);
    let replaced = intent(&gateway, first_id).await.unwrap();
    assert_eq!(replaced.state, IntentState::Garbage);
    assert!(replaced.collected_ids().contains(&first_id));
    assert!(intent(&gateway, second_id).await.is_none());
}

#[tokio::test]
async fn a_delete_unreferences_the_object_and_an_absent_key_is_success() {
    let (_, gateway) = writer_with_bucket("b").await;
    let write = write(&gateway, "k", b"one").await;
    let id = write.written().object_id;
    gateway
        .commit
        .put_object(write, object("k", id, 3), CommitCondition::Always, None)
        .await
        .unwrap();
    gateway.commit.delete_object("b", "k").await.unwrap();
    assert!(gateway.catalog.object("b", "k").await.unwrap().is_none());
    assert_eq!(
        intent(&gateway, id).await.unwrap().state,
        IntentState::Garbage
    );
    gateway.commit.delete_object("b", "k").await.unwrap();
    gateway
        .commit
        .delete_object("b", "never-there")
        .await
        .unwrap();
}
