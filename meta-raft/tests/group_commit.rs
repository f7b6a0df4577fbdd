//! Group commit, observed through the member's own metrics: many concurrent writers
//! share raft entries and log syncs, and each still gets its own outcome.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use shardlet_auth::{ClusterSecret, KeyName, MetaCaller, SigningKey};
use shardlet_meta::client::ClientOptions;
use shardlet_meta::{MetaClient, MetaConfig, MetaNode, ReadConsistency};

const WRITERS: usize = 256;
const SECRET: &str = "group-commit-test-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_raft_entries_and_syncs_yet_each_gets_its_own_version() {
    let directory = tempfile::tempdir().unwrap();
    let root = ClusterSecret::new(SECRET).unwrap();
    let config = MetaConfig::new(
        1,
        "127.0.0.1:0".parse().unwrap(),
        directory.path().to_path_buf(),
        root.derive(KeyName::Meta),
    );
    let running = MetaNode::start(config).await.unwrap();
    running.node.bootstrap().await.unwrap();
    let address = running.address.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while running.node.raft.current_leader().await != Some(1) {
        assert!(
            Instant::now() < deadline,
            "single member never became leader"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gateway = KeyName::MetaCaller(MetaCaller::Gateway);
    let key = SigningKey::new(gateway, root.derive(gateway));
    let client = Arc::new(MetaClient::new(vec![address], key, ClientOptions::default()).unwrap());
    let entries_before = running.node.metrics.log_entries_appended_total.get();
    let syncs_before = running.node.metrics.log_append_calls_total.get();

    let writes: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .put(format!("k/{writer:03}"), format!("v{writer}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut versions = Vec::new();
    for write in writes {
        versions.push(write.await.unwrap());
    }

    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), WRITERS, "every write gets its own version");
    for writer in [0, WRITERS / 2, WRITERS - 1] {
        let entry = client
            .get(format!("k/{writer:03}"), ReadConsistency::Linearizable)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entry.value.as_slice(), format!("v{writer}").as_bytes());
    }
    let entries = running.node.metrics.log_entries_appended_total.get() - entries_before;
    let syncs = running.node.metrics.log_append_calls_total.get() - syncs_before;
    assert!(
        (entries as usize) < WRITERS,
        "{WRITERS} concurrent writes used {entries} raft entries: group commit did not fold them"
    );
    assert!(
        syncs <= entries,
        "one sync per append call covers one or more entries"
    );
    running.shutdown().await.unwrap();
}
