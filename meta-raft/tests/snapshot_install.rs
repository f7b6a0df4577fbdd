//! The start-up half of the install's crash argument (`snapshot_install`): a staged
//! install that a crash left pending is rolled forward when openraft had already purged
//! its log past the old state, and forgotten otherwise — never a half-switched state.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{BasicNode, CommittedLeaderId, LogId, Membership, SnapshotMeta, StoredMembership};
use shardlet_meta::log_store::LogStore;
use shardlet_meta::metrics::MetaMetrics;
use shardlet_meta::snapshot_file::SnapshotWriter;
use shardlet_meta::snapshot_install::prepare;
use shardlet_meta::snapshot_metrics::SnapshotMetrics;
use shardlet_meta::snapshot_store::{read_pending, SnapshotDirectory, RECEIVED_FILE};
use shardlet_meta::state_machine::StateMachine;
use shardlet_meta::storage::KvFamily;
use shardlet_meta::{Blob, VersionedValue};

const ENTRIES: u64 = 3_000;

fn meta() -> SnapshotMeta<u64, BasicNode> {
    let leader = CommittedLeaderId::new(1, 2);
    let nodes = BTreeMap::from([(1, BasicNode::new("127.0.0.1:1"))]);
    let membership = Membership::new(vec![BTreeSet::from([1])], nodes);
    SnapshotMeta {
        last_log_id: Some(LogId::new(leader, 50)),
        last_membership: StoredMembership::new(Some(LogId::new(leader, 1)), membership),
        snapshot_id: "staged".to_string(),
    }
}

/// A member's database with an install staged and recorded as pending (steps 1–4),
/// as a crash before the switch leaves it.
fn staged(directory: &std::path::Path) -> Arc<rocksdb::DB> {
    let db = shardlet_meta::storage::open(&directory.join("rocksdb")).unwrap();
    let snapshots = SnapshotDirectory::beside(db.path()).unwrap();
    let mut writer = SnapshotWriter::new(Vec::new(), ENTRIES).unwrap();
    for index in 0..ENTRIES {
        let entry = VersionedValue {
            version: index + 1,
            value: Blob(vec![b'v'; 200]),
        };
        writer
            .push(format!("k/{index:06}").as_bytes(), &entry.encode())
            .unwrap();
    }
    std::fs::write(snapshots.file(RECEIVED_FILE), writer.finish().unwrap().0).unwrap();
    let metrics = SnapshotMetrics::register(&prometheus::Registry::new()).unwrap();
    let serving = RwLock::new(KvFamily::Primary);
    prepare(&db, &serving, &snapshots, &meta(), None, &metrics).unwrap();
    assert!(read_pending(&db).unwrap().is_some());
    db
}

#[tokio::test]
async fn a_pending_install_is_rolled_forward_once_raft_purged_its_log() {
    let directory = tempfile::tempdir().unwrap();
    let db = staged(directory.path());
    let mut log = LogStore::new(db.clone(), Arc::new(MetaMetrics::new(1).unwrap()));
    log.purge(meta().last_log_id.unwrap()).await.unwrap();

    let mut machine =
        StateMachine::open(db.clone(), Arc::new(MetaMetrics::new(1).unwrap())).unwrap();
    let (applied, _) = machine.applied_state().await.unwrap();
    assert_eq!(applied, meta().last_log_id);
    let entry = machine.reader().get(b"k/002999").unwrap().unwrap();
    assert_eq!(entry.version, ENTRIES);
    assert!(read_pending(&db).unwrap().is_none());
    let current = machine.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.snapshot_id, "staged");
}

#[tokio::test]
async fn a_pending_install_raft_never_took_is_forgotten() {
    let directory = tempfile::tempdir().unwrap();
    let db = staged(directory.path());

    let mut machine =
        StateMachine::open(db.clone(), Arc::new(MetaMetrics::new(1).unwrap())).unwrap();
    let (applied, _) = machine.applied_state().await.unwrap();
    assert_eq!(applied, None, "the old (empty) state");
    assert_eq!(machine.reader().get(b"k/000000").unwrap(), None);
    assert!(read_pending(&db).unwrap().is_none());
    assert!(machine.get_current_snapshot().await.unwrap().is_none());
    let left: Vec<_> = std::fs::read_dir(directory.path().join("snapshots"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "the staged file is removed: {left:?}");
}
