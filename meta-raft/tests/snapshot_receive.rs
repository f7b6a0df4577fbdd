//! A member receiving a snapshot in chunks (`snapshot_receive`): a corrupted one is
//! refused before raft sees it, leaving the member's state and raft untouched, and the
//! same snapshot intact then installs.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::InstallSnapshotRequest;
use openraft::{
    BasicNode, CommittedLeaderId, LogId, Membership, SnapshotMeta, StoredMembership, Vote,
};
use shardlet_auth::{ClusterSecret, KeyName};
use shardlet_meta::snapshot::SnapshotInvalid;
use shardlet_meta::snapshot_file::SnapshotWriter;
use shardlet_meta::snapshot_receive::Refused;
use shardlet_meta::{Blob, MetaConfig, MetaNode, TypeConfig, VersionedValue};

const ENTRIES: u64 = 5_000;
const CHUNK_BYTES: usize = 256 * 1024;

fn key(index: u64) -> Vec<u8> {
    format!("k/{index:08}").into_bytes()
}

/// A snapshot file of `ENTRIES` entries of ~300 bytes (several blocks).
fn snapshot_bytes() -> Vec<u8> {
    let mut writer = SnapshotWriter::new(Vec::new(), ENTRIES).unwrap();
    for index in 0..ENTRIES {
        let entry = VersionedValue {
            version: index + 1,
            value: Blob(vec![b'v'; 300]),
        };
        writer.push(&key(index), &entry.encode()).unwrap();
    }
    writer.finish().unwrap().0
}

fn meta(snapshot_id: &str) -> SnapshotMeta<u64, BasicNode> {
    let leader = CommittedLeaderId::new(1, 2);
    let nodes = BTreeMap::from([
        (1, BasicNode::new("127.0.0.1:1")),
        (2, BasicNode::new("127.0.0.1:2")),
    ]);
    let membership = Membership::new(vec![BTreeSet::from([1, 2])], nodes);
    SnapshotMeta {
        last_log_id: Some(LogId::new(leader, 50)),
        last_membership: StoredMembership::new(Some(LogId::new(leader, 1)), membership),
        snapshot_id: snapshot_id.to_string(),
    }
}

fn chunks(snapshot_id: &str, bytes: &[u8]) -> Vec<InstallSnapshotRequest<TypeConfig>> {
    let count = bytes.len().div_ceil(CHUNK_BYTES);
    bytes
        .chunks(CHUNK_BYTES)
        .enumerate()
        .map(|(index, data)| InstallSnapshotRequest {
            vote: Vote::new_committed(1, 2),
            meta: meta(snapshot_id),
            offset: (index * CHUNK_BYTES) as u64,
            data: data.to_vec(),
            done: index + 1 == count,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_snapshot_is_refused_and_the_intact_one_then_installs() {
    let directory = tempfile::tempdir().unwrap();
    let root = ClusterSecret::new("snapshot-receive-test-secret").unwrap();
    let config = MetaConfig::new(
        1,
        "127.0.0.1:0".parse().unwrap(),
        directory.path().to_path_buf(),
        root.derive(KeyName::Meta),
    );
    // Not bootstrapped: like a learner being added, it takes the leader's snapshot.
    let running = MetaNode::start(config).await.unwrap();
    let node = running.node.clone();
    let intact = snapshot_bytes();
    assert!(intact.len() > 4 * CHUNK_BYTES, "several chunks");

    // One flipped byte in a value in the middle of the file.
    let mut corrupted = intact.clone();
    corrupted[intact.len() / 2] ^= 0x01;
    let requests = chunks("corrupted", &corrupted);
    let last = requests.len() - 1;
    for (index, request) in requests.into_iter().enumerate() {
        let answer = node.snapshot_receiver.receive(&node.raft, request).await;
        if index < last {
            assert!(matches!(answer, Ok(Ok(_))), "chunk {index}: {answer:?}");
        } else {
            match answer {
                Err(Refused::Invalid(SnapshotInvalid::Block { reason, .. })) => {
                    assert!(reason.contains("checksum"), "{reason}")
                }
                other => panic!("the corrupted snapshot was not refused: {other:?}"),
            }
        }
    }
    assert_eq!(node.reader.get(&key(0)).unwrap(), None, "state untouched");
    assert!(
        !directory.path().join("snapshots/received.tmp").exists(),
        "the refused file is removed"
    );

    // A chunk that skips ahead is answered with the offset to resume from.
    let mut skipping = chunks("skipping", &intact);
    let answer = node
        .snapshot_receiver
        .receive(&node.raft, skipping.remove(1))
        .await;
    assert!(
        matches!(
            answer,
            Ok(Err(RaftError::APIError(
                InstallSnapshotError::SnapshotMismatch(_)
            )))
        ),
        "{answer:?}"
    );

    // Raft still runs: the intact snapshot installs.
    for request in chunks("intact", &intact) {
        let answer = node.snapshot_receiver.receive(&node.raft, request).await;
        assert!(matches!(answer, Ok(Ok(_))), "{answer:?}");
    }
    let entry = node.reader.get(&key(ENTRIES - 1)).unwrap().unwrap();
    assert_eq!(entry.version, ENTRIES);
    node.raft
        .wait(Some(std::time::Duration::from_secs(30)))
        .metrics(
            |metrics| metrics.snapshot.map(|log_id| log_id.index) == Some(50),
            "raft reports the installed snapshot",
        )
        .await
        .unwrap();
    let metrics = node.metrics.render();
    let refused = metrics
        .lines()
        .find(|line| {
            line.starts_with("shardlet_meta_snapshots_refused_total")
                && line.contains("reason=\"corrupt\"")
        })
        .unwrap();
    assert!(refused.ends_with(" 1"), "{refused}");
    running.shutdown().await.unwrap();
}
