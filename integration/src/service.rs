//! A `shardlet` server as a child process of a test: started with `--listen
//! 127.0.0.1:0`, found at the address it announces (`... listening on [http://]ADDR`
//! on stdout, which goes to its log), ready once `GET /health` answers 200. Restarted,
//! it listens on the same address again, where clients and the topology expect it.
//! The metadata member, the gateway and the controller are run like this; storage
//! nodes (`node::NodeProcess`) are started the same way, by the same code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::binary::ShardletBinary;
use crate::local_cluster::{self, NotHealthy};
use crate::poll::{poll_until, POLL_INTERVAL};
use crate::process::ChildProcess;
use crate::raw_http::{self, Request};

/// How long a server may take to announce its address and answer `/health`.
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// How much of a log failure messages show.
pub const LOG_TAIL_LINES: usize = 60;
/// What a server prints once it listens, followed by its address.
const LISTENING_ANNOUNCEMENT: &str = "listening on ";

/// One `shardlet <subcommand>` server process (`meta`, `gateway`, `controller`).
pub struct ServiceProcess {
    pub name: String,
    binary: ShardletBinary,
    arguments: Vec<String>,
    /// The `--listen` value: port 0 for the first start, afterwards the bound address.
    pub address: SocketAddr,
    secret: String,
    logs: PathBuf,
    pub log_path: PathBuf,
    process: Option<ChildProcess>,
}

impl ServiceProcess {
    /// Starts `shardlet <arguments> --listen 127.0.0.1:0` with the cluster `secret`,
    /// its log and pid file in `logs` (`NAME.log`, `NAME.pid`), and waits until it
    /// announced its address and its `/health` answers 200.
    pub async fn start(
        binary: &ShardletBinary,
        name: &str,
        arguments: Vec<String>,
        secret: &str,
        logs: &Path,
    ) -> Self {
        let mut service = Self {
            name: name.to_string(),
            binary: binary.clone(),
            arguments,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            secret: secret.to_string(),
            logs: logs.to_path_buf(),
            log_path: local_cluster::component_log_path(logs, name),
            process: None,
        };
        if let Err(reason) = service.spawn_and_wait_healthy().await {
            panic!("{name} did not start: {reason}\n{}", service.log_tail());
        }
        // `shardlet meta --bootstrap` forms a cluster once and refuses a data directory
        // that already belongs to one: a restart starts the member without it.
        service
            .arguments
            .retain(|argument| argument != "--bootstrap");
        service
    }

    /// Starts it again on the same address (after [`Self::kill_9`]).
    pub async fn restart(&mut self) {
        assert!(
            self.process.is_none(),
            "restart() of {} while it runs",
            self.name
        );
        if let Err(reason) = self.spawn_and_wait_healthy().await {
            panic!(
                "{} did not restart: {reason}\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// SIGTERM, then waits (polling, bounded) for the exit status; panics with its log
    /// if it still runs after `deadline`.
    pub async fn terminate(&mut self, deadline: std::time::Duration) -> std::process::ExitStatus {
        let mut process = self
            .process
            .take()
            .unwrap_or_else(|| panic!("terminate() of {}, which is not running", self.name));
        process.terminate();
        match process.wait_for_exit(deadline).await {
            Some(status) => status,
            None => panic!(
                "{} did not exit within {deadline:?} of SIGTERM\n{}",
                self.name,
                self.log_tail()
            ),
        }
    }

    /// SIGKILL, then reap: no chance to flush anything.
    pub fn kill_9(&mut self) {
        self.process = None;
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::pid)
    }

    pub fn log_tail(&self) -> String {
        crate::process::log_tail(&self.name, &self.log_path, LOG_TAIL_LINES)
    }

    /// The gateway's admin port (`/metrics`), as it announced it; panics for a process
    /// that announced none.
    pub fn admin_address(&self) -> SocketAddr {
        announced_admin_address(&self.log_path)
            .unwrap_or_else(|| panic!("{} announced no admin port\n{}", self.name, self.log_tail()))
    }

    /// `GET path`, retried (bounded) until it answers 200, so that a response slowed
    /// by a loaded machine is not mistaken for an empty one; the body as text.
    pub async fn get_text(&self, path: &str) -> String {
        let give_up = tokio::time::Instant::now() + START_DEADLINE;
        let answer = poll_until(give_up, POLL_INTERVAL, || async {
            match raw_http::send(self.address, &Request::new("GET", path)).await {
                Ok(response) if response.status == 200 => {
                    Some(String::from_utf8_lossy(&response.body).into_owned())
                }
                _ => None,
            }
        })
        .await;
        answer.unwrap_or_else(|_| {
            panic!(
                "{} {path} did not answer 200 within {START_DEADLINE:?}\n{}",
                self.name,
                self.log_tail()
            )
        })
    }

    /// `GET path` signed with `key` (a fresh signature per attempt: each nonce is good
    /// once), retried (bounded) until it answers 200; the body as text.
    pub async fn get_signed_text(&self, path: &str, key: &crate::signing::ContractKey) -> String {
        let give_up = tokio::time::Instant::now() + START_DEADLINE;
        let answer = poll_until(give_up, POLL_INTERVAL, || async {
            let mut request = Request::new("GET", path);
            let signature = crate::signing::signature_headers(
                key,
                std::time::SystemTime::now(),
                "GET",
                &self.address.to_string(),
                path,
                &[],
                None,
            );
            request.headers.extend(signature);
            match raw_http::send(self.address, &request).await {
                Ok(response) if response.status == 200 => {
                    Some(String::from_utf8_lossy(&response.body).into_owned())
                }
                _ => None,
            }
        })
        .await;
        answer.unwrap_or_else(|_| {
            panic!(
                "{} {path} (signed with {}) did not answer 200 within {START_DEADLINE:?}\n{}",
                self.name,
                key.name,
                self.log_tail()
            )
        })
    }

    /// The cluster secret this process's keys derive from.
    pub fn cluster_secret(&self) -> &str {
        &self.secret
    }

    async fn spawn_and_wait_healthy(&mut self) -> Result<(), String> {
        let log_offset = log_length(&self.log_path);
        let mut command = self.binary.command();
        command
            .args(&self.arguments)
            .arg("--listen")
            .arg(self.address.to_string())
            .env("RUST_LOG", "info");
        // A server is handed only its role's keys, derived by the contract's rules; a
        // command the kit knows no role for gets the cluster secret, as an operator's.
        let role = self
            .arguments
            .first()
            .and_then(|subcommand| crate::signing::role_of_subcommand(subcommand));
        match role {
            Some(role) => command
                .env(
                    "SHARDLET_KEYS",
                    crate::signing::role_key_file(&self.secret, role),
                )
                .env_remove("SHARDLET_CLUSTER_SECRET"),
            None => command
                .env("SHARDLET_CLUSTER_SECRET", &self.secret)
                .env_remove("SHARDLET_KEYS"),
        };
        let mut process = local_cluster::spawn_component(&self.logs, &self.name, command)
            .map_err(|error| describe(&error))?;
        wait_announced_and_healthy(&mut process, log_offset, &mut self.address).await?;
        self.process = Some(process);
        Ok(())
    }
}

/// The length of the log before a start, so only what this run wrote is searched.
pub(crate) fn log_length(log_path: &Path) -> u64 {
    std::fs::metadata(log_path).map_or(0, |metadata| metadata.len())
}

/// Waits until `process` announced its address in its log after `log_offset` (unless
/// `address` already has a port: a restart on a known address) and answers `/health`.
/// The process is killed when this fails (its guard drops).
pub(crate) async fn wait_announced_and_healthy(
    process: &mut ChildProcess,
    log_offset: u64,
    address: &mut SocketAddr,
) -> Result<(), String> {
    let give_up = tokio::time::Instant::now() + START_DEADLINE;
    let log_path = process.log_path().map(Path::to_path_buf);
    let known = (address.port() != 0).then_some(*address);
    let announced = poll_until(give_up, POLL_INTERVAL, || {
        let exited = process.exit_status();
        let found = known.or_else(|| announced_address(log_path.as_deref()?, log_offset));
        async move {
            match exited {
                Some(status) => Some(Err(status)),
                None => found.map(Ok),
            }
        }
    })
    .await;
    match announced {
        Ok(Ok(found)) => *address = found,
        Ok(Err(status)) => return Err(format!("exited during start-up ({status})")),
        Err(_) => return Err(format!("announced no address within {START_DEADLINE:?}")),
    }
    let healthy =
        local_cluster::wait_until_healthy(process, &address.to_string(), give_up, POLL_INTERVAL)
            .await;
    match healthy {
        Ok(()) => Ok(()),
        Err(NotHealthy::Exited(status)) => Err(format!("exited during start-up ({status})")),
        Err(NotHealthy::TimedOut) => Err(format!("no healthy /health within {START_DEADLINE:?}")),
    }
}

/// The address in the first `listening on [http://]ADDR` line written after `offset`.
pub fn announced_address(log_path: &Path, offset: u64) -> Option<SocketAddr> {
    let log = std::fs::read(log_path).ok()?;
    let text = String::from_utf8_lossy(log.get(usize::try_from(offset).ok()?..)?);
    text.lines().find_map(|line| {
        let (_, rest) = line.split_once(LISTENING_ANNOUNCEMENT)?;
        rest.trim_start_matches("http://")
            .trim_start_matches("https://")
            .split_whitespace()
            .next()?
            .trim_end_matches('/')
            .parse()
            .ok()
    })
}

/// What the gateway prints before its admin port's address.
const ADMIN_ANNOUNCEMENT: &str = "admin port (metrics, health): ";

/// The address in the last `… admin port (metrics, health): http://ADDR` line of the
/// log (the gateway's admin port; the last, so a restart's new port is found).
pub fn announced_admin_address(log_path: &Path) -> Option<SocketAddr> {
    let log = std::fs::read(log_path).ok()?;
    let text = String::from_utf8_lossy(&log);
    text.lines().rev().find_map(|line| {
        let (_, rest) = line.split_once(ADMIN_ANNOUNCEMENT)?;
        rest.trim_start_matches("http://")
            .trim_start_matches("https://")
            .split_whitespace()
            .next()?
            .trim_end_matches('/')
            .parse()
            .ok()
    })
}

/// An error and its sources, one after the other (what anyhow's `{:#}` prints).
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// `shardlet <arguments>` run to completion with the cluster `secret`, e.g. `admin key
/// create`; its stdout, after checking that it succeeded.
pub fn run_to_completion(binary: &ShardletBinary, arguments: &[String], secret: &str) -> String {
    let output = binary
        .command()
        .args(arguments)
        .env("SHARDLET_CLUSTER_SECRET", secret)
        .env_remove("SHARDLET_KEYS")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("shardlet {arguments:?} does not run: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "shardlet {arguments:?} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announced_address_is_read_from_what_this_run_wrote() {
        let directory = tempfile::tempdir().unwrap();
        let log = directory.path().join("node.log");
        std::fs::write(
            &log,
            "shardlet node 1 listening on http://127.0.0.1:1111/\n",
        )
        .unwrap();
        let offset = log_length(&log);
        assert_eq!(announced_address(&log, offset), None);
        let mut text = std::fs::read_to_string(&log).unwrap();
        text.push_str("INFO starting\nshardlet meta: member 1 listening on 127.0.0.1:2222\n");
        std::fs::write(&log, text).unwrap();
        assert_eq!(
            announced_address(&log, offset),
            Some(SocketAddr::from(([127, 0, 0, 1], 2222)))
        );
        assert_eq!(
            announced_address(&log, 0),
            Some(SocketAddr::from(([127, 0, 0, 1], 1111)))
        );
    }

    #[test]
    fn describe_names_every_cause() {
        let error = crate::process::SpawnError::Spawn {
            name: "gateway".into(),
            error: std::io::Error::other("no such file"),
        };
        assert_eq!(describe(&error), "cannot start gateway: no such file");
    }
}
