//! Three members in separate processes: losing the leader loses no acknowledged write,
//! and a member that missed many entries catches up by snapshot.

use std::collections::BTreeSet;
use std::time::Duration;

use shardlet_testkit::wait_until;

use super::load::{assert_all_present, replica_contents, Writers};
use super::members::{
    addresses, client, status, three_member_cluster, wait_for_leader, wait_for_leader_other_than,
    Member,
};

fn index_of(members: &[Member], member_id: u64) -> usize {
    members
        .iter()
        .position(|member| member.member_id == member_id)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_writes_loses_no_acknowledged_write() {
    let root = tempfile::tempdir().unwrap();
    let mut members = three_member_cluster(root.path(), &[]).await;
    let voters = BTreeSet::from([1, 2, 3]);
    let writers = Writers::start(client(&addresses(&members)), 8);
    writers.wait_for_acknowledged(300).await;

    let old_leader = wait_for_leader(&members.iter().collect::<Vec<_>>(), &voters).await;
    let old = index_of(&members, old_leader);
    members[old].kill();
    let acknowledged_at_kill = writers.acknowledged_count();

    let new_leader = wait_for_leader_other_than(
        &members.iter().collect::<Vec<_>>(),
        &voters,
        Some(old_leader),
    )
    .await;
    assert_ne!(new_leader, old_leader, "a surviving member must take over");
    writers
        .wait_for_acknowledged(acknowledged_at_kill + 300)
        .await;
    let (acknowledged, _ambiguous) = writers.stop().await;

    for member in members.iter().filter(|member| member.is_running()) {
        assert_all_present(&member.address, &acknowledged).await;
    }
    // The old leader comes back as a follower and converges too.
    members[old].restart().await;
    assert_all_present(&members[old].address, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_missed_many_entries_catches_up_by_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let arguments = [
        "--snapshot-after-entries",
        "100",
        "--entries-kept-after-snapshot",
        "10",
    ];
    let mut members = three_member_cluster(root.path(), &arguments).await;
    let voters = BTreeSet::from([1, 2, 3]);
    let leader = wait_for_leader(&members.iter().collect::<Vec<_>>(), &voters).await;
    let lagging = members
        .iter()
        .position(|member| member.member_id != leader)
        .unwrap();
    members[lagging].kill();

    // Sequential writes: one raft entry each, so the log grows by one per write.
    let writer = client(&addresses(&members));
    let mut acknowledged = std::collections::BTreeMap::new();
    for index in 0..600 {
        let key = format!("load/{index:05}");
        let value = format!("value-{index}");
        writer.put(key.as_str(), value.as_str()).await.unwrap();
        acknowledged.insert(key, value);
    }
    let leader_address = members[index_of(&members, leader)].address.clone();
    wait_until(
        Duration::from_secs(30),
        "the leader purges its log behind a snapshot",
        || async {
            let status = status(&leader_address).await?;
            (status.purged_index? > 300).then_some(())
        },
    )
    .await;

    members[lagging].restart().await;
    assert_all_present(&members[lagging].address, &acknowledged).await;
    let lagging_address = members[lagging].address.clone();
    let lagging_status = status(&lagging_address).await.unwrap();
    assert!(
        lagging_status.snapshot_index.unwrap_or(0) > 300,
        "the entries it missed were purged, so it can only have caught up by snapshot: {lagging_status:?}"
    );
    let metrics = reqwest::get(format!("http://{lagging_address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let installed = metrics
        .lines()
        .find(|line| line.starts_with("shardlet_meta_snapshots_installed_total"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|count| count.parse::<u64>().ok())
        .unwrap();
    assert!(installed >= 1, "snapshot installs reported: {installed}");
    assert_eq!(
        replica_contents(&lagging_address, "load/").await.unwrap(),
        acknowledged
    );
}
