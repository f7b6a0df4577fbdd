//! One `shardlet meta` member as a child process, for the metadata service's own tests
//! and benchmarks (the other suites start their member as a
//! [`crate::service::ServiceProcess`]).
//!
//! A member listens on port 0 (the OS picks a free port) and announces its bound
//! address; a restarted member listens again on the same address, because the
//! cluster's membership records it. Members are killed with SIGKILL on `kill()` and on
//! drop, so a failing test never leaves processes behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::binary::ShardletBinary;
use crate::process::ChildProcess;
use crate::service::{describe, log_length, wait_announced_and_healthy};

/// How much of a member's log a failure message shows.
const LOG_TAIL_LINES: usize = 30;

/// What every member of one test cluster shares.
#[derive(Clone, Debug)]
pub struct MemberOptions {
    /// The cluster secret; a member is handed only its role's key (`meta`) derived
    /// from it.
    pub secret: String,
    /// `RUST_LOG` of the member.
    pub log_filter: String,
    /// Arguments after the ones every member gets (`meta --member-id --listen --data`).
    pub arguments: Vec<String>,
}

pub struct MetaMember {
    pub member_id: u64,
    /// `127.0.0.1:PORT` once started.
    pub address: String,
    listen: SocketAddr,
    binary: ShardletBinary,
    options: MemberOptions,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// How it forms a cluster on a restart: `--initial-members …` is given again (it is
    /// safe to repeat), `--bootstrap` never (it refuses a data directory that belongs to
    /// a cluster).
    restart_arguments: Vec<String>,
    /// Extra environment of the next starts ([`MetaMember::set_environment`]).
    environment: Vec<(String, String)>,
    process: Option<ChildProcess>,
}

impl MetaMember {
    /// Starts member `member_id` on a free port with its data in `ROOT/member-ID` and its
    /// log in `ROOT/member-ID.log` (`ROOT` is created if missing), and waits until it
    /// answers `/health`. `bootstrap`: form a one-member cluster.
    pub async fn start(
        binary: &ShardletBinary,
        member_id: u64,
        root: &Path,
        bootstrap: bool,
        options: &MemberOptions,
    ) -> Self {
        let formation = if bootstrap {
            vec!["--bootstrap".to_string()]
        } else {
            Vec::new()
        };
        Self::start_on(
            binary,
            member_id,
            root,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            &formation,
            options,
        )
        .await
    }

    /// Like [`Self::start`], listening on `listen` (a fixed port, for members that name
    /// each other in `--initial-members`), with `formation`: `--bootstrap [--peers …]`,
    /// `--initial-members …`, or nothing (a member waiting to be added).
    pub async fn start_on(
        binary: &ShardletBinary,
        member_id: u64,
        root: &Path,
        listen: SocketAddr,
        formation: &[String],
        options: &MemberOptions,
    ) -> Self {
        let mut member = Self::unstarted(binary, member_id, root, listen, formation, options);
        member.spawn(formation).await;
        member
    }

    /// Runs member `member_id` with `formation`, expecting it to refuse to start: waits
    /// (up to `deadline`) for it to exit, and returns its exit status and log.
    pub async fn run_refused(
        binary: &ShardletBinary,
        member_id: u64,
        root: &Path,
        formation: &[String],
        options: &MemberOptions,
        deadline: std::time::Duration,
    ) -> (Option<std::process::ExitStatus>, String) {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let member = Self::unstarted(binary, member_id, root, listen, formation, options);
        let mut process = ChildProcess::spawn(
            &format!("member-{member_id}"),
            member.command(formation),
            &member.log_path,
        )
        .unwrap_or_else(|error| panic!("member {member_id} did not spawn: {}", describe(&error)));
        let status = process.wait_for_exit(deadline).await;
        let log = std::fs::read_to_string(&member.log_path).unwrap_or_default();
        (status, log)
    }

    fn unstarted(
        binary: &ShardletBinary,
        member_id: u64,
        root: &Path,
        listen: SocketAddr,
        formation: &[String],
        options: &MemberOptions,
    ) -> Self {
        std::fs::create_dir_all(root).unwrap_or_else(|error| panic!("{}: {error}", root.display()));
        Self {
            member_id,
            address: String::new(),
            listen,
            binary: binary.clone(),
            options: options.clone(),
            data_dir: root.join(format!("member-{member_id}")),
            log_path: root.join(format!("member-{member_id}.log")),
            restart_arguments: if formation
                .iter()
                .any(|argument| argument == "--initial-members")
            {
                formation.to_vec()
            } else {
                Vec::new()
            },
            environment: Vec::new(),
            process: None,
        }
    }

    /// Sets (`Some`) or removes (`None`) a variable of the environment the member gets
    /// from its next start on (a test hook such as a paused snapshot install).
    pub fn set_environment(&mut self, name: &str, value: Option<&str>) {
        self.environment.retain(|(existing, _)| existing != name);
        if let Some(value) = value {
            self.environment.push((name.to_string(), value.to_string()));
        }
    }

    /// The process id while it runs (benchmarks read its `/proc/PID/status`).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::pid)
    }

    fn command(&self, formation: &[String]) -> std::process::Command {
        let mut command = self.binary.command();
        command
            .arg("meta")
            .args(["--member-id", &self.member_id.to_string()])
            .args(["--listen", &self.listen.to_string()])
            .arg("--data")
            .arg(&self.data_dir)
            .args(&self.options.arguments)
            .args(formation)
            .env(
                "SHARDLET_KEYS",
                crate::signing::role_key_file(&self.options.secret, "member"),
            )
            .env_remove("SHARDLET_CLUSTER_SECRET")
            .env("RUST_LOG", &self.options.log_filter)
            .envs(self.environment.iter().cloned());
        command
    }

    async fn spawn(&mut self, formation: &[String]) {
        assert!(
            self.process.is_none(),
            "member {} is already running",
            self.member_id
        );
        let log_offset = log_length(&self.log_path);
        let command = self.command(formation);
        let name = format!("member-{}", self.member_id);
        let started = match ChildProcess::spawn(&name, command, &self.log_path) {
            Ok(mut process) => {
                wait_announced_and_healthy(&mut process, log_offset, &mut self.listen)
                    .await
                    .map(|()| process)
            }
            Err(error) => Err(describe(&error)),
        };
        match started {
            Ok(process) => {
                self.address = self.listen.to_string();
                self.process = Some(process);
            }
            Err(reason) => panic!(
                "member {} did not start: {reason}; log: {}",
                self.member_id,
                self.log_tail()
            ),
        }
    }

    /// SIGKILL: no shutdown code runs, like a power cut for the process.
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Kills it if it runs, then starts it again on the same address and data (with
    /// `--initial-members` again if it was started with it, never with `--bootstrap`).
    pub async fn restart(&mut self) {
        self.kill();
        let formation = self.restart_arguments.clone();
        self.spawn(&formation).await;
    }

    /// SIGTERM, then waits up to `deadline` for it to exit: its exit status, or `None`
    /// if it still runs (it is then killed).
    pub async fn terminate(
        &mut self,
        deadline: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let mut process = self.process.take()?;
        process.terminate();
        let status = process.wait_for_exit(deadline).await;
        if status.is_none() {
            process.kill();
        }
        status
    }

    /// Its data directory (`ROOT/member-ID`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    pub fn log_tail(&self) -> String {
        crate::process::log_tail(
            &format!("member {}", self.member_id),
            &self.log_path,
            LOG_TAIL_LINES,
        )
    }
}

/// The key a metadata client signs with as `caller` (`admin`, `gateway`,
/// `controller`), made by the contract's derivation ([`crate::signing`]).
pub fn meta_client_key(secret: &str, caller: &str) -> shardlet_auth::SigningKey {
    let key = crate::signing::derive(secret, &format!("meta.{caller}"));
    let name = key.name.parse().expect("a key name of the contract");
    let material = shardlet_auth::Key::from_hex(&key.hex).expect("64 hex digits");
    shardlet_auth::SigningKey::new(name, material)
}
