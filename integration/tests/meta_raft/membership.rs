//! Membership changes under load: 3 → 5 → 3 voters (the last step removes two of the
//! original members, usually including the leader) loses no acknowledged write.

use std::collections::BTreeSet;

use super::load::{assert_all_present, Writers};
use super::members::{addresses, client, start_member, three_member_cluster, wait_for_leader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_to_five_and_shrinking_to_three_under_load_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let mut members = three_member_cluster(root.path(), &[]).await;
    members.push(start_member(4, root.path(), false, &[]).await);
    members.push(start_member(5, root.path(), false, &[]).await);
    let all_addresses = addresses(&members);
    let admin = client(&all_addresses);
    let writers = Writers::start(client(&all_addresses), 8);
    writers.wait_for_acknowledged(200).await;

    admin.add_learner(4, &members[3].address).await.unwrap();
    admin.add_learner(5, &members[4].address).await.unwrap();
    let five = BTreeSet::from([1, 2, 3, 4, 5]);
    admin.change_membership(five.clone()).await.unwrap();
    wait_for_leader(&members.iter().collect::<Vec<_>>(), &five).await;
    let acknowledged = writers.acknowledged_count();
    writers.wait_for_acknowledged(acknowledged + 200).await;

    let three = BTreeSet::from([3, 4, 5]);
    admin.change_membership(three.clone()).await.unwrap();
    // Members 1 and 2 are out; stop them so nothing can be served from them.
    members[0].kill();
    members[1].kill();
    wait_for_leader(&members[2..].iter().collect::<Vec<_>>(), &three).await;
    let acknowledged = writers.acknowledged_count();
    writers.wait_for_acknowledged(acknowledged + 200).await;
    let (acknowledged, _ambiguous) = writers.stop().await;

    for member in &members[2..] {
        assert_all_present(&member.address, &acknowledged).await;
    }
}
