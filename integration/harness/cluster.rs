//! A whole Shardlet cluster of real processes for the gateway's end-to-end tests.
//!
//! Two shapes:
//! - [`Cluster`]: the test itself starts one metadata member, `node_count` storage nodes
//!   (port 0 each, reusing [`NodeProcess`]) and the gateway as separate children, so a
//!   test can `kill -9` and restart any one of them (`shardlet dev` stops the whole
//!   cluster when one child dies, which is right for a developer and wrong for a fault
//!   test);
//! - [`DevCluster`]: `shardlet dev` exactly as a developer runs it, with its printed
//!   `export AWS_...` lines parsed, to check the documented first-run experience.
//!
//! Every process is killed by PID and reaped when its guard drops; on a panic the tail
//! of every log is printed so a failure can be attributed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::raw_http::{self, Request};
use super::{NodeOptions, NodeProcess, START_DEADLINE};

/// How often a polled condition is checked.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How much of each log is printed when a test fails.
const LOG_TAIL_LINES: usize = 60;
/// How long `shardlet dev` gets to stop its children after SIGTERM before SIGKILL.
const DEV_STOP_DEADLINE: Duration = Duration::from_secs(20);

/// S3 credentials and where to send requests.
#[derive(Clone, Debug)]
pub struct S3Access {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// One child process that prints `... listening on [http://]ADDR` on stdout when ready
/// and answers `GET /health`: the metadata member and the gateway.
pub struct ServiceProcess {
    pub name: String,
    arguments: Vec<String>,
    /// The `--listen` value for the first start: port 0; afterwards the bound address,
    /// so a restarted process is found where clients and the topology expect it.
    pub address: SocketAddr,
    secret: String,
    child: Option<Child>,
    pub log_path: PathBuf,
}

impl ServiceProcess {
    /// Starts `shardlet <arguments> --listen 127.0.0.1:0` and waits until it announced
    /// its address and its `/health` answers 200.
    pub async fn start(name: &str, arguments: Vec<String>, secret: &str, logs: &Path) -> Self {
        let mut service = Self {
            name: name.to_string(),
            arguments,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            secret: secret.to_string(),
            child: None,
            log_path: logs.join(format!("{name}.log")),
        };
        if let Err(reason) = service.spawn_and_wait_healthy().await {
            panic!("{name} did not start: {reason}\n{}", service.log_tail());
        }
        service
    }

    /// Starts it again on the same address (after [`Self::kill_9`]).
    pub async fn restart(&mut self) {
        assert!(
            self.child.is_none(),
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

    /// SIGKILL, then reap: no chance to flush anything.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.name, &self.log_path)
    }

    async fn spawn_and_wait_healthy(&mut self) -> Result<(), String> {
        let log_offset = std::fs::metadata(&self.log_path).map_or(0, |meta| meta.len()) as usize;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|error| format!("open log: {error}"))?;
        let log_for_stderr = log.try_clone().map_err(|error| error.to_string())?;
        let child = Command::new(env!("CARGO_BIN_EXE_shardlet"))
            .args(&self.arguments)
            .arg("--listen")
            .arg(self.address.to_string())
            .env("SHARDLET_CLUSTER_SECRET", &self.secret)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .spawn()
            .map_err(|error| format!("spawn: {error}"))?;
        self.child = Some(child);
        let give_up = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            if self.address.port() == 0 {
                if let Some(address) = announced_address(&self.log_path, log_offset) {
                    self.address = address;
                }
            }
            if self.address.port() != 0 && health_ok(self.address).await {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("exited during start-up ({status})"));
                }
            }
            if tokio::time::Instant::now() >= give_up {
                self.kill_9();
                return Err(format!("no healthy /health within {START_DEADLINE:?}"));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// The cluster a fault test controls process by process.
pub struct Cluster {
    pub gateway: ServiceProcess,
    pub nodes: Vec<NodeProcess>,
    pub meta: ServiceProcess,
    pub secret: String,
    pub topology_path: PathBuf,
    pub access: S3Access,
    /// Last field: dropped after the processes, so their files outlive them.
    pub root: tempfile::TempDir,
}

/// Zones and regions of the test topology: node `i` (0-based) goes to zone `i % 4`, so
/// any `node_count` ≥ 4 spreads over 4 zones in 2 regions, like `examples/topology.toml`.
const ZONES: [(&str, &str); 4] = [
    ("region-one", "region-one-a"),
    ("region-one", "region-one-b"),
    ("region-two", "region-two-a"),
    ("region-two", "region-two-b"),
];

impl Cluster {
    /// Metadata member, `node_count` storage nodes, an S3 key, then the gateway.
    pub async fn start(node_count: usize) -> Self {
        let root = tempfile::Builder::new()
            .prefix("shardlet-cluster-")
            .tempdir_in(super::clusters_root())
            .expect("a temporary directory");
        let logs = root.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let secret = hex::encode(rand::random::<[u8; 32]>());

        let meta_data = root.path().join("meta");
        let meta = ServiceProcess::start(
            "meta",
            vec![
                "meta".into(),
                "--member-id".into(),
                "1".into(),
                "--bootstrap".into(),
                "--data".into(),
                meta_data.display().to_string(),
            ],
            &secret,
            &logs,
        )
        .await;

        let mut nodes = Vec::with_capacity(node_count);
        for position in 0..node_count {
            let options = NodeOptions {
                node_id: position as u32 + 1,
                parent_dir: Some(root.path().join("nodes")),
                secret: Some(secret.clone()),
                ..NodeOptions::default()
            };
            nodes.push(NodeProcess::start(options).await);
        }
        let topology_path = root.path().join("topology.toml");
        std::fs::write(&topology_path, topology_toml(&nodes)).unwrap();

        let (access_key, secret_key) = create_key(&meta, &secret);
        let gateway = ServiceProcess::start(
            "gateway",
            vec![
                "gateway".into(),
                "--meta".into(),
                meta.address.to_string(),
                "--topology".into(),
                topology_path.display().to_string(),
                "--region".into(),
                "us-east-1".into(),
            ],
            &secret,
            &logs,
        )
        .await;
        let access = S3Access {
            endpoint: format!("http://{}", gateway.address),
            access_key,
            secret_key,
            region: "us-east-1".into(),
        };
        Self {
            gateway,
            nodes,
            meta,
            secret,
            topology_path,
            access,
            root,
        }
    }

    /// The metadata member's and the gateway's log tails, for failure messages (each
    /// storage node prints its own log when its guard drops during a panic).
    pub fn logs(&self) -> String {
        let mut text = self.meta.log_tail();
        text.push_str(&self.gateway.log_tail());
        text
    }

    /// The gateway's `/metrics` text.
    pub async fn gateway_metrics(&self) -> String {
        let response = raw_http::send(self.gateway.address, &Request::new("GET", "/metrics"))
            .await
            .expect("gateway /metrics answers");
        assert_eq!(response.status, 200, "gateway /metrics");
        String::from_utf8_lossy(&response.body).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Gateway first, so no request is in flight towards a dead node while we stop.
        self.gateway.kill_9();
        for node in &mut self.nodes {
            node.kill_9();
        }
        self.meta.kill_9();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

fn topology_toml(nodes: &[NodeProcess]) -> String {
    let mut text = String::from("# Written by the gateway end-to-end tests.\nepoch = 1\n");
    for (position, node) in nodes.iter().enumerate() {
        let (region, zone) = ZONES[position % ZONES.len()];
        text.push_str(&format!(
            "\n[[node]]\nid = {id}\nname = \"node-{id}\"\naddress = \"{address}\"\nregion = \"{region}\"\nzone = \"{zone}\"\ncapacity_bytes = 1_099_511_627_776\n",
            id = node.options.node_id,
            address = node.address,
        ));
    }
    text
}

/// `shardlet admin key create` against the metadata member: (access key, secret key).
fn create_key(meta: &ServiceProcess, secret: &str) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_shardlet"))
        .args(["admin", "key", "create", "--owner", "tests", "--meta"])
        .arg(meta.address.to_string())
        .env("SHARDLET_CLUSTER_SECRET", secret)
        .stdin(Stdio::null())
        .output()
        .expect("shardlet admin key create runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "shardlet admin key create failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(|value| value.trim().to_string())
            .unwrap_or_else(|| panic!("no {prefix:?} line in: {stdout}"))
    };
    (field("access key:"), field("secret key:"))
}

/// `shardlet dev` as a developer runs it, on ports this test picked.
pub struct DevCluster {
    child: Option<Child>,
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
    pub meta: u16,
    /// Node N listens on `node_base + N - 1` (12 nodes).
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
            meta: free_port_run(1),
            node_base: free_port_run(12),
            controller: free_port_run(1),
        }
    }
}

/// `shardlet dev --data DATA` on `ports` (stdin null; stdout and stderr are the
/// caller's).
pub fn dev_command(data: &Path, ports: &DevPorts) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shardlet"));
    command
        .arg("dev")
        .arg("--data")
        .arg(data)
        .args(["--s3-port", &ports.s3.to_string()])
        .args(["--meta-port", &ports.meta.to_string()])
        .args(["--node-base-port", &ports.node_base.to_string()])
        .args(["--controller-port", &ports.controller.to_string()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    command
}

/// Whether `pid` is a live (not zombie) `shardlet` process.
fn shardlet_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.contains("shardlet"))
}

impl DevCluster {
    /// Starts `shardlet dev` (stdout and stderr to `ROOT/dev.stdout`) and waits until it
    /// printed the S3 credentials.
    pub async fn start() -> Self {
        let root = Self::new_root();
        let stdout_path = root.path().join("dev.stdout");
        let stdout = std::fs::File::create(&stdout_path).unwrap();
        let stderr = stdout.try_clone().unwrap();
        let mut dev = Self::spawn_in(root, stdout.into(), stderr.into());
        let give_up = tokio::time::Instant::now() + START_DEADLINE * 2;
        loop {
            let printed = std::fs::read_to_string(&stdout_path).unwrap_or_default();
            let export = |name: &str| {
                let prefix = format!("export {name}=");
                printed
                    .lines()
                    .find_map(|line| line.strip_prefix(&prefix))
                    .map(str::to_string)
            };
            if let (Some(endpoint), Some(access_key), Some(secret_key), Some(region)) = (
                export("AWS_ENDPOINT_URL"),
                export("AWS_ACCESS_KEY_ID"),
                export("AWS_SECRET_ACCESS_KEY"),
                export("AWS_REGION"),
            ) {
                dev.access = S3Access {
                    endpoint,
                    access_key,
                    secret_key,
                    region,
                };
                assert_eq!(
                    dev.access.endpoint,
                    format!("http://127.0.0.1:{}", dev.ports.s3),
                    "the printed endpoint is on --s3-port"
                );
                return dev;
            }
            if let Some(status) = dev.exit_status() {
                panic!("shardlet dev exited during start-up ({status})\n{printed}");
            }
            if tokio::time::Instant::now() >= give_up {
                panic!("shardlet dev printed no credentials within {START_DEADLINE:?}\n{printed}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// A fresh directory for one `shardlet dev` (its data goes in `ROOT/data`).
    pub fn new_root() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("shardlet-dev-")
            .tempdir_in(super::clusters_root())
            .expect("a temporary directory")
    }

    /// Spawns `shardlet dev` with data in `root/data` and the given stdout and stderr,
    /// without waiting for anything. `access` stays empty.
    pub fn spawn_in(root: tempfile::TempDir, stdout: Stdio, stderr: Stdio) -> Self {
        let data = root.path().join("data");
        let ports = DevPorts::free();
        let child = dev_command(&data, &ports)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("shardlet dev starts");
        Self {
            child: Some(child),
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

    /// `shardlet dev`'s exit status if it has exited (then it is reaped and forgotten).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// Sends SIGTERM to `shardlet dev` and waits for it to exit; panics (with the logs)
    /// if it does not within `deadline`.
    pub async fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let child = self.child.as_ref().expect("shardlet dev is running");
        let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a valid pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let give_up = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            if tokio::time::Instant::now() >= give_up {
                panic!(
                    "shardlet dev did not exit within {deadline:?} of SIGTERM\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The pid `shardlet dev` recorded for a component (`gateway`, `meta`, `node-3`).
    pub fn component_pid(&self, name: &str) -> u32 {
        let path = self.data.join("logs").join(format!("{name}.pid"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            .trim()
            .parse()
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    }

    /// Every component `shardlet dev` recorded (`logs/NAME.pid`) by name, with its pid.
    pub fn components(&self) -> Vec<(String, u32)> {
        let Ok(entries) = std::fs::read_dir(self.data.join("logs")) else {
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

    pub fn logs(&self) -> String {
        let mut text = log_tail("dev", &self.root.path().join("dev.stdout"));
        if let Ok(entries) = std::fs::read_dir(self.data.join("logs")) {
            let mut paths: Vec<PathBuf> = entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e == "log"))
                .collect();
            paths.sort();
            for path in paths {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                text.push_str(&log_tail(&name, &path));
            }
        }
        text
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking {
            eprintln!("{}", self.logs());
        }
        let components = self.components();
        if let Some(mut child) = self.child.take() {
            // SIGTERM is the documented way to stop it: it stops its children itself.
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let give_up = std::time::Instant::now() + DEV_STOP_DEADLINE;
            while std::time::Instant::now() < give_up {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(POLL_INTERVAL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // If it did not stop them, its children (started for this test) go by pid.
        for (_, raw) in components {
            if let (true, Some(pid)) = (
                shardlet_running(raw),
                rustix::process::Pid::from_raw(raw as i32),
            ) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// The first port of `count` consecutive ports nobody listens on right now.
pub fn free_port_run(count: u16) -> u16 {
    for _ in 0..1000 {
        let base = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("an ephemeral port");
        if base > u16::MAX - count {
            continue;
        }
        let listeners: Vec<_> = (base..base + count)
            .map_while(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok())
            .collect();
        if listeners.len() == usize::from(count) {
            return base;
        }
    }
    panic!("no run of {count} free ports found");
}

/// True when `GET /health` answers 200 within a couple of seconds.
pub async fn health_ok(address: SocketAddr) -> bool {
    let request = Request::new("GET", "/health");
    matches!(
        tokio::time::timeout(Duration::from_secs(2), raw_http::send(address, &request)).await,
        Ok(Ok(response)) if response.status == 200
    )
}

/// The address in the first `listening on [http://]ADDR` line written since `offset`.
fn announced_address(log_path: &Path, offset: usize) -> Option<SocketAddr> {
    let log = std::fs::read(log_path).ok()?;
    let text = String::from_utf8_lossy(log.get(offset..)?);
    text.lines().find_map(|line| {
        let (_, rest) = line.split_once("listening on ")?;
        rest.trim_start_matches("http://")
            .split_whitespace()
            .next()?
            .trim_end_matches('/')
            .parse()
            .ok()
    })
}

fn log_tail(name: &str, path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    format!(
        "----- last {} lines of {name} ({}) -----\n{}\n----- end of {name} -----\n",
        tail.len(),
        path.display(),
        tail.join("\n")
    )
}
