//! A whole Shardlet cluster of real processes that a test controls process by process:
//! one metadata member, `node_count` storage nodes (port 0 each), an S3 key, the
//! gateway, and on request controllers. Each is a separate child of the test, so a test
//! can `kill -9` and restart any one of them (`shardlet dev` stops the whole cluster
//! when one child dies, which is right for a developer and wrong for a fault test; it
//! is [`crate::dev_cluster::DevCluster`]).
//!
//! Every process is killed by PID and reaped when its guard drops; on a panic the tail
//! of every log is printed so a failure can be attributed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use shardlet_core::{FragmentId, Node, NodeId, NodeState, Topology};
use shardlet_meta::MetaClient;

use crate::binary::ShardletBinary;
use crate::controller::CONTROLLER_FAST_FLAGS;
use crate::local_cluster::topology_toml;
use crate::node::{NodeOptions, NodeProcess};
use crate::raw_http::{self, Request};
use crate::s3_client::S3Access;
use crate::service::{run_to_completion, ServiceProcess};

/// The region every test cluster's S3 endpoint names.
pub const REGION: &str = "us-east-1";
/// Every test node's capacity: 1 TiB, the default weight of 1.0.
const NODE_CAPACITY_BYTES: u64 = 1 << 40;
/// Zones and regions of the test topology: node `i` (0-based) goes to zone `i % 4`, so
/// any `node_count` ≥ 4 spreads over 4 zones in 2 regions, like `examples/topology.toml`.
const ZONES: [(&str, &str); 4] = [
    ("region-one", "region-one-a"),
    ("region-one", "region-one-b"),
    ("region-two", "region-two-a"),
    ("region-two", "region-two-b"),
];

/// How [`Cluster::start_with_options`] starts the processes.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    pub node_count: usize,
    /// Flags given to every server (metadata member, nodes, gateway, and controllers
    /// started with [`Cluster::start_controller`]), e.g. the ports' `--connections-max`.
    pub server_arguments: Vec<String>,
}

/// The cluster a fault test controls process by process.
pub struct Cluster {
    pub gateway: ServiceProcess,
    pub nodes: Vec<NodeProcess>,
    pub meta: ServiceProcess,
    pub binary: ShardletBinary,
    pub secret: String,
    pub topology_path: PathBuf,
    pub access: S3Access,
    /// Flags every server of this cluster was started with.
    pub server_arguments: Vec<String>,
    /// Last field: dropped after the processes, so their files outlive them.
    pub root: tempfile::TempDir,
}

impl Cluster {
    /// Metadata member, `node_count` storage nodes, an S3 key, then the gateway.
    pub async fn start(binary: &ShardletBinary, node_count: usize) -> Self {
        Self::start_with(binary, node_count, |_, _| {}).await
    }

    /// As [`Self::start`], with `adjust(position, options)` changing each node's options
    /// before it starts (a node on a faulty disk, say).
    pub async fn start_with(
        binary: &ShardletBinary,
        node_count: usize,
        adjust: impl Fn(usize, &mut NodeOptions),
    ) -> Self {
        let options = ClusterOptions {
            node_count,
            ..ClusterOptions::default()
        };
        Self::start_with_options(binary, options, adjust).await
    }

    /// As [`Self::start_with`], with options for every process (e.g. flags every server
    /// gets); `adjust` runs after them, so it may override a node's.
    pub async fn start_with_options(
        binary: &ShardletBinary,
        options: ClusterOptions,
        adjust: impl Fn(usize, &mut NodeOptions),
    ) -> Self {
        let ClusterOptions {
            node_count,
            server_arguments,
        } = options;
        let root = tempfile::Builder::new()
            .prefix("shardlet-cluster-")
            .tempdir_in(binary.clusters_root())
            .expect("a temporary directory");
        let logs = root.path().join("logs");
        std::fs::create_dir_all(&logs).expect("a logs directory");
        let secret = hex::encode(rand::random::<[u8; 32]>());

        let meta_data = root.path().join("meta");
        let meta = ServiceProcess::start(
            binary,
            "meta",
            [
                "meta".into(),
                "--member-id".into(),
                "1".into(),
                "--bootstrap".into(),
                "--data".into(),
                meta_data.display().to_string(),
            ]
            .into_iter()
            .chain(server_arguments.iter().cloned())
            .collect(),
            &secret,
            &logs,
        )
        .await;

        let mut nodes = Vec::with_capacity(node_count);
        for position in 0..node_count {
            let mut options = NodeOptions {
                node_id: u32::try_from(position + 1).expect("a node id"),
                parent_dir: Some(root.path().join("nodes")),
                secret: Some(secret.clone()),
                extra_arguments: server_arguments.clone(),
                ..NodeOptions::default()
            };
            adjust(position, &mut options);
            nodes.push(NodeProcess::start(binary, options).await);
        }
        let topology_path = root.path().join("topology.toml");
        let topology = topology_toml(
            &topology_of(&nodes),
            "Written by the end-to-end tests' cluster builder.",
        );
        std::fs::write(&topology_path, topology).expect("the topology file is written");
        // The layout lives in meta-raft: the file becomes its first version, as an
        // operator does it.
        let imported = run_to_completion(
            binary,
            &[
                "admin".to_string(),
                "layout".into(),
                "import".into(),
                topology_path.display().to_string(),
                "--meta".into(),
                meta.address.to_string(),
            ],
            &secret,
        );
        assert!(
            imported.contains("as cluster layout version 1"),
            "the layout import said: {imported}"
        );

        let (access_key, secret_key) = create_key(binary, &meta, &secret, "tests");
        let gateway = ServiceProcess::start(
            binary,
            "gateway",
            [
                "gateway".into(),
                "--meta".into(),
                meta.address.to_string(),
                "--region".into(),
                REGION.into(),
                // Port 0: parallel tests never race for the default 9090.
                "--admin-listen".into(),
                "127.0.0.1:0".into(),
            ]
            .into_iter()
            .chain(server_arguments.iter().cloned())
            .collect(),
            &secret,
            &logs,
        )
        .await;
        let access = S3Access {
            endpoint: format!("http://{}", gateway.address),
            access_key,
            secret_key,
            region: REGION.into(),
        };
        Self {
            gateway,
            nodes,
            meta,
            binary: binary.clone(),
            secret,
            topology_path,
            access,
            server_arguments,
            root,
        }
    }

    /// A new S3 key of `owner` (`shardlet admin key create`), for this cluster's gateway.
    /// The cluster's own key ([`Self::access`]) belongs to the owner `tests`.
    pub fn create_key(&self, owner: &str) -> S3Access {
        let (access_key, secret_key) = create_key(&self.binary, &self.meta, &self.secret, owner);
        S3Access {
            access_key,
            secret_key,
            ..self.access.clone()
        }
    }

    /// Starts `shardlet controller` named `name` for this cluster with flags that make
    /// it act in seconds ([`CONTROLLER_FAST_FLAGS`]), `overrides` (`--flag value`
    /// pairs, then at most one flag without a value last) replacing any of them.
    pub async fn start_controller(&self, name: &str, overrides: &[String]) -> ServiceProcess {
        let mut flags: Vec<(String, String)> = CONTROLLER_FAST_FLAGS
            .chunks(2)
            .map(|pair| (pair[0].to_string(), pair[1].to_string()))
            .collect();
        for pair in overrides.chunks(2) {
            flags.retain(|(flag, _)| *flag != pair[0]);
            flags.push((pair[0].clone(), pair.get(1).cloned().unwrap_or_default()));
        }
        let mut arguments = vec![
            "controller".to_string(),
            "--meta".into(),
            self.meta.address.to_string(),
        ];
        // A flag without a value (`--auto-apply-announced`) ends the overrides.
        arguments.extend(flags.into_iter().flat_map(|(flag, value)| {
            std::iter::once(flag).chain((!value.is_empty()).then_some(value))
        }));
        arguments.extend(self.server_arguments.iter().cloned());
        ServiceProcess::start(
            &self.binary,
            name,
            arguments,
            &self.secret,
            &self.root.path().join("logs"),
        )
        .await
    }

    /// `shardlet <arguments> --meta <member>` with the cluster secret, run to
    /// completion; its stdout (the test fails if it fails).
    pub fn admin(&self, arguments: &[&str]) -> String {
        let arguments: Vec<String> = arguments
            .iter()
            .map(|argument| argument.to_string())
            .chain(["--meta".to_string(), self.meta.address.to_string()])
            .collect();
        run_to_completion(&self.binary, &arguments, &self.secret)
    }

    /// Runs `shardlet ARGUMENTS --meta …` as the operator, expecting a refusal; its
    /// stderr.
    pub fn admin_refused(&self, arguments: &[&str]) -> String {
        let output = self
            .binary
            .command()
            .args(arguments)
            .args(["--meta", &self.meta.address.to_string()])
            .env("SHARDLET_CLUSTER_SECRET", &self.secret)
            .env_remove("SHARDLET_KEYS")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("shardlet {arguments:?} does not run: {error}"));
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            !output.status.success(),
            "shardlet {arguments:?} succeeded: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        stderr
    }

    /// Sets the cluster's upload deadline the way an operator does (`shardlet admin
    /// cluster set upload-deadline-seconds N`).
    pub fn set_upload_deadline(&self, seconds: u64) -> String {
        self.admin(&[
            "admin",
            "cluster",
            "set",
            "upload-deadline-seconds",
            &seconds.to_string(),
        ])
    }

    /// A metadata client of this cluster's member, signing as the admin.
    pub fn meta_client(&self) -> MetaClient {
        MetaClient::new(
            vec![self.meta.address.to_string()],
            crate::meta_member::meta_client_key(&self.secret, "admin"),
            Default::default(),
        )
        .expect("a metadata client")
    }

    /// Fragments each running node holds (files and small-fragment store alike,
    /// through its listing), by node id, with their payload lengths.
    pub async fn fragments_stored(&self) -> BTreeMap<NodeId, Vec<(FragmentId, u64)>> {
        let mut stored = BTreeMap::new();
        for node in &self.nodes {
            let fragments = node
                .stored_fragments()
                .await
                .into_iter()
                .filter_map(|(id, length)| Some((id.parse().ok()?, length)))
                .collect();
            stored.insert(NodeId(node.options.node_id), fragments);
        }
        stored
    }

    /// The node (position in `nodes`) holding the most fragments.
    pub async fn busiest_node(&self) -> usize {
        let stored = self.fragments_stored().await;
        (0..self.nodes.len())
            .max_by_key(|position| {
                stored
                    .get(&NodeId(self.nodes[*position].options.node_id))
                    .map_or(0, Vec::len)
            })
            .expect("a cluster with nodes")
    }

    /// The metadata member's and the gateway's log tails, for failure messages (each
    /// storage node prints its own log when its guard drops during a panic).
    pub fn logs(&self) -> String {
        let mut text = self.meta.log_tail();
        text.push_str(&self.gateway.log_tail());
        text
    }

    /// The gateway's `/metrics` text, from its admin port.
    pub async fn gateway_metrics(&self) -> String {
        let response = raw_http::send(
            self.gateway.admin_address(),
            &Request::new("GET", "/metrics"),
        )
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

/// The topology of the started nodes: node `i` in zone `ZONES[i % 4]`, 1 TiB each.
fn topology_of(nodes: &[NodeProcess]) -> Topology {
    let nodes = nodes
        .iter()
        .enumerate()
        .map(|(position, node)| {
            let (region, zone) = ZONES[position % ZONES.len()];
            Node {
                id: NodeId(node.options.node_id),
                name: node.options.name(),
                address: node.address.to_string(),
                region: region.into(),
                zone: zone.into(),
                capacity_bytes: NODE_CAPACITY_BYTES,
                free_bytes: NODE_CAPACITY_BYTES,
                weight: Node::default_weight(NODE_CAPACITY_BYTES),
                state: NodeState::Up,
                latency_us: None,
            }
        })
        .collect();
    Topology::new(1, nodes).expect("the started nodes form a valid topology")
}

/// `shardlet admin key create --owner OWNER` against the metadata member: (access key,
/// secret key).
fn create_key(
    binary: &ShardletBinary,
    meta: &ServiceProcess,
    secret: &str,
    owner: &str,
) -> (String, String) {
    let arguments = ["admin", "key", "create", "--owner", owner, "--meta"]
        .map(String::from)
        .into_iter()
        .chain([meta.address.to_string()])
        .collect::<Vec<_>>();
    let stdout = run_to_completion(binary, &arguments, secret);
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(|value| value.trim().to_string())
            .unwrap_or_else(|| panic!("no {prefix:?} line in: {stdout}"))
    };
    (field("access key:"), field("secret key:"))
}
