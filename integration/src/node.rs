//! A real `shardlet node` as a child process of a test: its own port (port 0, then the
//! announced one) and its own temporary directory, talked to over real TCP.
//!
//! The node is killed (SIGKILL, by PID, with any wrapper such as `strace`) and reaped
//! when its guard drops, so a failing or panicking test never leaves a node behind; its
//! log is printed on failure, and a node that died on its own or panicked anywhere
//! fails the test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::binary::ShardletBinary;
use crate::node_http::NodeHttp;
use crate::process::ChildProcess;
use crate::service::{describe, log_length, wait_announced_and_healthy};

/// How many fragments one listing page asks for.
const LIST_PAGE_FRAGMENTS: usize = 1000;

/// Options of one node process; `Default` is what the contract calls the defaults.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub node_id: u32,
    pub reserve_bytes: Option<u64>,
    pub max_fragment_bytes: Option<u64>,
    /// Where the temporary directory (data and logs) lives; `None` is the system temp.
    pub parent_dir: Option<PathBuf>,
    /// `RUST_LOG` for the child.
    pub log_filter: String,
    /// Runs the node under `strace -f`, writing the file-system and socket system calls
    /// it makes to this file (for durability-order checks).
    pub trace_syscalls_to: Option<PathBuf>,
    /// The cluster secret (the node is handed only its own key, derived from it);
    /// `None` makes a fresh random one for this node alone.
    pub secret: Option<String>,
    /// More `shardlet node` flags (e.g. the port's `--connections-max`).
    pub extra_arguments: Vec<String>,
    /// `--replay-cache-entries-max`: nonces the node remembers (`None`: its default).
    pub replay_cache_entries_max: Option<usize>,
}

impl NodeOptions {
    /// The node's name (`shardlet node --name`): its number, so its key is `node-N` as
    /// the tests spell it (a DNS label may be all digits).
    pub fn name(&self) -> String {
        self.node_id.to_string()
    }
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            node_id: 1,
            reserve_bytes: Some(0),
            max_fragment_bytes: None,
            parent_dir: None,
            log_filter: "info".to_string(),
            trace_syscalls_to: None,
            secret: None,
            extra_arguments: Vec::new(),
            replay_cache_entries_max: None,
        }
    }
}

/// A running (or crashed, or stopped) `shardlet node` child process.
pub struct NodeProcess {
    process: Option<ChildProcess>,
    binary: ShardletBinary,
    pub options: NodeOptions,
    pub address: SocketAddr,
    pub secret: String,
    /// Holds `data/` (the node's data dir), `node.log` (its stdout and stderr, appended
    /// across restarts) and room for files the tests plant next to the data dir.
    pub root: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
}

impl NodeProcess {
    pub async fn start(binary: &ShardletBinary, options: NodeOptions) -> Self {
        let root = match &options.parent_dir {
            Some(parent) => {
                std::fs::create_dir_all(parent)
                    .unwrap_or_else(|error| panic!("{}: {error}", parent.display()));
                tempfile::Builder::new()
                    .prefix("shardlet-node-")
                    .tempdir_in(parent)
            }
            None => tempfile::Builder::new().prefix("shardlet-node-").tempdir(),
        }
        .expect("a temporary directory");
        let data_dir = root.path().join("data");
        let log_path = root.path().join("node.log");
        let secret = options
            .secret
            .clone()
            .unwrap_or_else(|| hex::encode(rand::random::<[u8; 32]>()));
        let mut node = Self {
            process: None,
            binary: binary.clone(),
            options,
            // Port 0: the node binds a free port itself and announces it, so parallel
            // tests never race for a port.
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            secret,
            root,
            data_dir,
            log_path,
        };
        if let Err(reason) = node.spawn_and_wait_healthy().await {
            panic!("node did not start: {reason}\n{}", node.log_text());
        }
        node
    }

    /// Starts the node again on the same data dir and port (after `kill_9` or `stop`).
    pub async fn restart(&mut self) {
        assert!(
            self.process.is_none(),
            "restart() of a node that still runs"
        );
        if let Err(reason) = self.spawn_and_wait_healthy().await {
            panic!("node did not restart: {reason}\n{}", self.log_text());
        }
    }

    /// Every fragment the node holds, as (id, payload length), through its listing API,
    /// so both its files and its small-fragment store count. Empty while it is not running.
    pub async fn stored_fragments(&self) -> Vec<(String, u64)> {
        let mut stored = Vec::new();
        if self.process.is_none() {
            return stored;
        }
        let client = self.client();
        let mut after: Option<String> = None;
        loop {
            let page = client
                .list(after.as_deref(), Some(LIST_PAGE_FRAGMENTS))
                .await;
            assert_eq!(
                page.status,
                200,
                "listing fragments: {}",
                String::from_utf8_lossy(&page.body)
            );
            let page = page.json();
            for fragment in page["fragments"].as_array().into_iter().flatten() {
                if let (Some(id), Some(length)) =
                    (fragment["id"].as_str(), fragment["length"].as_u64())
                {
                    stored.push((id.to_string(), length));
                }
            }
            match page["next_after"].as_str() {
                Some(next) => after = Some(next.to_string()),
                None => return stored,
            }
        }
    }

    /// Crashes the node: SIGKILL (to a wrapper such as strace and the node under it), no
    /// chance to flush or clean up, then reaps it.
    pub fn kill_9(&mut self) {
        self.process = None;
    }

    /// Sends SIGTERM and waits (polling, bounded) for the exit status.
    pub async fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let process = self.process.as_mut().expect("a running node");
        process.terminate();
        let status = process.wait_for_exit(deadline).await;
        self.process = None;
        status.unwrap_or_else(|| {
            panic!(
                "node did not exit within {deadline:?} of SIGTERM\n{}",
                self.log_text()
            )
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::pid)
    }

    /// The whole log (every run of this node), framed, for failure messages.
    pub fn log_text(&self) -> String {
        let text = std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        format!(
            "----- node log {} -----\n{text}\n----- end of node log -----",
            self.log_path.display()
        )
    }

    /// Where the contract says a fragment lives: `DATA/fragments/<2 hex>/<id>`.
    pub fn fragment_path(&self, id: &str) -> PathBuf {
        self.data_dir.join("fragments").join(&id[..2]).join(id)
    }

    pub fn client(&self) -> NodeHttp {
        NodeHttp {
            address: self.address,
            secret: self.secret.clone(),
            name: self.options.name(),
        }
    }

    fn command(&self) -> Command {
        let node_binary = self.binary.path();
        let mut command = match &self.options.trace_syscalls_to {
            None => Command::new(node_binary),
            Some(trace_path) => {
                let mut strace = Command::new("strace");
                strace
                    .args(["-f", "-qq", "-yy", "-s", "24", "-o"])
                    .arg(trace_path)
                    .arg("-e")
                    .arg(
                        "trace=fdatasync,fsync,rename,renameat,renameat2,unlink,unlinkat,\
                         write,writev,sendto,sendmsg",
                    )
                    .arg("--")
                    .arg(node_binary);
                strace
            }
        };
        command
            .arg("node")
            .arg("--listen")
            .arg(self.address.to_string())
            .arg("--data")
            .arg(&self.data_dir)
            .arg("--name")
            .arg(self.options.name());
        if let Some(reserve) = self.options.reserve_bytes {
            command.arg("--reserve-bytes").arg(reserve.to_string());
        }
        if let Some(max) = self.options.max_fragment_bytes {
            command.arg("--max-fragment-bytes").arg(max.to_string());
        }
        if let Some(max) = self.options.replay_cache_entries_max {
            command
                .arg("--replay-cache-entries-max")
                .arg(max.to_string());
        }
        command.args(&self.options.extra_arguments);
        // The node gets only its own key, as in production (the contract's derivation).
        let role = format!("node-{}", self.options.name());
        command
            .env(crate::binary::PLAINTEXT_VARIABLE, "true")
            .env(
                "SHARDLET_KEYS",
                crate::signing::role_key_file(&self.secret, &role),
            )
            .env_remove("SHARDLET_CLUSTER_SECRET")
            .env("RUST_LOG", &self.options.log_filter);
        command
    }

    async fn spawn_and_wait_healthy(&mut self) -> Result<(), String> {
        let log_offset = log_length(&self.log_path);
        let name = format!("node-{}", self.options.node_id);
        let mut process = ChildProcess::spawn(&name, self.command(), &self.log_path)
            .map_err(|error| describe(&error))?;
        wait_announced_and_healthy(&mut process, log_offset, &mut self.address).await?;
        self.process = Some(process);
        Ok(())
    }
}

impl Drop for NodeProcess {
    /// Kills the node, and fails the test if the node died on its own or panicked
    /// anywhere (a panic in a request task would otherwise go unnoticed: the process
    /// survives it, but bad input must never panic).
    fn drop(&mut self) {
        let exited_on_its_own = self.process.as_mut().and_then(ChildProcess::exit_status);
        self.kill_9();
        if std::thread::panicking() {
            eprintln!("{}", self.log_text());
            return;
        }
        let log = self.log_text();
        if let Some(status) = exited_on_its_own {
            panic!("the node exited on its own during the test ({status})\n{log}");
        }
        if log.contains("panicked at") {
            panic!("the node panicked during the test\n{log}");
        }
    }
}
