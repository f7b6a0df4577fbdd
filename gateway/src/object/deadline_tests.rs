//! The upload deadline on the write path and at the commit, against in-memory stores:
//! an upload older than the deadline is refused and leaves nothing behind.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use shardlet_core::ObjectId;
use shardlet_model::schema::{keys, IntentRecord, IntentState};

use crate::object::commit::{CommitCondition, CommitError};
use crate::object::test_fixture::*;
use crate::object::upload_deadline::DeadlineError;
use crate::object::write_path::{UploadBody, WriteError};

async fn intent_state(fixture: &Fixture, id: ObjectId) -> Option<IntentState> {
    fixture
        .catalog
        .read::<IntentRecord>(&keys::intent(id))
        .await
        .unwrap()
        .map(|stored| stored.record.state)
}

/// What a collector leaves once it has collected `id`: no intent, no fragment.
async fn assert_nothing_left(fixture: &Fixture, id: ObjectId) {
    fixture.collector.collect(id).await.unwrap();
    assert_eq!(intent_state(fixture, id).await, None, "intent collected");
    assert_eq!(fixture.fragments.count(), 0, "every fragment deleted");
    assert!(
        fixture.catalog.object("b", "k").await.unwrap().is_none(),
        "nothing visible"
    );
}

#[tokio::test]
async fn an_upload_older_than_the_deadline_is_refused_at_commit_and_leaves_nothing_behind() {
    let fixture = with_bucket(Duration::from_secs(3600)).await;
    let id = ObjectId::random();
    let write = write_medium(&fixture, id, 200 * KIB, 8192).await;
    assert!(fixture.fragments.count() > 0);
    // The deadline passes between the last fragment and the commit.
    set_deadline(&fixture, 0);
    let mut object = record("b", "k", id, medium());
    object.size_bytes = write.written().size_bytes;
    let error = fixture
        .commit
        .put_object(write, object, CommitCondition::Always, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            CommitError::Deadline(DeadlineError::Exceeded {
                deadline_seconds: 0
            })
        ),
        "{error}"
    );
    assert_eq!(
        intent_state(&fixture, id).await,
        Some(IntentState::Garbage),
        "given up before the client hears"
    );
    assert_nothing_left(&fixture, id).await;
    assert_eq!(
        fixture
            .metrics
            .upload_deadline_refusals_total
            .with_label_values(&["commit"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_trickling_body_is_refused_at_the_deadline_and_leaves_nothing_behind() {
    let fixture = with_bucket(Duration::from_secs(1)).await;
    // 8 KiB every 50 ms: 64 KiB shardlets fill, and their fragments are written, well
    // before the one-second deadline; the body itself would take 10 s.
    let body = futures::stream::unfold(0usize, |sent| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        (sent < 200).then(|| {
            (
                Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 8 * KIB])),
                sent + 1,
            )
        })
    })
    .boxed();
    let id = ObjectId::random();
    let error = fixture
        .writer
        .write(
            "b",
            "k",
            id,
            medium(),
            UploadBody {
                stream: body,
                declared_length: Some(200 * 8 * KIB as u64),
                max_length: 1 << 30,
            },
            &mut |_: &[u8]| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            WriteError::Deadline(DeadlineError::Exceeded {
                deadline_seconds: 1
            })
        ),
        "{error}"
    );
    assert!(
        fixture.metrics.shardlets_written_total.get() > 0,
        "fragments were written before the deadline"
    );
    assert_eq!(intent_state(&fixture, id).await, Some(IntentState::Garbage));
    assert_nothing_left(&fixture, id).await;
}
