//! The process harness for end-to-end tests: starts real `shardlet node` processes, each
//! on its own port and temporary data directory, and talks to them over real TCP.
//!
//! Included from each test file with `#[path = "../harness/mod.rs"] mod harness;`.
//! Every child is killed (SIGKILL, by PID) and reaped when its guard drops, so a failing
//! or panicking test never leaves a node behind; its stderr is printed on failure.
#![allow(dead_code, clippy::unwrap_used)]

pub mod cluster;
pub mod raw_http;
pub mod signing;

use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use raw_http::{Body, Request, Response};

/// Where process tests and benchmarks put whole clusters: `target/tmp/clusters`, marked
/// as a top of directory hierarchies (`chattr +T`), so that ext4 places each cluster's
/// directory in a different block group. Why: this machine class's root file system is
/// ext4 without a journal, where creating a file scans every free inode of its group that
/// was deleted in the last ~30 s; in `/tmp`, whose groups hold the inodes every test run
/// just deleted, one create measured 190–760 µs against ~20 µs in a fresh group — most of
/// a small PUT's CPU. Best effort: where the flag cannot be set, plain subdirectories.
pub fn clusters_root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clusters");
        std::fs::create_dir_all(&root).expect("target/tmp/clusters");
        if let Ok(directory) = std::fs::File::open(&root) {
            if let Ok(flags) = rustix::fs::ioctl_getflags(&directory) {
                let _ = rustix::fs::ioctl_setflags(&directory, flags | rustix::fs::IFlags::TOPDIR);
            }
        }
        root
    })
    .clone()
}

/// How long a node may take to answer `/health` after it was started.
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// Interval between two checks of a polled condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// What the node prints on stdout once it listens, followed by its address.
const LISTENING_ANNOUNCEMENT: &str = "listening on http://";

/// Polls `condition` until it holds or `deadline` passes; panics naming `what` on
/// timeout. Tests synchronise only with this, never with a bare sleep.
pub async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if condition().await {
            return;
        }
        if tokio::time::Instant::now() >= give_up {
            panic!("timed out after {deadline:?} waiting until {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A fresh, valid fragment id (random object, so ids never collide across tests).
pub fn random_fragment_id() -> String {
    use shardlet_core::{FragmentId, FragmentIndex, Generation, ObjectId, ShardletId};
    FragmentId::new(
        ShardletId::new(ObjectId::random(), 0),
        Generation(0),
        FragmentIndex(0),
    )
    .to_string()
}

/// Deterministic pseudo-random bytes, so a failing comparison is reproducible.
pub fn pattern_bytes(length: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub fn crc32c_hex(bytes: &[u8]) -> String {
    shardlet_core::Crc32c::of(bytes).to_string()
}

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
    /// The cluster secret; `None` makes a fresh random one for this node alone.
    pub secret: Option<String>,
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
        }
    }
}

/// A running (or crashed, or stopped) `shardlet node` child process.
pub struct NodeProcess {
    child: Option<Child>,
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
    pub async fn start(options: NodeOptions) -> Self {
        let root = match &options.parent_dir {
            Some(parent) => {
                std::fs::create_dir_all(parent).unwrap();
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
            child: None,
            options,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            secret,
            root,
            data_dir,
            log_path,
        };
        // Port 0: the node binds a free port itself and announces it on stdout, so
        // parallel tests never race for a port.
        if let Err(reason) = node.spawn_and_wait_healthy().await {
            panic!("node did not start: {reason}\n{}", node.log_text());
        }
        node
    }

    /// Starts the node again on the same data dir and port (after `kill_9` or `stop`).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "restart() of a node that still runs");
        if let Err(reason) = self.spawn_and_wait_healthy().await {
            panic!("node did not restart: {reason}\n{}", self.log_text());
        }
    }

    /// Every fragment the node holds, as (id, payload length), through its listing API,
    /// so both its files and its small-fragment store count. Empty while it is not running.
    pub async fn stored_fragments(&self) -> Vec<(String, u64)> {
        let mut stored = Vec::new();
        if self.child.is_none() {
            return stored;
        }
        let client = self.client();
        let mut after: Option<String> = None;
        loop {
            let page = client.list(after.as_deref(), Some(1000)).await;
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

    /// Crashes the node: SIGKILL, no chance to flush or clean up, then reaps it.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A node run under a wrapper (strace) is the wrapper's child: kill it too.
            let descendants = child_pids(child.id());
            let _ = child.kill();
            for pid in descendants {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (polling, bounded) for the exit status.
    pub async fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("a running node");
        let pid = rustix::process::Pid::from_child(child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM sent");
        let mut status = None;
        let give_up = tokio::time::Instant::now() + deadline;
        while status.is_none() {
            status = child.try_wait().expect("child status");
            if status.is_none() && tokio::time::Instant::now() >= give_up {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!(
                    "node did not exit within {deadline:?} of SIGTERM\n{}",
                    self.log_text()
                );
            }
            if status.is_none() {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        self.child = None;
        status.unwrap()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
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
        }
    }

    fn command(&self) -> Command {
        let node_binary = env!("CARGO_BIN_EXE_shardlet");
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
            .arg("--node-id")
            .arg(self.options.node_id.to_string());
        if let Some(reserve) = self.options.reserve_bytes {
            command.arg("--reserve-bytes").arg(reserve.to_string());
        }
        if let Some(max) = self.options.max_fragment_bytes {
            command.arg("--max-fragment-bytes").arg(max.to_string());
        }
        command
            .env("SHARDLET_CLUSTER_SECRET", &self.secret)
            .env("RUST_LOG", &self.options.log_filter)
            .stdin(Stdio::null());
        command
    }

    async fn spawn_and_wait_healthy(&mut self) -> Result<(), String> {
        let log_offset = std::fs::metadata(&self.log_path).map_or(0, |meta| meta.len()) as usize;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|error| format!("open log: {error}"))?;
        let log_for_stderr = log.try_clone().map_err(|error| error.to_string())?;
        let child = self
            .command()
            .stdout(log)
            .stderr(log_for_stderr)
            .spawn()
            .map_err(|error| format!("spawn {}: {error}", env!("CARGO_BIN_EXE_shardlet")))?;
        self.child = Some(child);
        let give_up = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            if self.address.port() == 0 {
                if let Some(address) = self.announced_address(log_offset) {
                    self.address = address;
                }
            }
            if self.address.port() != 0 {
                let health = raw_http::send(self.address, &Request::new("GET", "/health")).await;
                if matches!(&health, Ok(response) if response.status == 200) {
                    return Ok(());
                }
            }
            let child = self.child.as_mut().expect("spawned above");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!("exited during start-up ({status})"));
            }
            if tokio::time::Instant::now() >= give_up {
                self.kill_9();
                return Err(format!("no healthy /health within {START_DEADLINE:?}"));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl NodeProcess {
    /// The address announced in the log since `offset` (the start of this run).
    fn announced_address(&self, offset: usize) -> Option<SocketAddr> {
        let log = std::fs::read(&self.log_path).ok()?;
        let text = String::from_utf8_lossy(log.get(offset..)?);
        let line = text
            .lines()
            .find(|line| line.contains(LISTENING_ANNOUNCEMENT))?;
        let (_, rest) = line.split_once(LISTENING_ANNOUNCEMENT)?;
        rest.split_whitespace()
            .next()?
            .trim_end_matches('/')
            .parse()
            .ok()
    }
}

impl Drop for NodeProcess {
    /// Kills the node, and fails the test if the node died on its own or panicked
    /// anywhere (a panic in a request task would otherwise go unnoticed: the process
    /// survives it, but bad input must never panic).
    fn drop(&mut self) {
        let exited_on_its_own = self
            .child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten());
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

/// Children of every thread of process `pid` (from `/proc`), empty if it has none.
fn child_pids(pid: u32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Signed (or deliberately unsigned) requests to one node, following the contract.
#[derive(Clone, Debug)]
pub struct NodeHttp {
    pub address: SocketAddr,
    pub secret: String,
}

/// How a request is authenticated.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Signed { secret: String, time: SystemTime },
}

impl NodeHttp {
    pub fn auth(&self) -> Auth {
        Auth::Signed {
            secret: self.secret.clone(),
            time: SystemTime::now(),
        }
    }

    /// Sends `request` with `auth`; panics only if the node cannot be reached.
    pub async fn send_with(&self, mut request: Request, auth: Auth) -> Response {
        if let Auth::Signed { secret, time } = auth {
            let host = self.address.to_string();
            let added = signing::signature_headers(
                &secret,
                time,
                &request.method,
                &host,
                &request.target,
                &request.headers,
            );
            request.headers.extend(added);
        }
        raw_http::send(self.address, &request)
            .await
            .unwrap_or_else(|error| panic!("{} {}: {error}", request.method, request.target))
    }

    pub async fn send(&self, request: Request) -> Response {
        self.send_with(request, self.auth()).await
    }

    pub async fn put(&self, id: &str, bytes: &[u8]) -> Response {
        self.send(put_request(id, bytes)).await
    }

    pub async fn get(&self, id: &str) -> Response {
        self.send(Request::new("GET", &format!("/v1/fragments/{id}")))
            .await
    }

    pub async fn get_range(&self, id: &str, range: &str) -> Response {
        self.send(Request::new("GET", &format!("/v1/fragments/{id}")).header("range", range))
            .await
    }

    pub async fn head(&self, id: &str) -> Response {
        self.send(Request::new("HEAD", &format!("/v1/fragments/{id}")))
            .await
    }

    pub async fn delete(&self, id: &str) -> Response {
        self.send(Request::new("DELETE", &format!("/v1/fragments/{id}")))
            .await
    }

    pub async fn list(&self, after: Option<&str>, limit: Option<usize>) -> Response {
        let mut query = Vec::new();
        if let Some(after) = after {
            query.push(format!("after={after}"));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        let target = if query.is_empty() {
            "/v1/fragments".to_string()
        } else {
            format!("/v1/fragments?{}", query.join("&"))
        };
        self.send(Request::new("GET", &target)).await
    }

    pub async fn health(&self) -> serde_json::Value {
        let response = self
            .send_with(Request::new("GET", "/health"), Auth::None)
            .await;
        assert_eq!(response.status, 200, "/health answers 200");
        response.json()
    }

    pub async fn metrics(&self) -> String {
        let response = self
            .send_with(Request::new("GET", "/metrics"), Auth::None)
            .await;
        assert_eq!(response.status, 200, "/metrics answers 200");
        String::from_utf8(response.body).expect("metrics are UTF-8 text")
    }
}

/// A contract-conforming PUT: `Content-Length` and the body's CRC32C header.
pub fn put_request(id: &str, bytes: &[u8]) -> Request {
    Request::new("PUT", &format!("/v1/fragments/{id}"))
        .header("x-shardlet-crc32c", &crc32c_hex(bytes))
        .body(Body::Full(bytes.to_vec()))
}

/// The sum of every sample of a Prometheus metric family (all label sets), or `None`
/// if the family has no sample in `text`.
pub fn metric_total(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next()?.parse::<f64>().ok()?;
        total = Some(total.unwrap_or(0.0) + value);
    }
    total
}

/// Every regular file under `root`, recursively (for "nothing else was touched" checks).
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
