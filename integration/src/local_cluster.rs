//! What `shardlet dev` and the test clusters both do with a cluster of local processes:
//! write the topology file for their nodes, spawn each component with its log and pid
//! file, probe `/health` until it answers, and stop every component (SIGTERM, then
//! SIGKILL after a grace period).
//!
//! Production layer (`shardlet dev` runs on it): failures are returned, never panics.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use shardlet_core::{NodeState, Topology};
use shardlet_net::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::poll::poll_until;
use crate::process::{ChildProcess, SpawnError};

/// How long one `/health` probe may take: a process that is up answers in
/// milliseconds, one that is not may leave a connection hanging.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// What a healthy answer starts with.
const HEALTHY_STATUS_LINE: &[u8] = b"HTTP/1.1 200";

/// The topology file for `topology`: every field of every node, so that the text
/// parses back (`Topology::from_toml_str`) to the same topology. `header` becomes the
/// comment at the top (one `#` line per line).
pub fn topology_toml(topology: &Topology, header: &str) -> String {
    let mut text = String::new();
    for line in header.lines() {
        text.push_str(&format!("# {line}\n"));
    }
    text.push_str(&format!("epoch = {}\n", topology.epoch()));
    for node in topology.nodes() {
        text.push_str(&format!(
            "\n[[node]]\nid = {}\nname = {}\naddress = {}\nregion = {}\nzone = {}\ncapacity_bytes = {}\nfree_bytes = {}\nweight = {:?}\n",
            node.id.0,
            toml_string(&node.name),
            toml_string(&node.address),
            toml_string(&node.region),
            toml_string(&node.zone),
            node.capacity_bytes,
            node.free_bytes,
            node.weight,
        ));
        if node.state != NodeState::Up {
            text.push_str(&format!(
                "state = {}\n",
                toml_string(&node.state.to_string())
            ));
        }
        if let Some(latency_us) = node.latency_us {
            text.push_str(&format!("latency_us = {latency_us}\n"));
        }
    }
    text
}

/// `text` as a TOML string, quoted and escaped by the same library that parses it.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// `LOGS/NAME.log`: where component `name` writes its stdout and stderr.
pub fn component_log_path(logs: &Path, name: &str) -> PathBuf {
    logs.join(format!("{name}.log"))
}

/// `LOGS/NAME.pid`: where component `name`'s pid is recorded.
pub fn component_pid_path(logs: &Path, name: &str) -> PathBuf {
    logs.join(format!("{name}.pid"))
}

/// Spawns `command` as component `name`: stdout and stderr appended to
/// `LOGS/NAME.log`, the pid in `LOGS/NAME.pid`.
pub fn spawn_component(
    logs: &Path,
    name: &str,
    command: Command,
) -> Result<ChildProcess, SpawnError> {
    let process = ChildProcess::spawn(name, command, &component_log_path(logs, name))?;
    // Tests and operators find components by these (e.g. to kill -9 a node); without
    // the file only that convenience is lost, so a failed write does not stop start-up.
    let _ = process.write_pid_file(&component_pid_path(logs, name));
    Ok(process)
}

/// One plain HTTP/1.1 `GET /health` to `address` (`host:port`); true on a 200 within
/// [`HEALTH_TIMEOUT`].
pub async fn health_ok(address: &str) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        stream
            .write_all(
                format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .ok()?;
        // Only the status line matters; it may arrive in more than one read.
        let mut head = [0u8; HEALTHY_STATUS_LINE.len()];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.as_slice() == HEALTHY_STATUS_LINE)
    };
    tokio::time::timeout(HEALTH_TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Why a component did not become healthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotHealthy {
    /// It exited while starting.
    Exited(ExitStatus),
    /// `/health` did not answer 200 before the deadline.
    TimedOut,
}

/// Whether `GET /health` of the TLS port at `address` answers 200, over `transport`
/// (which trusts the cluster's CA).
pub async fn health_ok_over(address: &str, transport: &Transport) -> bool {
    if !transport.is_tls() {
        return health_ok(address).await;
    }
    let attempt = async {
        let client = transport.client_builder().build().ok()?;
        let response = client
            .get(format!("{}/health", transport.url(address)))
            .send()
            .await
            .ok()?;
        Some(response.status() == reqwest::StatusCode::OK)
    };
    tokio::time::timeout(HEALTH_TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Probes `GET /health` of `address` every `interval` until it answers 200; fails
/// early when `process` exits, and at `give_up`.
pub async fn wait_until_healthy(
    process: &mut ChildProcess,
    address: &str,
    give_up: tokio::time::Instant,
    interval: Duration,
) -> Result<(), NotHealthy> {
    wait_until_healthy_over(process, address, &Transport::Plaintext, give_up, interval).await
}

/// [`wait_until_healthy`] over `transport` (HTTPS for a TLS cluster).
pub async fn wait_until_healthy_over(
    process: &mut ChildProcess,
    address: &str,
    transport: &Transport,
    give_up: tokio::time::Instant,
    interval: Duration,
) -> Result<(), NotHealthy> {
    let outcome = poll_until(give_up, interval, || {
        let exited = process.exit_status();
        async move {
            match exited {
                Some(status) => Some(Err(NotHealthy::Exited(status))),
                None => health_ok_over(address, transport).await.then_some(Ok(())),
            }
        }
    })
    .await;
    outcome.unwrap_or(Err(NotHealthy::TimedOut))
}

/// Stops every component: SIGTERM to all of them, last started first (the gateway
/// before the storage nodes before the metadata member, so no request goes to a
/// component already gone), then waits up to `grace` in all; `on_kill` is told the
/// name of each one still running then, just before it gets SIGKILL.
pub async fn stop_all(
    components: &mut [ChildProcess],
    grace: Duration,
    mut on_kill: impl FnMut(&str),
) {
    for component in components.iter().rev() {
        component.terminate();
    }
    let give_up = tokio::time::Instant::now() + grace;
    for component in components.iter_mut().rev() {
        let remaining = give_up.saturating_duration_since(tokio::time::Instant::now());
        if component.wait_for_exit(remaining).await.is_none() {
            on_kill(component.name());
            component.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardlet_core::{Node, NodeId};

    fn node(id: u32, zone: &str) -> Node {
        Node {
            id: NodeId(id),
            name: format!("node \"{id}\" \\ {zone}"),
            address: format!("127.0.0.1:{}", 19100 + id),
            region: "région-one".into(),
            zone: zone.into(),
            capacity_bytes: 3 << 40,
            free_bytes: 1 << 40,
            weight: 0.1 + f64::from(id),
            state: NodeState::Up,
            latency_us: None,
        }
    }

    #[test]
    fn the_topology_file_parses_back_to_the_same_topology() {
        let mut nodes = vec![node(1, "a"), node(2, "b"), node(3, "a"), node(4, "b")];
        nodes[1].state = NodeState::Draining;
        nodes[2].latency_us = Some(250);
        let topology = Topology::new(7, nodes).unwrap();
        let text = topology_toml(&topology, "Written by a test.\nSecond line.");
        assert!(
            text.starts_with("# Written by a test.\n# Second line.\nepoch = 7\n"),
            "{text}"
        );
        let parsed = Topology::from_toml_str(&text, "written.toml")
            .unwrap_or_else(|error| panic!("{error}\n{text}"));
        assert_eq!(parsed, topology);
    }

    #[test]
    fn the_example_topology_round_trips() {
        let example = include_str!("../../examples/topology.toml");
        let topology = Topology::from_toml_str(example, "examples/topology.toml").unwrap();
        let text = topology_toml(&topology, "");
        assert_eq!(
            Topology::from_toml_str(&text, "written.toml").unwrap(),
            topology
        );
    }

    #[tokio::test]
    async fn health_ok_is_true_only_for_a_200() {
        async fn answering(status_line: &'static str) -> String {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap().to_string();
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let mut request = [0u8; 1024];
                    let _ = stream.read(&mut request).await;
                    // Two writes: the status line may arrive in pieces.
                    let (first, rest) = status_line.split_at(5);
                    let _ = stream.write_all(first.as_bytes()).await;
                    let _ = stream.flush().await;
                    let _ = stream.write_all(rest.as_bytes()).await;
                    let _ = stream.write_all(b"\r\ncontent-length: 0\r\n\r\n").await;
                }
            });
            address
        }
        assert!(health_ok(&answering("HTTP/1.1 200 OK").await).await);
        assert!(!health_ok(&answering("HTTP/1.1 503 Service Unavailable").await).await);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = closed.local_addr().unwrap().to_string();
        drop(closed);
        assert!(!health_ok(&address).await, "nobody listens");
    }

    #[tokio::test]
    async fn waiting_for_health_fails_early_when_the_component_exits() {
        let logs = tempfile::tempdir().unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "exit 3"]);
        let mut process = spawn_component(logs.path(), "quitter", command).unwrap();
        let pid_file = std::fs::read_to_string(component_pid_path(logs.path(), "quitter")).unwrap();
        assert_eq!(pid_file, format!("{}\n", process.pid()));
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        let started = std::time::Instant::now();
        let outcome = wait_until_healthy(
            &mut process,
            "127.0.0.1:1",
            give_up,
            Duration::from_millis(20),
        )
        .await;
        assert!(
            matches!(outcome, Err(NotHealthy::Exited(status)) if status.code() == Some(3)),
            "{outcome:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "it did not wait for the deadline"
        );
    }

    #[tokio::test]
    async fn stop_all_stops_every_component_and_names_the_ones_it_had_to_kill() {
        let logs = tempfile::tempdir().unwrap();
        let ready = logs.path().join("stubborn.ready");
        let mut obedient = Command::new("sleep");
        obedient.arg("600");
        let mut stubborn = Command::new("sh");
        stubborn.arg("-c").arg(format!(
            "trap '' TERM; touch {}; while true; do sleep 1; done",
            ready.display()
        ));
        let mut components = vec![
            spawn_component(logs.path(), "obedient", obedient).unwrap(),
            spawn_component(logs.path(), "stubborn", stubborn).unwrap(),
        ];
        let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
        poll_until(give_up, Duration::from_millis(20), || async {
            ready.exists()
        })
        .await
        .unwrap();
        let mut killed = Vec::new();
        stop_all(&mut components, Duration::from_millis(500), |name| {
            killed.push(name.to_string())
        })
        .await;
        assert_eq!(killed, ["stubborn"]);
        assert!(components
            .iter_mut()
            .all(|component| !component.is_running()));
    }
}
