//! One child process: its stdout and stderr appended to a log file, its pid, a stop that
//! asks first (SIGTERM), waits a bounded grace and then insists (SIGKILL), and a guard
//! that kills it and every process it started when dropped, so that neither `shardlet
//! dev` nor a failing test leaves a process behind.
//!
//! Production layer (`shardlet dev` runs on it): failures are returned, never panics.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};

use crate::poll::{poll_until, poll_until_blocking, POLL_INTERVAL};

/// How much of the end of a log [`ChildProcess::log_tail`] reads: a tail of a huge log
/// stays cheap.
const LOG_TAIL_BYTES_MAX: u64 = 1 << 20;
/// Bounds the process tree walked when killing descendants (a fork bomb must not make
/// the kill loop forever).
const DESCENDANTS_MAX: usize = 4096;

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot open {}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        error: io::Error,
    },
    #[error("cannot start {name}")]
    Spawn {
        name: String,
        #[source]
        error: io::Error,
    },
}

/// How a [`ChildProcess::stop`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It exited within the grace period (or had exited before).
    Exited(ExitStatus),
    /// It was still running at the end of the grace period and got SIGKILL.
    Killed,
}

/// A running (or exited) child process; killed, with its children, when dropped.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    pid: u32,
    /// `None` once reaped.
    child: Option<Child>,
    exit_status: Option<ExitStatus>,
    log_path: Option<PathBuf>,
}

impl ChildProcess {
    /// Spawns `command` with stdin from `/dev/null` and stdout and stderr appended to
    /// `log_path` (created if missing; a restarted process continues the same log).
    pub fn spawn(name: &str, command: Command, log_path: &Path) -> Result<Self, SpawnError> {
        let log_error = |error| SpawnError::Log {
            path: log_path.to_path_buf(),
            error,
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(log_error)?;
        let log_for_stderr = log.try_clone().map_err(log_error)?;
        let mut process =
            Self::spawn_with_output(name, command, log.into(), log_for_stderr.into())?;
        process.log_path = Some(log_path.to_path_buf());
        Ok(process)
    }

    /// Spawns `command` with stdin from `/dev/null` and the given stdout and stderr; it
    /// has no log of its own then.
    pub fn spawn_with_output(
        name: &str,
        mut command: Command,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<Self, SpawnError> {
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|error| SpawnError::Spawn {
                name: name.to_string(),
                error,
            })?;
        Ok(Self {
            name: name.to_string(),
            pid: child.id(),
            child: Some(child),
            exit_status: None,
            log_path: None,
        })
    }

    /// Writes the pid to `path` (one line), for whoever looks for the process from
    /// outside: an operator, a test that `kill -9`s one component of `shardlet dev`.
    pub fn write_pid_file(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, format!("{}\n", self.pid))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// Its exit status once it has exited (it is reaped then); `None` while it runs.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                self.exit_status = Some(status);
                self.child = None;
            }
        }
        self.exit_status
    }

    pub fn is_running(&mut self) -> bool {
        self.exit_status();
        self.child.is_some()
    }

    /// Asks it to stop (SIGTERM) and returns at once.
    pub fn terminate(&self) {
        if self.child.is_some() {
            send(self.pid, Signal::TERM);
        }
    }

    /// Its exit status once it exits, or `None` if it still runs after `deadline`.
    pub async fn wait_for_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let give_up = tokio::time::Instant::now() + deadline;
        poll_until(give_up, POLL_INTERVAL, || {
            let status = self.exit_status();
            async move { status }
        })
        .await
        .ok()
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL (to it and its children).
    pub async fn stop(&mut self, grace: Duration) -> Stopped {
        self.terminate();
        match self.wait_for_exit(grace).await {
            Some(status) => Stopped::Exited(status),
            None => {
                self.kill();
                Stopped::Killed
            }
        }
    }

    /// [`Self::stop`] for code that cannot await (a `Drop`): blocks the calling thread.
    pub fn stop_blocking(&mut self, grace: Duration) -> Stopped {
        self.terminate();
        let give_up = std::time::Instant::now() + grace;
        match poll_until_blocking(give_up, POLL_INTERVAL, || self.exit_status()) {
            Ok(status) => Stopped::Exited(status),
            Err(_) => {
                self.kill();
                Stopped::Killed
            }
        }
    }

    /// SIGKILL — no chance to flush or clean up — to it and to every process it started
    /// (a wrapper such as `strace` runs the real server as its child), then reaps it.
    /// Does nothing once it has exited.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Collected before the kill: once the child is dead its children are re-parented
        // and no longer found under its pid.
        let descendants = descendants(self.pid);
        let _ = child.kill();
        for pid in descendants {
            send(pid, Signal::KILL);
        }
        if let Ok(status) = child.wait() {
            self.exit_status = Some(status);
        }
    }

    /// The last `lines` lines of its log, framed with its name and path, for failure
    /// messages; says so when it has no log or the log cannot be read.
    pub fn log_tail(&self, lines: usize) -> String {
        match &self.log_path {
            Some(path) => log_tail(&self.name, path, lines),
            None => format!(
                "----- {} has no log (its output went elsewhere) -----\n",
                self.name
            ),
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of the file at `path` (reading at most its last MiB), framed
/// with `name` and the path.
pub fn log_tail(name: &str, path: &Path, lines: usize) -> String {
    let text = read_end(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    format!(
        "----- last {} lines of {name} ({}) -----\n{}\n----- end of {name} -----\n",
        tail.len(),
        path.display(),
        tail.join("\n")
    )
}

fn read_end(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES_MAX)))?;
    let mut bytes = Vec::new();
    file.take(LOG_TAIL_BYTES_MAX).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
fn send(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, signal);
    }
}

/// Every live descendant of `pid` (children of each of its threads, recursively, from
/// `/proc`), at most [`DESCENDANTS_MAX`].
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut found = BTreeSet::new();
    let mut pending = vec![pid];
    while let Some(parent) = pending.pop() {
        for child in children(parent) {
            if found.len() >= DESCENDANTS_MAX {
                break;
            }
            if found.insert(child) {
                pending.push(child);
            }
        }
    }
    found.into_iter().collect()
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Whether `pid` is a live process: it exists and is neither a zombie nor dead (a killed
/// grandchild stays a zombie until its new parent reaps it).
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state is the first field after the parenthesised command name.
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    !matches!(state, None | Some('Z' | 'X' | 'x'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sh` that starts a long `sleep` in the background, records its pid and waits.
    fn shell_with_a_grandchild(pid_file: &Path) -> Command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(format!(
            "sleep 600 & echo $! > {}; wait",
            pid_file.display()
        ));
        command
    }

    async fn grandchild_pid(pid_file: &Path) -> u32 {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
        poll_until(give_up, POLL_INTERVAL, || async {
            std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
        })
        .await
        .expect("the shell recorded its child's pid")
    }

    #[tokio::test]
    async fn dropping_a_child_process_kills_it_and_its_children() {
        let directory = tempfile::tempdir().unwrap();
        let pid_file = directory.path().join("grandchild.pid");
        let process = ChildProcess::spawn(
            "shell",
            shell_with_a_grandchild(&pid_file),
            &directory.path().join("shell.log"),
        )
        .unwrap();
        let child = process.pid();
        let grandchild = grandchild_pid(&pid_file).await;
        assert!(is_alive(child) && is_alive(grandchild));
        drop(process);
        // The child was reaped by the drop; the grandchild, re-parented, is reaped by
        // its new parent at some point, so only its liveness is checked.
        let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
        let gone = poll_until(give_up, POLL_INTERVAL, || async {
            !is_alive(child) && !is_alive(grandchild)
        })
        .await;
        assert!(
            gone.is_ok(),
            "child {child} or grandchild {grandchild} survived the drop"
        );
    }

    #[tokio::test]
    async fn stop_ends_a_child_that_obeys_sigterm_within_the_grace() {
        let directory = tempfile::tempdir().unwrap();
        let mut command = Command::new("sleep");
        command.arg("600");
        let mut process =
            ChildProcess::spawn("sleep", command, &directory.path().join("sleep.log")).unwrap();
        assert!(process.is_running());
        match process.stop(Duration::from_secs(30)).await {
            Stopped::Exited(status) => assert!(!status.success(), "killed by SIGTERM: {status}"),
            Stopped::Killed => panic!("sleep ignored SIGTERM"),
        }
        assert!(!process.is_running());
    }

    #[tokio::test]
    async fn stop_kills_a_child_that_ignores_sigterm_once_the_grace_is_over() {
        let directory = tempfile::tempdir().unwrap();
        let ready = directory.path().join("ready");
        let mut command = Command::new("sh");
        // The trap is in place before `ready` exists, so SIGTERM is ignored from then on.
        command.arg("-c").arg(format!(
            "trap '' TERM; touch {}; while true; do sleep 1; done",
            ready.display()
        ));
        let mut process =
            ChildProcess::spawn("stubborn", command, &directory.path().join("stubborn.log"))
                .unwrap();
        let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
        poll_until(give_up, POLL_INTERVAL, || async { ready.exists() })
            .await
            .unwrap();
        let started = std::time::Instant::now();
        assert_eq!(
            process.stop(Duration::from_millis(300)).await,
            Stopped::Killed
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(!process.is_running());
    }

    #[test]
    fn the_log_holds_stdout_and_stderr_and_its_tail_the_last_lines() {
        let directory = tempfile::tempdir().unwrap();
        let log = directory.path().join("printer.log");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("for n in 1 2 3 4 5; do echo out $n; echo err $n >&2; done");
        let mut process = ChildProcess::spawn("printer", command, &log).unwrap();
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        let status = poll_until_blocking(give_up, POLL_INTERVAL, || process.exit_status());
        assert!(status.unwrap().success());
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("out 1") && text.contains("err 5"), "{text}");
        let tail = process.log_tail(2);
        assert!(tail.contains("last 2 lines of printer"), "{tail}");
        assert!(
            tail.contains("out 5\nerr 5") && !tail.contains("out 4"),
            "{tail}"
        );
    }

    #[test]
    fn a_missing_program_is_an_error_naming_the_process() {
        let directory = tempfile::tempdir().unwrap();
        let error = ChildProcess::spawn(
            "ghost",
            Command::new(directory.path().join("no-such-program")),
            &directory.path().join("ghost.log"),
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "cannot start ghost");
    }
}
