//! Starts `shardlet meta` members as child processes and kills them by PID.
//!
//! Each member listens on port 0 (the OS picks a free port) and prints its bound address;
//! a restarted member listens again on the same address, because the cluster's membership
//! records it. Children are killed with SIGKILL on `kill()` and on drop, so a failing test
//! never leaves processes behind. Every wait polls a condition against a deadline.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shardlet_meta::client::ClientOptions;
use shardlet_meta::wire::ClusterStatus;
use shardlet_meta::MetaClient;

pub const SECRET: &str = "meta-raft-test-secret";
/// How long a member gets to print its address after starting.
const START_DEADLINE: Duration = Duration::from_secs(30);

pub struct Member {
    pub member_id: u64,
    pub address: String,
    data_dir: PathBuf,
    log_path: PathBuf,
    extra_arguments: Vec<String>,
    child: Option<Child>,
}

impl Member {
    /// Starts a member on a free port. `bootstrap`: form a one-member cluster.
    pub fn start(member_id: u64, root: &Path, bootstrap: bool, extra_arguments: &[&str]) -> Member {
        let mut member = Member {
            member_id,
            address: "127.0.0.1:0".to_string(),
            data_dir: root.join(format!("member-{member_id}")),
            log_path: root.join(format!("member-{member_id}.log")),
            extra_arguments: extra_arguments
                .iter()
                .map(|argument| argument.to_string())
                .collect(),
            child: None,
        };
        member.spawn(bootstrap);
        member
    }

    fn spawn(&mut self, bootstrap: bool) {
        assert!(
            self.child.is_none(),
            "member {} is already running",
            self.member_id
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_shardlet"));
        command
            .arg("meta")
            .args(["--member-id", &self.member_id.to_string()])
            .args(["--listen", &self.address])
            .arg("--data")
            .arg(&self.data_dir)
            .args(["--heartbeat-interval-ms", "50"])
            .args(["--election-timeout-min-ms", "300"])
            .args(["--election-timeout-max-ms", "600"])
            .args(&self.extra_arguments)
            .env("SHARDLET_CLUSTER_SECRET", SECRET)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if bootstrap {
            command.arg("--bootstrap");
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines, received) = mpsc::channel();
        // Drains stdout for the child's whole life so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = received.recv_timeout(remaining).unwrap_or_else(|_| {
                panic!(
                    "member {} did not report its address; log: {}",
                    self.member_id,
                    self.log_tail()
                )
            });
            if let Some(address) = line.split("listening on ").nth(1) {
                self.address = address.trim().to_string();
                return;
            }
        }
    }

    /// SIGKILL: no shutdown code runs, like a power cut for the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn(false);
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn client(addresses: &[String]) -> MetaClient {
    MetaClient::new(addresses.to_vec(), SECRET, ClientOptions::default()).unwrap()
}

/// A client that talks to exactly one member, for stale reads of that member's replica.
pub fn client_of(address: &str) -> MetaClient {
    let options = ClientOptions {
        attempts_max: 1,
        ..ClientOptions::default()
    };
    MetaClient::new(vec![address.to_string()], SECRET, options).unwrap()
}

/// Polls `condition` every 20 ms until it returns `Some`, or panics at `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    eventually(
        "a leader agreed by every member",
        Duration::from_secs(30),
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
    let first = Member::start(1, root, true, extra_arguments);
    let second = Member::start(2, root, false, extra_arguments);
    let third = Member::start(3, root, false, extra_arguments);
    let admin = client(std::slice::from_ref(&first.address));
    eventually(
        "member 1 leads its one-member cluster",
        Duration::from_secs(30),
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
