//! How a cluster comes into being and how a member stops: `--bootstrap` forms a cluster
//! once and refuses a data directory that belongs to one or a peer that answers as a
//! member; `--initial-members` forms three members and is safe to repeat; SIGTERM stops
//! a member with exit 0 and its data intact; `/ready` says when a member can serve.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use shardlet_meta::ReadConsistency;
use shardlet_testkit::meta_member::MetaMember;
use shardlet_testkit::ports::free_port;
use shardlet_testkit::{metric_total, shardlet_binary, wait_until};

use super::members::{
    client, member_options, start_member, start_member_on, status, wait_for_leader, Member,
};

/// How long a member may take to stop after SIGTERM (raft shutdown, RocksDB flush).
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// How long a refused start may take to exit (it asks its peers first).
const REFUSAL_DEADLINE: Duration = Duration::from_secs(60);
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// `GET /ready`: the status code and the JSON body.
pub async fn ready(address: &str) -> Option<(u16, serde_json::Value)> {
    let response = reqwest::get(format!("http://{address}/ready")).await.ok()?;
    let code = response.status().as_u16();
    let body = response.json().await.ok()?;
    Some((code, body))
}

pub async fn wait_ready(member: &Member) {
    wait_until(READY_DEADLINE, "the member answers /ready 200", || async {
        ready(&member.address)
            .await
            .filter(|(code, _)| *code == 200)
            .map(|_| ())
    })
    .await;
}

async fn metrics(address: &str) -> String {
    reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn strings(arguments: &[&str]) -> Vec<String> {
    arguments
        .iter()
        .map(|argument| argument.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_member_with_exit_0_its_data_survives_and_bootstrap_is_refused_after() {
    let root = tempfile::tempdir().unwrap();
    let mut member = start_member(1, root.path(), true, &[]).await;
    wait_ready(&member).await;
    let (_, body) = ready(&member.address).await.unwrap();
    assert_eq!(body["ready"], true);
    let health = reqwest::get(format!("http://{}/health", member.address))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "/health stays liveness");
    let writer = client(std::slice::from_ref(&member.address));
    let mut expected = BTreeMap::new();
    for index in 0..50 {
        let key = format!("kept/{index:03}");
        writer.put(key.as_str(), "value").await.unwrap();
        expected.insert(key, "value".to_string());
    }
    let cluster_id = std::fs::read_to_string(member.data_dir().join("cluster-id")).unwrap();
    assert!(
        cluster_id.lines().any(|line| line.len() == 32),
        "{cluster_id}"
    );

    // Before the fix `shardlet meta` had no SIGTERM handler: the signal killed it.
    let exit = member
        .terminate(STOP_DEADLINE)
        .await
        .expect("the member did not exit within the deadline after SIGTERM");
    assert!(
        exit.success(),
        "exit status after SIGTERM: {exit}\n{}",
        member.log_tail()
    );
    assert!(
        member_log(&member).contains("RocksDB flushed"),
        "{}",
        member.log_tail()
    );

    // Bootstrap is one-time: the same data directory with --bootstrap again is refused.
    let (status, log) = MetaMember::run_refused(
        &shardlet_binary!(),
        1,
        root.path(),
        &strings(&["--bootstrap"]),
        &member_options(&[]),
        REFUSAL_DEADLINE,
    )
    .await;
    let status = status.expect("a refused bootstrap exits");
    assert!(!status.success(), "a second --bootstrap must fail: {log}");
    assert!(
        log.contains("refusing --bootstrap") && log.contains("already belongs to cluster"),
        "{log}"
    );

    // Started again without it: every acknowledged write is there.
    member.restart().await;
    wait_ready(&member).await;
    let found = super::load::replica_contents(&member.address, "kept/")
        .await
        .unwrap();
    assert_eq!(found, expected);
}

fn member_log(member: &Member) -> String {
    std::fs::read_to_string(member.data_dir().with_extension("log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_is_refused_when_a_peer_answers_as_a_member_and_says_how_to_rejoin() {
    let root = tempfile::tempdir().unwrap();
    let first = start_member(1, root.path(), true, &[]).await;
    wait_ready(&first).await;
    // Member 2 "lost its disk" and is started with --bootstrap and its peer's address.
    let (status, log) = MetaMember::run_refused(
        &shardlet_binary!(),
        2,
        root.path(),
        &strings(&["--bootstrap", "--peers", &first.address]),
        &member_options(&[]),
        REFUSAL_DEADLINE,
    )
    .await;
    let status = status.expect("a refused bootstrap exits");
    assert!(!status.success(), "{log}");
    assert!(log.contains("refusing --bootstrap"), "{log}");
    assert!(log.contains("belongs to cluster"), "{log}");
    assert!(log.contains("shardlet admin meta add"), "{log}");
    assert!(
        !root.path().join("member-2").join("cluster-id").exists(),
        "a refused member records no cluster"
    );
    // An address where nothing answers does not block a bootstrap.
    let nobody = format!("127.0.0.1:{}", free_port());
    let lone = MetaMember::start(
        &shardlet_binary!(),
        3,
        root.path(),
        false,
        &member_options(&["--bootstrap", "--peers", &nobody]),
    )
    .await;
    wait_ready(&lone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_members_form_three_once_and_a_restart_with_the_same_flag_rejoins() {
    let root = tempfile::tempdir().unwrap();
    let listens: Vec<SocketAddr> = (0..3)
        .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
        .collect();
    let initial = listens
        .iter()
        .enumerate()
        .map(|(position, listen)| format!("{}={listen}", position + 1))
        .collect::<Vec<_>>()
        .join(",");
    let formation = strings(&["--initial-members", &initial]);
    // The highest first: the lowest (which forms the cluster) finds them waiting.
    let mut members = Vec::new();
    for position in (0..3).rev() {
        let member_id = u64::try_from(position + 1).unwrap();
        members.push(start_member_on(member_id, root.path(), listens[position], &formation).await);
    }
    members.reverse();
    let voters = BTreeSet::from([1, 2, 3]);
    wait_for_leader(&members.iter().collect::<Vec<_>>(), &voters).await;
    for member in &members {
        wait_ready(member).await;
    }
    let ids: Vec<_> =
        futures::future::join_all(members.iter().map(|member| status(&member.address)))
            .await
            .into_iter()
            .map(|status| status.unwrap().cluster_id.unwrap())
            .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one cluster id on every member: {ids:?}"
    );
    let writer = client(&super::members::addresses(&members));
    writer.put("formed", "once").await.unwrap();

    // The raft gauges: one leader, three voters everywhere, and on the leader a lag
    // series per follower that drops to 0 once they matched its log.
    let leader = status(&members[0].address)
        .await
        .unwrap()
        .leader_id
        .unwrap();
    let mut leaders = 0.0;
    for member in &members {
        let text = metrics(&member.address).await;
        leaders += metric_total(&text, "shardlet_meta_raft_is_leader").unwrap();
        assert_eq!(
            metric_total(&text, "shardlet_meta_raft_members"),
            Some(3.0),
            "{text}"
        );
        assert!(metric_total(&text, "shardlet_meta_raft_applied_index").unwrap() >= 1.0);
        assert!(metric_total(&text, "shardlet_meta_raft_term").unwrap() >= 1.0);
    }
    assert_eq!(leaders, 1.0, "exactly one member reports itself leader");
    let leader_address = &members[usize::try_from(leader - 1).unwrap()].address;
    wait_until(
        READY_DEADLINE,
        "the leader reports both followers caught up",
        || async {
            let text = metrics(leader_address).await;
            let series = text
                .lines()
                .filter(|line| line.starts_with("shardlet_meta_raft_follower_lag_entries{"))
                .count();
            (series == 2
                && metric_total(&text, "shardlet_meta_raft_follower_lag_entries") == Some(0.0))
            .then_some(())
        },
    )
    .await;

    // A restart with the same flag (what a StatefulSet does) rejoins; nothing re-forms.
    let exit = members[0].terminate(STOP_DEADLINE).await.unwrap();
    assert!(exit.success(), "{exit}");
    members[0].restart().await;
    wait_for_leader(&members.iter().collect::<Vec<_>>(), &voters).await;
    wait_ready(&members[0]).await;
    let after = status(&members[0].address).await.unwrap();
    assert_eq!(after.cluster_id.as_ref(), Some(&ids[0]));
    let value = client(std::slice::from_ref(&members[0].address))
        .get("formed", ReadConsistency::Linearizable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value.value.as_slice(), b"once");

    // A member that lost its disk and is started with the same flag must not come back
    // as itself: a waiting member (2) hears from the leader that it had entries, the
    // lowest (1) finds the others in a cluster. Both refuse and say how to rejoin.
    for position in [1, 0] {
        let member_id = members[position].member_id;
        let exit = members[position].terminate(STOP_DEADLINE).await.unwrap();
        assert!(exit.success(), "{exit}");
        std::fs::remove_dir_all(members[position].data_dir()).unwrap();
        let (status, log) = MetaMember::run_refused(
            &shardlet_binary!(),
            member_id,
            root.path(),
            &formation,
            &member_options(&[]),
            REFUSAL_DEADLINE,
        )
        .await;
        let status = status.unwrap_or_else(|| panic!("member {member_id} did not refuse: {log}"));
        assert!(!status.success(), "member {member_id}: {log}");
        assert!(log.contains("refusing"), "member {member_id}: {log}");
        assert!(
            log.contains("shardlet admin meta add"),
            "member {member_id}: {log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_another_cluster_is_refused_by_raft_and_a_waiting_member_is_not_ready() {
    let root = tempfile::tempdir().unwrap();
    let ours = start_member(1, root.path(), true, &[]).await;
    let theirs = start_member(2, &root.path().join("other"), true, &[]).await;
    wait_ready(&ours).await;
    wait_ready(&theirs).await;
    let waiting = start_member(3, root.path(), false, &[]).await;
    let (code, body) = ready(&waiting.address).await.unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("not a member of a cluster yet"),
        "{body}"
    );
    // Added by the raw route (the CLI refuses it first), the leader's raft RPC reaches
    // a member of another cluster made from the same secret: refused, counted.
    let admin = client(std::slice::from_ref(&ours.address));
    let _ = admin.add_learner_with(2, &theirs.address, false).await;
    wait_until(
        Duration::from_secs(30),
        "the other cluster's member refuses raft RPC as wrong_cluster",
        || async {
            let metrics = reqwest::get(format!("http://{}/metrics", theirs.address))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            metrics
                .lines()
                .any(|line| line.contains("wrong_cluster") && !line.ends_with(" 0"))
                .then_some(())
        },
    )
    .await;
    let theirs_status = status(&theirs.address).await.unwrap();
    assert_eq!(
        theirs_status.voters,
        BTreeSet::from([2]),
        "its own cluster is untouched"
    );
    assert_ne!(
        theirs_status.cluster_id,
        status(&ours.address).await.unwrap().cluster_id
    );
}
