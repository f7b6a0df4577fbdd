//! The cluster of the suite, one process per host: 3 metadata members formed with
//! `--initial-members` (one in each zone), storage nodes in 3 zones that announce
//! themselves to both controllers, 2 controllers (the lease picks one) and 2 gateways on
//! hosts of their own, outside every zone. Plain HTTP: the network is the test's own
//! bridge, reachable from nowhere else (TLS is covered by the TLS suites).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use shardlet_testkit::host_process::{HostProcess, Launch};
use shardlet_testkit::netns::Network;
use shardlet_testkit::service::run_to_completion;
use shardlet_testkit::signing::role_key_file;
use shardlet_testkit::{wait_until, S3Access, ShardletBinary};

/// Every host uses the same ports (each namespace has its own).
const META_PORT: u16 = 7380;
const NODE_PORT: u16 = 7400;
const CONTROLLER_PORT: u16 = 9600;
const GATEWAY_PORT: u16 = 9000;
const GATEWAY_ADMIN_PORT: u16 = 9090;
pub const REGION: &str = "region-one";
/// The S3 region the gateways answer for.
pub const S3_REGION: &str = "us-east-1";
pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
/// Storage nodes at the start, spread round-robin over the zones.
pub const NODES_AT_START: usize = 9;
pub const NODE_CAPACITY: &str = "1T";
/// How long cluster-wide changes (formation, a layout version reaching every process,
/// a member catching up) may take on a loaded 2-core machine.
pub const CLUSTER_DEADLINE: Duration = Duration::from_secs(120);
/// Controller flags that act in seconds (down after 3 s without an answer).
const CONTROLLER_FLAGS: [&str; 16] = [
    "--down-grace-seconds",
    "3",
    "--suspect-after-seconds",
    "1",
    "--probe-interval-seconds",
    "0.25",
    "--lease-seconds",
    "3",
    "--repair-interval-seconds",
    "0.5",
    "--scrub-interval-seconds",
    "0",
    "--transition-interval-seconds",
    "0",
    "--layout-poll-seconds",
    "0.5",
];

pub struct ManyHosts {
    pub binary: ShardletBinary,
    pub secret: String,
    pub root: tempfile::TempDir,
    pub logs: PathBuf,
    pub meta: Vec<HostProcess>,
    pub nodes: BTreeMap<String, HostProcess>,
    /// Zone of each storage node (by name) and of each metadata member's host.
    pub zone_of: BTreeMap<String, String>,
    pub controllers: Vec<HostProcess>,
    pub gateways: Vec<HostProcess>,
    pub access: S3Access,
    /// Last field: dropped after every process above is killed.
    pub network: Network,
}

impl ManyHosts {
    /// Builds the whole cluster on `network` and applies the layout of the first
    /// [`NODES_AT_START`] nodes.
    pub async fn start(binary: &ShardletBinary, mut network: Network) -> Self {
        let root = tempfile::Builder::new()
            .prefix("shardlet-many-hosts-")
            .tempdir_in(binary.clusters_root())
            .unwrap();
        let logs = root.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let mut zone_of = BTreeMap::new();
        for (position, zone) in ZONES.iter().enumerate() {
            let host = format!("meta-{}", position + 1);
            network.add_host(&host).unwrap();
            zone_of.insert(host, zone.to_string());
        }
        for host in ["controller-1", "controller-2", "gateway-1", "gateway-2"] {
            network.add_host(host).unwrap();
        }
        let initial = (1..=ZONES.len())
            .map(|id| {
                let address = network.host(&format!("meta-{id}")).address;
                format!("{id}={address}:{META_PORT}")
            })
            .collect::<Vec<_>>()
            .join(",");
        // All three start at once: the lowest forms the cluster once it finds the others.
        let mut meta: Vec<HostProcess> = (1..=ZONES.len())
            .map(|id| {
                let data = root.path().join(format!("meta-{id}"));
                HostProcess::spawn(
                    &network,
                    binary,
                    &logs,
                    Launch {
                        host: format!("meta-{id}"),
                        name: format!("meta-{id}"),
                        arguments: vec![
                            "meta".into(),
                            "--member-id".into(),
                            id.to_string(),
                            "--data".into(),
                            data.display().to_string(),
                            "--initial-members".into(),
                            initial.clone(),
                        ],
                        environment: keys(&secret, "member"),
                        port: META_PORT,
                    },
                )
            })
            .collect();
        for member in &mut meta {
            member.wait_healthy().await;
        }
        let meta_list = meta
            .iter()
            .map(|member| member.address.to_string())
            .collect::<Vec<_>>()
            .join(",");

        let mut controllers = Vec::new();
        for id in 1..=2 {
            let mut arguments = vec!["controller".to_string(), "--meta".into(), meta_list.clone()];
            arguments.extend(CONTROLLER_FLAGS.iter().map(|flag| flag.to_string()));
            controllers.push(
                HostProcess::start(
                    &network,
                    binary,
                    &logs,
                    Launch {
                        host: format!("controller-{id}"),
                        name: format!("controller-{id}"),
                        arguments,
                        environment: keys(&secret, "controller"),
                        port: CONTROLLER_PORT,
                    },
                )
                .await,
            );
        }
        let mut cluster = Self {
            binary: binary.clone(),
            secret,
            logs,
            meta,
            nodes: BTreeMap::new(),
            zone_of,
            controllers,
            gateways: Vec::new(),
            access: S3Access {
                endpoint: String::new(),
                access_key: String::new(),
                secret_key: String::new(),
                region: S3_REGION.into(),
            },
            root,
            network,
        };
        for position in 0..NODES_AT_START {
            let name = format!("s{}", position + 1);
            cluster
                .start_node(&name, ZONES[position % ZONES.len()])
                .await;
        }
        let names: Vec<String> = cluster.nodes.keys().cloned().collect();
        cluster.wait_staged(&names).await;
        cluster.admin(&["admin", "layout", "apply", "--version", "1"]);

        let output = cluster.admin(&["admin", "key", "create", "--owner", "tests"]);
        let field = |prefix: &str| {
            output
                .lines()
                .find_map(|line| line.strip_prefix(prefix))
                .map(|value| value.trim().to_string())
                .unwrap_or_else(|| panic!("no {prefix:?} in {output}"))
        };
        cluster.access.access_key = field("access key:");
        cluster.access.secret_key = field("secret key:");
        for id in 1..=2 {
            let host = format!("gateway-{id}");
            let admin = format!(
                "{}:{GATEWAY_ADMIN_PORT}",
                cluster.network.host(&host).address
            );
            let gateway = HostProcess::start(
                &cluster.network,
                binary,
                &cluster.logs,
                Launch {
                    host: host.clone(),
                    name: host,
                    arguments: vec![
                        "gateway".into(),
                        "--meta".into(),
                        cluster.meta_list(),
                        "--region".into(),
                        S3_REGION.into(),
                        "--admin-listen".into(),
                        admin,
                    ],
                    environment: keys(&cluster.secret, "gateway"),
                    port: GATEWAY_PORT,
                },
            )
            .await;
            cluster.gateways.push(gateway);
        }
        cluster
    }

    /// Adds host `name` in `zone` and starts a storage node there that announces itself
    /// to both controllers (it stays a pending role until a layout applies it).
    pub async fn start_node(&mut self, name: &str, zone: &str) {
        self.network.add_host(name).unwrap();
        let controllers = self
            .controllers
            .iter()
            .map(|controller| format!("http://{}", controller.address))
            .collect::<Vec<_>>()
            .join(",");
        let data = self.root.path().join(name);
        let node = HostProcess::start(
            &self.network,
            &self.binary,
            &self.logs,
            Launch {
                host: name.to_string(),
                name: name.to_string(),
                arguments: vec![
                    "node".into(),
                    "--data".into(),
                    data.display().to_string(),
                    "--name".into(),
                    name.into(),
                    "--controller".into(),
                    controllers,
                    "--region".into(),
                    REGION.into(),
                    "--zone".into(),
                    zone.into(),
                    "--capacity".into(),
                    NODE_CAPACITY.into(),
                    "--reserve-bytes".into(),
                    "0".into(),
                ],
                environment: keys(&self.secret, &format!("node-{name}")),
                port: NODE_PORT,
            },
        )
        .await;
        self.zone_of.insert(name.to_string(), zone.to_string());
        self.nodes.insert(name.to_string(), node);
    }

    /// Waits until every node of `names` announced itself and is staged as a pending
    /// role (`layout show` lists it).
    pub async fn wait_staged(&self, names: &[String]) {
        wait_until(
            CLUSTER_DEADLINE,
            "the nodes' announcements are staged",
            || async {
                let Ok(shown) = self.try_admin(&["admin", "layout", "show"]) else {
                    return false;
                };
                names.iter().all(|name| {
                    shown.lines().any(|line| {
                        line.split_whitespace().next() == Some(name.as_str())
                            && line.contains("announced by the node")
                    })
                })
            },
        )
        .await;
    }

    /// The applied layout version, as `layout show` prints it.
    pub fn layout_version(&self) -> u64 {
        let shown = self.admin(&["admin", "layout", "show"]);
        shown
            .lines()
            .find_map(|line| {
                line.strip_prefix("cluster layout version ")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }

    /// The metadata members' addresses, comma-separated (what `--meta` takes).
    pub fn meta_list(&self) -> String {
        self.meta
            .iter()
            .map(|member| member.address.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `shardlet ARGUMENTS --meta ALL_MEMBERS` from the test process (over the bridge)
    /// with the cluster secret, as an operator runs it; its stdout (the test fails if
    /// it fails).
    pub fn admin(&self, arguments: &[&str]) -> String {
        let arguments: Vec<String> = arguments
            .iter()
            .map(|argument| argument.to_string())
            .chain(["--meta".to_string(), self.meta_list()])
            .collect();
        run_to_completion(&self.binary, &arguments, &self.secret)
    }

    /// Like [`Self::admin`], but a failure is an error (while the cluster still forms,
    /// or a member is cut off): stdout, or stderr as the error.
    pub fn try_admin(&self, arguments: &[&str]) -> Result<String, String> {
        let output = self
            .binary
            .command()
            .args(arguments)
            .args(["--meta", &self.meta_list()])
            .env("SHARDLET_CLUSTER_SECRET", &self.secret)
            .env_remove("SHARDLET_KEYS")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|error| error.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// The metadata leader's member id, per `admin meta status`.
    pub fn meta_leader(&self) -> Option<u64> {
        let status = self.try_admin(&["admin", "meta", "status"]).ok()?;
        let (_, rest) = status.lines().next()?.split_once(": leader ")?;
        rest.split(',').next()?.trim().parse().ok()
    }

    /// Every process's log tail, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut text = String::new();
        for process in self
            .meta
            .iter()
            .chain(&self.controllers)
            .chain(&self.gateways)
            .chain(self.nodes.values())
        {
            text.push_str(&process.log_tail());
        }
        text
    }
}

impl Drop for ManyHosts {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails());
        }
        // Gateways first, so no request is in flight towards a dead node; the network
        // (last field) is removed after every process is gone.
        for process in self
            .gateways
            .iter_mut()
            .chain(&mut self.controllers)
            .chain(self.nodes.values_mut())
            .chain(&mut self.meta)
        {
            process.kill_9();
        }
    }
}

/// The environment handing a process only its role's keys, derived from `secret`.
fn keys(secret: &str, role: &str) -> Vec<(String, String)> {
    vec![("SHARDLET_KEYS".to_string(), role_key_file(secret, role))]
}
