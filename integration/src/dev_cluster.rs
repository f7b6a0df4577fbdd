//! `shardlet dev` exactly as a developer runs it, on ports the test picked, with its
//! printed `export AWS_...` lines parsed, to check the documented first-run
//! experience (and to benchmark the cluster a developer gets).
//!
//! On drop, `shardlet dev` gets SIGTERM — the documented way to stop it, which stops
//! its children itself — and whatever it left running is killed by the pids it
//! recorded; on a panic the tail of every log is printed.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::binary::ShardletBinary;
use crate::local_cluster::component_pid_path;
use crate::poll::{poll_until, POLL_INTERVAL};
use crate::ports::free_port_run;
use crate::process::{is_alive, log_tail, ChildProcess};
use crate::s3_client::S3Access;
use crate::service::{LOG_TAIL_LINES, START_DEADLINE};

/// How long `shardlet dev` gets to stop its children after SIGTERM before SIGKILL (it
/// gives them 15 s itself).
const DEV_STOP_DEADLINE: Duration = Duration::from_secs(20);
/// How many storage nodes `shardlet dev` starts with its default topology.
pub const DEV_NODE_COUNT: u16 = 12;

/// `shardlet dev` as a developer runs it, on ports this test picked.
pub struct DevCluster {
    process: Option<ChildProcess>,
    pub access: S3Access,
    pub ports: DevPorts,
    pub data: PathBuf,
    /// Last field: removed after the processes stopped.
    pub root: tempfile::TempDir,
}

/// The ports one `shardlet dev` listens on.
#[derive(Clone, Copy, Debug)]
pub struct DevPorts {
    pub s3: u16,
    /// The gateway's admin port (`/metrics`).
    pub gateway_admin: u16,
    pub meta: u16,
    /// Node N listens on `node_base + N - 1` ([`DEV_NODE_COUNT`] nodes).
    pub node_base: u16,
    pub controller: u16,
}

impl DevPorts {
    /// Ports nobody listens on right now: `shardlet dev` needs fixed ports (its topology
    /// names them), so there is a small window in which another process could take one;
    /// the start-up then fails loudly rather than silently.
    pub fn free() -> Self {
        Self {
            s3: free_port_run(1),
            gateway_admin: free_port_run(1),
            meta: free_port_run(1),
            node_base: free_port_run(DEV_NODE_COUNT),
            controller: free_port_run(1),
        }
    }
}

/// `shardlet dev --data DATA` on `ports` (stdin, stdout and stderr are the caller's to
/// set), logging at `info` (every component inherits `RUST_LOG`).
pub fn dev_command(binary: &ShardletBinary, data: &Path, ports: &DevPorts) -> Command {
    dev_command_logging(binary, data, ports, "info")
}

/// [`dev_command`] with `RUST_LOG` set to `log_filter` for it and every component.
pub fn dev_command_logging(
    binary: &ShardletBinary,
    data: &Path,
    ports: &DevPorts,
    log_filter: &str,
) -> Command {
    let mut command = binary.command();
    command
        .arg("dev")
        .arg("--data")
        .arg(data)
        .args(["--s3-port", &ports.s3.to_string()])
        .args(["--gateway-admin-port", &ports.gateway_admin.to_string()])
        .args(["--meta-port", &ports.meta.to_string()])
        .args(["--node-base-port", &ports.node_base.to_string()])
        .args(["--controller-port", &ports.controller.to_string()])
        .env("RUST_LOG", log_filter)
        // Its own cluster secret and keys only, never ones from the environment.
        .env_remove("SHARDLET_CLUSTER_SECRET")
        .env_remove("SHARDLET_KEYS");
    command
}

impl DevCluster {
    /// Starts `shardlet dev` (stdout and stderr to `ROOT/dev.stdout`) and waits until it
    /// printed the S3 credentials.
    pub async fn start(binary: &ShardletBinary) -> Self {
        Self::start_with(binary, &[], "info").await
    }

    /// [`Self::start`] with `RUST_LOG=log_filter` for `shardlet dev` and its components.
    pub async fn start_logging(binary: &ShardletBinary, log_filter: &str) -> Self {
        Self::start_with(binary, &[], log_filter).await
    }

    /// `shardlet dev --tls`: every port over HTTPS, certificates from a local CA in
    /// `DATA/tls` ([`Self::ca_path`]).
    pub async fn start_tls(binary: &ShardletBinary) -> Self {
        Self::start_with(binary, &["--tls"], "info").await
    }

    /// [`Self::start`] with more arguments for `shardlet dev` (e.g. `--predictor-model
    /// DIR --predictor-port N`).
    pub async fn start_with_arguments(binary: &ShardletBinary, arguments: &[&str]) -> Self {
        Self::start_with(binary, arguments, "info").await
    }

    /// The local CA `shardlet dev --tls` made.
    pub fn ca_path(&self) -> PathBuf {
        self.data.join("tls").join("ca.pem")
    }

    async fn start_with(
        binary: &ShardletBinary,
        extra_arguments: &[&str],
        log_filter: &str,
    ) -> Self {
        let root = Self::new_root(binary);
        let stdout_path = root.path().join("dev.stdout");
        let data = root.path().join("data");
        let ports = DevPorts::free();
        let mut command = dev_command_logging(binary, &data, &ports, log_filter);
        command.args(extra_arguments);
        let tls = extra_arguments.contains(&"--tls");
        let process = ChildProcess::spawn("dev", command, &stdout_path)
            .unwrap_or_else(|error| panic!("shardlet dev does not start: {error}"));
        let mut dev = Self::new(process, ports, data, root);
        dev.wait_for_credentials(&stdout_path, tls).await;
        dev
    }

    /// Stops `shardlet dev` (SIGTERM) and starts it again on the same data and ports, as
    /// a second `make run` does; waits until it printed the S3 credentials again.
    pub async fn restart(&mut self, binary: &ShardletBinary) {
        let status = self.terminate(DEV_STOP_DEADLINE).await;
        assert!(status.success(), "shardlet dev stopped with {status}");
        let stdout_path = self.root.path().join("dev-restarted.stdout");
        let command = dev_command(binary, &self.data, &self.ports);
        self.process = Some(
            ChildProcess::spawn("dev", command, &stdout_path)
                .unwrap_or_else(|error| panic!("shardlet dev does not start again: {error}")),
        );
        self.wait_for_credentials(&stdout_path, false).await;
    }

    /// Waits until `shardlet dev` printed its S3 credentials to `stdout_path`, and keeps
    /// them; panics if it exits first or takes too long.
    async fn wait_for_credentials(&mut self, stdout_path: &Path, tls: bool) {
        let deadline = START_DEADLINE * 2;
        let give_up = tokio::time::Instant::now() + deadline;
        let printed = poll_until(give_up, POLL_INTERVAL, || {
            let exited = self.exit_status();
            let printed = std::fs::read_to_string(stdout_path).unwrap_or_default();
            async move {
                if let Some(status) = exited {
                    panic!("shardlet dev exited during start-up ({status})\n{printed}");
                }
                printed_access(&printed)
            }
        })
        .await;
        self.access = printed.unwrap_or_else(|_| {
            panic!(
                "shardlet dev printed no credentials within {deadline:?}\n{}",
                std::fs::read_to_string(stdout_path).unwrap_or_default()
            )
        });
        let scheme = if tls { "https" } else { "http" };
        assert_eq!(
            self.access.endpoint,
            format!("{scheme}://127.0.0.1:{}", self.ports.s3),
            "the printed endpoint is on --s3-port"
        );
    }

    /// A fresh directory for one `shardlet dev` (its data goes in `ROOT/data`).
    pub fn new_root(binary: &ShardletBinary) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("shardlet-dev-")
            .tempdir_in(binary.clusters_root())
            .expect("a temporary directory")
    }

    /// Spawns `shardlet dev` with data in `root/data` and the given stdout and stderr,
    /// without waiting for anything. `access` stays empty.
    pub fn spawn_in(
        binary: &ShardletBinary,
        root: tempfile::TempDir,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Self {
        Self::spawn_in_with(binary, root, stdout, stderr, |_| {})
    }

    /// [`Self::spawn_in`], with `adjust` changing the command first (e.g. the
    /// environment `shardlet dev` inherits).
    pub fn spawn_in_with(
        binary: &ShardletBinary,
        root: tempfile::TempDir,
        stdout: Stdio,
        stderr: Stdio,
        adjust: impl FnOnce(&mut Command),
    ) -> Self {
        let data = root.path().join("data");
        let ports = DevPorts::free();
        let mut command = dev_command(binary, &data, &ports);
        adjust(&mut command);
        let process = ChildProcess::spawn_with_output("dev", command, stdout, stderr)
            .unwrap_or_else(|error| panic!("shardlet dev does not start: {error}"));
        Self::new(process, ports, data, root)
    }

    fn new(process: ChildProcess, ports: DevPorts, data: PathBuf, root: tempfile::TempDir) -> Self {
        Self {
            process: Some(process),
            access: S3Access {
                endpoint: String::new(),
                access_key: String::new(),
                secret_key: String::new(),
                region: String::new(),
            },
            ports,
            data,
            root,
        }
    }

    /// `shardlet dev`'s exit status if it has exited (it is reaped then).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.process.as_mut()?.exit_status()
    }

    /// Sends SIGTERM to `shardlet dev` and waits for it to exit; panics (with the logs)
    /// if it does not within `deadline`.
    pub async fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let process = self.process.as_mut().expect("shardlet dev was started");
        process.terminate();
        match process.wait_for_exit(deadline).await {
            Some(status) => status,
            None => panic!(
                "shardlet dev did not exit within {deadline:?} of SIGTERM\n{}",
                self.logs()
            ),
        }
    }

    /// The pid `shardlet dev` recorded for a component (`gateway`, `meta`, `node-3`).
    pub fn component_pid(&self, name: &str) -> u32 {
        let path = component_pid_path(&self.logs_dir(), name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            .trim()
            .parse()
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    }

    /// Every component `shardlet dev` recorded (`logs/NAME.pid`) by name, with its pid.
    pub fn components(&self) -> Vec<(String, u32)> {
        let Ok(entries) = std::fs::read_dir(self.logs_dir()) else {
            return Vec::new();
        };
        let mut components: Vec<(String, u32)> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "pid"))
            .filter_map(|path| {
                let name = path.file_stem()?.to_string_lossy().into_owned();
                let pid = std::fs::read_to_string(&path).ok()?.trim().parse().ok()?;
                Some((name, pid))
            })
            .collect();
        components.sort();
        components
    }

    /// The recorded components whose process is still running.
    pub fn running_components(&self) -> Vec<String> {
        self.components()
            .into_iter()
            .filter(|(_, pid)| shardlet_running(*pid))
            .map(|(name, _)| name)
            .collect()
    }

    /// The tails of `shardlet dev`'s own output and of every component's log.
    pub fn logs(&self) -> String {
        let mut text = log_tail("dev", &self.root.path().join("dev.stdout"), LOG_TAIL_LINES);
        if let Ok(entries) = std::fs::read_dir(self.logs_dir()) {
            let mut paths: Vec<PathBuf> = entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e == "log"))
                .collect();
            paths.sort();
            for path in paths {
                let name = path
                    .file_stem()
                    .map(|stem| stem.to_string_lossy().into_owned())
                    .unwrap_or_default();
                text.push_str(&log_tail(&name, &path, LOG_TAIL_LINES));
            }
        }
        text
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.data.join("logs")
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        let components = self.components();
        if let Some(mut process) = self.process.take() {
            process.stop_blocking(DEV_STOP_DEADLINE);
        }
        // If it did not stop them, its children (started for this test) go by pid.
        for (_, pid) in components {
            if shardlet_running(pid) {
                if let Some(pid) = i32::try_from(pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
    }
}

/// The S3 access `shardlet dev` printed as `export AWS_...=` lines, once all four are
/// there.
fn printed_access(printed: &str) -> Option<S3Access> {
    let export = |name: &str| {
        let prefix = format!("export {name}=");
        printed
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(str::to_string)
    };
    Some(S3Access {
        endpoint: export("AWS_ENDPOINT_URL")?,
        access_key: export("AWS_ACCESS_KEY_ID")?,
        secret_key: export("AWS_SECRET_ACCESS_KEY")?,
        region: export("AWS_REGION")?,
    })
}

/// Whether `pid` is a live (not zombie) `shardlet` process: a recorded pid reused by
/// another program must not be killed.
fn shardlet_running(pid: u32) -> bool {
    is_alive(pid)
        && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.contains("shardlet"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_is_read_once_all_four_exports_were_printed() {
        let partial = "# Shardlet dev is running\nexport AWS_ENDPOINT_URL=http://127.0.0.1:9000\n";
        assert!(printed_access(partial).is_none());
        let complete = format!(
            "{partial}export AWS_ACCESS_KEY_ID=AK\nexport AWS_SECRET_ACCESS_KEY=SK\nexport AWS_REGION=us-east-1\n"
        );
        let access = printed_access(&complete).unwrap();
        assert_eq!(
            (
                access.endpoint.as_str(),
                access.access_key.as_str(),
                access.secret_key.as_str(),
                access.region.as_str()
            ),
            ("http://127.0.0.1:9000", "AK", "SK", "us-east-1")
        );
    }
}
