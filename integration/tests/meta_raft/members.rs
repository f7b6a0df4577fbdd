//! The metadata members of one test, and how the tests wait for them to agree: members
//! run as child processes ([`MetaMember`]) with raft timings short enough that an
//! election takes well under a second. Every wait polls a condition with a deadline.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use shardlet_meta::client::ClientOptions;
use shardlet_meta::wire::ClusterStatus;
use shardlet_meta::MetaClient;
use shardlet_testkit::meta_member::{MemberOptions, MetaMember};
use shardlet_testkit::{shardlet_binary, wait_until};

pub const SECRET: &str = "meta-raft-test-secret";
/// How long the members take to agree on a leader at most.
const LEADER_DEADLINE: Duration = Duration::from_secs(30);

pub type Member = MetaMember;

/// Starts member `member_id` on a free port, its data and log under `root`, with fast
/// raft timings and `extra_arguments`. `bootstrap`: form a one-member cluster.
pub async fn start_member(
    member_id: u64,
    root: &Path,
    bootstrap: bool,
    extra_arguments: &[&str],
) -> Member {
    MetaMember::start(
        &shardlet_binary!(),
        member_id,
        root,
        bootstrap,
        &member_options(extra_arguments),
    )
    .await
}

/// Starts member `member_id` listening on `listen`, with `formation` (`--bootstrap
/// --peers …`, `--initial-members …` or nothing).
pub async fn start_member_on(
    member_id: u64,
    root: &Path,
    listen: std::net::SocketAddr,
    formation: &[String],
) -> Member {
    MetaMember::start_on(
        &shardlet_binary!(),
        member_id,
        root,
        listen,
        formation,
        &member_options(&[]),
    )
    .await
}

/// What every member of these tests gets: the secret, fast raft timings, `extra_arguments`.
pub fn member_options(extra_arguments: &[&str]) -> MemberOptions {
    // Fast timings, unless the test sets its own.
    let mut arguments: Vec<String> = [
        ("--heartbeat-interval-ms", "50"),
        ("--election-timeout-min-ms", "300"),
        ("--election-timeout-max-ms", "600"),
    ]
    .into_iter()
    .filter(|(flag, _)| !extra_arguments.contains(flag))
    .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
    .collect();
    arguments.extend(extra_arguments.iter().map(|argument| argument.to_string()));
    MemberOptions {
        secret: SECRET.to_string(),
        log_filter: "info,openraft=warn".to_string(),
        arguments,
    }
}

/// A client signing as the admin (every route: keys, membership, status).
pub fn client(addresses: &[String]) -> MetaClient {
    MetaClient::new(addresses.to_vec(), admin_key(), ClientOptions::default()).unwrap()
}

pub fn admin_key() -> shardlet_auth::SigningKey {
    shardlet_testkit::meta_member::meta_client_key(SECRET, "admin")
}

/// A client that talks to exactly one member, for stale reads of that member's replica.
pub fn client_of(address: &str) -> MetaClient {
    let options = ClientOptions {
        attempts_max: 1,
        ..ClientOptions::default()
    };
    MetaClient::new(vec![address.to_string()], admin_key(), options).unwrap()
}

pub async fn status(address: &str) -> Option<ClusterStatus> {
    client_of(address).status_of(address).await.ok()
}

/// Waits until the running members agree on one leader with exactly `voters`, and returns
/// the leader's member id.
pub async fn wait_for_leader(members: &[&Member], voters: &BTreeSet<u64>) -> u64 {
    wait_for_leader_other_than(members, voters, None).await
}

/// Like [`wait_for_leader`], but a leader equal to `excluded` (one just killed, which the
/// survivors still name until they elect another) does not count.
pub async fn wait_for_leader_other_than(
    members: &[&Member],
    voters: &BTreeSet<u64>,
    excluded: Option<u64>,
) -> u64 {
    wait_until(
        LEADER_DEADLINE,
        "a leader agreed by every member",
        || async {
            let mut leader = None;
            for member in members.iter().filter(|member| member.is_running()) {
                let status = status(&member.address).await?;
                if &status.voters != voters {
                    return None;
                }
                match (leader, status.leader_id) {
                    (_, None) => return None,
                    (None, Some(id)) => leader = Some(id),
                    (Some(seen), Some(id)) if seen != id => return None,
                    _ => {}
                }
            }
            leader.filter(|id| Some(*id) != excluded)
        },
    )
    .await
}

/// Starts three members and forms a cluster {1, 2, 3}.
pub async fn three_member_cluster(root: &Path, extra_arguments: &[&str]) -> Vec<Member> {
    let first = start_member(1, root, true, extra_arguments).await;
    let second = start_member(2, root, false, extra_arguments).await;
    let third = start_member(3, root, false, extra_arguments).await;
    let admin = client(std::slice::from_ref(&first.address));
    wait_until(
        LEADER_DEADLINE,
        "member 1 leads its one-member cluster",
        || async {
            status(&first.address)
                .await
                .and_then(|status| status.leader_id)
                .filter(|id| *id == 1)
        },
    )
    .await;
    admin.add_learner(2, &second.address).await.unwrap();
    admin.add_learner(3, &third.address).await.unwrap();
    admin
        .change_membership(BTreeSet::from([1, 2, 3]))
        .await
        .unwrap();
    let members = vec![first, second, third];
    wait_for_leader(
        &members.iter().collect::<Vec<_>>(),
        &BTreeSet::from([1, 2, 3]),
    )
    .await;
    members
}

pub fn addresses(members: &[Member]) -> Vec<String> {
    members
        .iter()
        .map(|member| member.address.clone())
        .collect()
}
