//! One member, as on a laptop: what it acknowledged survives kill -9, and
//! compare-and-set conflicts are reported and never applied.

use std::collections::BTreeMap;
use std::time::Duration;

use shardlet_meta::command::Condition;
use shardlet_meta::{Batch, BatchOutcome, ReadConsistency};

use shardlet_testkit::wait_until;

use super::load::replica_contents;
use super::members::{client, start_member, status, Member};

async fn leading(member: &Member) {
    wait_until(
        Duration::from_secs(30),
        "the single member leads",
        || async {
            status(&member.address)
                .await?
                .leader_id
                .filter(|id| *id == member.member_id)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_and_restart() {
    let root = tempfile::tempdir().unwrap();
    let mut member = start_member(1, root.path(), true, &[]).await;
    leading(&member).await;
    let client = client(std::slice::from_ref(&member.address));
    let mut expected = BTreeMap::new();
    for index in 0..200 {
        let key = format!("load/{index:04}");
        let value = format!("value-{index}");
        client.put(key.as_str(), value.as_str()).await.unwrap();
        expected.insert(key, value);
    }
    for index in 0..20 {
        let key = format!("load/{index:04}");
        client.delete(key.as_str()).await.unwrap();
        expected.remove(&key);
    }
    let versions_before = client
        .scan("load/", None, 1_000, ReadConsistency::Linearizable)
        .await
        .unwrap();

    member.kill();
    member.restart().await;
    leading(&member).await;

    let client = super::members::client(std::slice::from_ref(&member.address));
    assert_eq!(
        replica_contents(&member.address, "load/").await.unwrap(),
        expected
    );
    let versions_after = client
        .scan("load/", None, 1_000, ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(
        versions_after.entries, versions_before.entries,
        "versions survive restart"
    );
    // And the member keeps accepting writes, with versions that keep growing.
    let newest = versions_before
        .entries
        .iter()
        .map(|(_, entry)| entry.version)
        .max()
        .unwrap();
    assert!(client.put("after-restart", "yes").await.unwrap() > newest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_set_conflicts_are_reported_and_never_applied() {
    let root = tempfile::tempdir().unwrap();
    let member = start_member(1, root.path(), true, &[]).await;
    leading(&member).await;
    let client = client(std::slice::from_ref(&member.address));
    let version = client.put("cas", "one").await.unwrap();

    let stale = Batch::of_put("cas", "two").when(Condition::VersionEquals {
        key: "cas".into(),
        version: version + 100,
    });
    let mut stale = stale;
    stale.operations.push(shardlet_meta::Operation::Put {
        key: "side-effect".into(),
        value: "must not appear".into(),
    });
    assert_eq!(
        client.batch(stale).await.unwrap(),
        BatchOutcome::ConditionFailed {
            condition_index: 0,
            key: "cas".into(),
            actual_version: version
        }
    );
    let third_fails = Batch::of_put("cas", "three")
        .when(Condition::VersionEquals {
            key: "cas".into(),
            version,
        })
        .when(Condition::ValueEquals {
            key: "absent".into(),
            value: None,
        })
        .when(Condition::ValueEquals {
            key: "cas".into(),
            value: Some("wrong".into()),
        });
    assert!(matches!(
        client.batch(third_fails).await.unwrap(),
        BatchOutcome::ConditionFailed {
            condition_index: 2,
            ..
        }
    ));
    let current = client
        .get("cas", ReadConsistency::Linearizable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (current.version, current.value.0.as_slice()),
        (version, &b"one"[..])
    );
    assert_eq!(
        client
            .get("side-effect", ReadConsistency::Linearizable)
            .await
            .unwrap(),
        None
    );

    let guarded = Batch::of_put("cas", "two").when(Condition::VersionEquals {
        key: "cas".into(),
        version,
    });
    let BatchOutcome::Applied { version: newer } = client.batch(guarded.clone()).await.unwrap()
    else {
        panic!("a compare-and-set on the current version must apply");
    };
    assert!(newer > version);
    // The same guarded batch again: the version moved, so it conflicts.
    assert_eq!(
        client.batch(guarded).await.unwrap(),
        BatchOutcome::ConditionFailed {
            condition_index: 0,
            key: "cas".into(),
            actual_version: newer
        }
    );
    // "Create only if absent" with version 0.
    let create = Batch::of_put("fresh", "1").when(Condition::VersionEquals {
        key: "fresh".into(),
        version: 0,
    });
    assert!(matches!(
        client.batch(create.clone()).await.unwrap(),
        BatchOutcome::Applied { .. }
    ));
    assert!(matches!(
        client.batch(create).await.unwrap(),
        BatchOutcome::ConditionFailed { .. }
    ));
}
