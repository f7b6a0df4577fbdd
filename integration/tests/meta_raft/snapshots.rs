//! Snapshots larger than a request body travel in chunks, and a member killed in the
//! middle of installing one restarts on its old state and converges (`snapshot_install`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use shardlet_meta::config::REQUEST_BODY_BYTES_MAX_DEFAULT;
use shardlet_meta::snapshot_install::PAUSE_AFTER_BATCHES_VARIABLE;
use shardlet_meta::{Batch, ReadConsistency};
use shardlet_testkit::wait_until;

use super::load::{assert_all_present, replica_contents, LOAD_PREFIX};
use super::members::{
    addresses, client, client_of, status, three_member_cluster, wait_for_leader, Member,
};

/// Keys per batch, each with a 1 KiB value: one raft entry of ~20 KiB, so that even 64
/// entries in one append (a follower catching up) stay well inside the tests' 50 ms
/// heartbeat-bound append timeout.
const BATCH_KEYS: usize = 20;
/// Batches written while a follower is down: ~24 MiB, so the last snapshot (every 100
/// entries) is larger than the route's 16 MiB body limit.
const BATCHES: usize = 1_200;
const KEY_BEFORE: &str = "before/key";

/// Three members snapshotting every 100 entries; a follower is killed after
/// `KEY_BEFORE = old` and misses `KEY_BEFORE = new` and ~30 MiB of writes, which the leader
/// then purges from its log: the follower can only catch up by snapshot. Returns the
/// members, the follower's index and what it must end up with under `LOAD_PREFIX`.
async fn a_follower_far_behind(root: &Path) -> (Vec<Member>, usize, BTreeMap<String, String>) {
    // Slower raft timings than the other tests' (`start_member` then leaves out its own): a
    // follower catching up takes 64 entries of ~27 KiB of JSON in one append, which on
    // this loaded 2-core machine can take longer than a 50 ms heartbeat, the bound of
    // an append; elections would then interrupt every snapshot transfer.
    let arguments = [
        "--snapshot-after-entries",
        "100",
        "--entries-kept-after-snapshot",
        "10",
        "--heartbeat-interval-ms",
        "250",
        "--election-timeout-min-ms",
        "1500",
        "--election-timeout-max-ms",
        "3000",
    ];
    let mut members = three_member_cluster(root, &arguments).await;
    let voters = BTreeSet::from([1, 2, 3]);
    let leader = wait_for_leader(&members.iter().collect::<Vec<_>>(), &voters).await;
    let writer = client(&addresses(&members));
    writer.put(KEY_BEFORE, "old").await.unwrap();
    let lagging = members
        .iter()
        .position(|member| member.member_id != leader)
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the follower applied the first write",
        || async {
            client_of(&members[lagging].address)
                .get(KEY_BEFORE, ReadConsistency::Stale)
                .await
                .ok()
                .flatten()
                .map(|_| ())
        },
    )
    .await;
    members[lagging].kill();

    writer.put(KEY_BEFORE, "new").await.unwrap();
    let value = "v".repeat(1024);
    let mut expected = BTreeMap::new();
    for batch_index in 0..BATCHES {
        let mut batch = Batch::default();
        for key_index in 0..BATCH_KEYS {
            let key = format!("{LOAD_PREFIX}{batch_index:04}/{key_index:02}");
            batch.put(key.as_str(), value.as_str());
            expected.insert(key, value.clone());
        }
        // Unconditional puts of fixed values: writing one again after an unknown
        // outcome (a leader change on this loaded machine) ends in the same contents.
        let mut attempts = 0;
        while let Err(error) = writer.batch(batch.clone()).await {
            attempts += 1;
            assert!(attempts < 10, "batch {batch_index}: {error}");
        }
    }
    let leader_address = members
        .iter()
        .find(|member| member.member_id == leader)
        .unwrap()
        .address
        .clone();
    wait_until(
        Duration::from_secs(60),
        "the leader purges its log behind a snapshot",
        || async {
            let status = status(&leader_address).await?;
            (status.purged_index? > 50).then_some(())
        },
    )
    .await;
    (members, lagging, expected)
}

async fn metric(address: &str, name: &str) -> Option<u64> {
    let text = reqwest::get(format!("http://{address}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with('{'))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_larger_than_the_body_limit_installs_in_chunks() {
    let root = tempfile::tempdir().unwrap();
    let (mut members, lagging, expected) = a_follower_far_behind(root.path()).await;

    members[lagging].restart().await;
    let address = members[lagging].address.clone();
    assert_all_present(&address, &expected).await;
    assert_eq!(
        replica_contents(&address, LOAD_PREFIX).await.unwrap(),
        expected
    );
    let snapshot_bytes = metric(&address, "shardlet_meta_snapshot_bytes")
        .await
        .unwrap();
    assert!(
        snapshot_bytes > REQUEST_BODY_BYTES_MAX_DEFAULT as u64,
        "the installed snapshot ({snapshot_bytes} bytes) is larger than one request body"
    );
    let chunks = metric(&address, "shardlet_meta_snapshot_chunks_received_total")
        .await
        .unwrap();
    assert!(chunks >= 2, "received in {chunks} chunks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_during_a_snapshot_install_restarts_on_its_old_state_and_converges() {
    let root = tempfile::tempdir().unwrap();
    let (mut members, lagging, expected) = a_follower_far_behind(root.path()).await;

    // The install stops after its first batch of entries was written.
    members[lagging].set_environment(PAUSE_AFTER_BATCHES_VARIABLE, Some("1"));
    members[lagging].restart().await;
    let address = members[lagging].address.clone();
    wait_until(
        Duration::from_secs(60),
        "the follower is in the middle of installing the snapshot",
        || async {
            let batches = metric(&address, "shardlet_meta_snapshot_install_batches_total").await?;
            (batches >= 1).then_some(())
        },
    )
    .await;
    // Meanwhile it serves its old state, not a mix.
    let replica = client_of(&address);
    let before = replica
        .get(KEY_BEFORE, ReadConsistency::Stale)
        .await
        .unwrap();
    assert_eq!(before.unwrap().value.as_slice(), b"old");
    assert_eq!(
        replica_contents(&address, LOAD_PREFIX).await.unwrap(),
        BTreeMap::new()
    );

    members[lagging].kill();
    members[lagging].set_environment(PAUSE_AFTER_BATCHES_VARIABLE, None);
    members[lagging].restart().await;
    assert_all_present(&address, &expected).await;
    assert_eq!(
        replica_contents(&address, LOAD_PREFIX).await.unwrap(),
        expected
    );
    let after = replica
        .get(KEY_BEFORE, ReadConsistency::Stale)
        .await
        .unwrap();
    assert_eq!(after.unwrap().value.as_slice(), b"new");
    let installed = metric(&address, "shardlet_meta_snapshots_installed_total")
        .await
        .unwrap();
    assert!(
        installed >= 1,
        "caught up by snapshot: {installed} installs"
    );
}
