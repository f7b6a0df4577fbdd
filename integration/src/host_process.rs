//! A `shardlet` server running inside one host of a [`crate::netns::Network`]: it listens
//! on the host's own address and a port the test chooses (each namespace has its own
//! ports, so every host can use the same ones and a restart finds its port free), its
//! stdout and stderr in `LOGS/NAME.log` (appended across restarts) and its pid in
//! `LOGS/NAME.pid`, ready once `/health` answers 200 from the test process (which
//! reaches every host over the bridge unless it is cut off). Killed by pid when dropped,
//! also during a panic, as every process the kit starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::binary::ShardletBinary;
use crate::local_cluster::{self, NotHealthy};
use crate::netns::Network;
use crate::poll::POLL_INTERVAL;
use crate::process::ChildProcess;
use crate::service::{describe, START_DEADLINE};

/// How much of a log failure messages show.
const LOG_TAIL_LINES: usize = 40;

/// What to start where: `shardlet ARGUMENTS --listen HOST_ADDRESS:PORT` in `host`,
/// named `name` (its log and pid file), with `environment` added.
#[derive(Clone, Debug)]
pub struct Launch {
    pub host: String,
    pub name: String,
    pub arguments: Vec<String>,
    pub environment: Vec<(String, String)>,
    pub port: u16,
}

/// One server process on a host; see the module documentation.
pub struct HostProcess {
    pub name: String,
    pub host: String,
    /// `HOST_ADDRESS:PORT`, where it listens and is reached.
    pub address: SocketAddr,
    binary: ShardletBinary,
    arguments: Vec<String>,
    environment: Vec<(String, String)>,
    logs: PathBuf,
    pub log_path: PathBuf,
    process: Option<ChildProcess>,
}

impl HostProcess {
    /// Starts `shardlet ARGUMENTS --listen HOST_ADDRESS:PORT` in the launch's host with
    /// its environment added (the caller passes the role's keys: `SHARDLET_KEYS`), told
    /// to run plain HTTP ([`ShardletBinary::command`]'s setting), and waits until its
    /// `/health` answers 200.
    pub async fn start(
        network: &Network,
        binary: &ShardletBinary,
        logs: &Path,
        launch: Launch,
    ) -> Self {
        let mut process = Self::spawn(network, binary, logs, launch);
        process.wait_healthy().await;
        process
    }

    /// Starts it again on the same host, address and arguments (after [`Self::kill_9`]).
    pub async fn restart(&mut self, network: &Network) {
        assert!(
            self.process.is_none(),
            "restart() of {} while it runs",
            self.name
        );
        self.spawn_and_wait_healthy(network).await;
    }

    /// Starts it without waiting for `/health` (a member of a cluster that forms only
    /// once its peers run); [`Self::wait_healthy`] waits later.
    pub fn spawn(network: &Network, binary: &ShardletBinary, logs: &Path, launch: Launch) -> Self {
        let Launch {
            host,
            name,
            arguments,
            environment,
            port,
        } = launch;
        let address = SocketAddr::from((network.host(&host).address, port));
        let mut process = Self {
            log_path: local_cluster::component_log_path(logs, &name),
            name,
            host,
            address,
            binary: binary.clone(),
            arguments,
            environment,
            logs: logs.to_path_buf(),
            process: None,
        };
        process.spawn_only(network);
        process
    }

    /// Waits until `/health` answers 200; panics with the log when it exits first or
    /// does not within [`START_DEADLINE`].
    pub async fn wait_healthy(&mut self) {
        let Some(process) = self.process.as_mut() else {
            panic!("wait_healthy() of {}, which is not running", self.name);
        };
        let give_up = tokio::time::Instant::now() + START_DEADLINE;
        let outcome = local_cluster::wait_until_healthy(
            process,
            &self.address.to_string(),
            give_up,
            POLL_INTERVAL,
        )
        .await;
        let reason = match outcome {
            Ok(()) => return,
            Err(NotHealthy::Exited(status)) => format!("exited during start-up ({status})"),
            Err(NotHealthy::TimedOut) => format!("no healthy /health within {START_DEADLINE:?}"),
        };
        self.process = None;
        panic!("{} did not start: {reason}\n{}", self.name, self.log_tail());
    }

    /// SIGKILL (to it and anything it started), then reap: no chance to flush anything.
    pub fn kill_9(&mut self) {
        self.process = None;
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::pid)
    }

    /// Whether it exited on its own (a crash the test did not cause).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.as_mut().and_then(ChildProcess::exit_status)
    }

    pub fn log_tail(&self) -> String {
        crate::process::log_tail(&self.name, &self.log_path, LOG_TAIL_LINES)
    }

    async fn spawn_and_wait_healthy(&mut self, network: &Network) {
        self.spawn_only(network);
        self.wait_healthy().await;
    }

    fn spawn_only(&mut self, network: &Network) {
        let mut command = network.command(&self.host, self.binary.path());
        command
            .args(&self.arguments)
            .arg("--listen")
            .arg(self.address.to_string())
            .env(crate::binary::PLAINTEXT_VARIABLE, "true")
            .env_remove("SHARDLET_CLUSTER_SECRET")
            .env_remove("SHARDLET_KEYS")
            .envs(self.environment.iter().map(|(key, value)| (key, value)));
        match local_cluster::spawn_component(&self.logs, &self.name, command) {
            Ok(process) => self.process = Some(process),
            Err(error) => panic!("{} did not spawn: {}", self.name, describe(&error)),
        }
    }
}
