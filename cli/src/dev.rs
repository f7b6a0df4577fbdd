//! `shardlet dev`: a whole local cluster from one command, for trying Shardlet.
//!
//! Every component is a child process of this one, running this same binary with its
//! own subcommand, talking real HTTP to the others — exactly as in production, only on
//! 127.0.0.1:
//! - one metadata member (`shardlet meta --initial-members 1=ITSELF`: formed on the
//!   first start, a no-op later), data in `DIR/meta`;
//! - one storage node per entry of the topology (default: `examples/topology.toml`,
//!   12 nodes in 4 zones and 2 regions), data in `DIR/node-N`, listening on
//!   `--node-base-port` + position;
//! - the S3 gateway (`shardlet gateway`) on `--s3-port`, its admin port (`/metrics`) on
//!   `--gateway-admin-port`;
//! - the controller (`shardlet controller`) on `--controller-port`, with dev-sized
//!   timings: a node silent for 10 s is down and repaired, the scrub runs every 30 s,
//!   heat transitions every 10 s after a 5-minute dwell.
//!
//! Every component gets only its role's keys: `DIR/keys/ROLE.keys` (0600, derived from
//! `DIR/cluster-secret` on every start), passed with `--key-file`; only this process
//! holds the cluster secret, as an operator would.
//!
//! Logs go to `DIR/logs/NAME.log`, process ids to `DIR/logs/NAME.pid`. Once the S3 endpoint answers, shell lines to `eval` are
//! printed on stdout (a closed stdout is ignored). SIGINT / SIGTERM at any moment, start-up
//! included, stop every child started so far (SIGTERM, then SIGKILL after a grace
//! period). Running again on the same directory keeps the data, the cluster
//! secret and the S3 credentials (`DIR/s3-credentials.json`).
//!
//! Spawning a component with its log and pid file, probing `/health` and stopping
//! everything are `shardlet_testkit::local_cluster` and `::process`: the same code the
//! end-to-end tests build their clusters with.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use shardlet_auth::{ClusterSecret, Keyring, MetaCaller, NodeName, Role};
use shardlet_core::Topology;
use shardlet_gateway::object::catalog::Catalog;
use shardlet_gateway::object::commit::{new_credential, Buckets};
use shardlet_model::schema::{CredentialRecord, SecretKey};
use shardlet_net::Transport;
use shardlet_testkit::local_cluster::{
    spawn_component, stop_all, topology_toml, wait_until_healthy_over, NotHealthy,
};
use shardlet_testkit::local_tls::local_tls;
use shardlet_testkit::process::ChildProcess;

use crate::connect::write_private;
use crate::output::{complain, say};

/// How long the cluster may take to answer (RocksDB open, raft election, 12 nodes).
const READY_DEADLINE: Duration = Duration::from_secs(60);
const READY_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long children get to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);
const DEFAULT_TOPOLOGY: &str = include_str!("../../examples/topology.toml");
const REGION: &str = "us-east-1";

#[derive(clap::Args)]
pub struct DevArguments {
    /// Directory for everything (created if missing; reused if present).
    #[arg(long, default_value = "./data")]
    data: PathBuf,
    /// Port of the S3 endpoint.
    #[arg(long, default_value_t = 9000)]
    s3_port: u16,
    /// Port of the gateway's admin endpoint (`/metrics`, `/health`).
    #[arg(long, default_value_t = 9090)]
    gateway_admin_port: u16,
    /// Storage node N (1-based position in the topology) listens on this + N - 1.
    #[arg(long, default_value_t = 19101)]
    node_base_port: u16,
    /// Port of the metadata service.
    #[arg(long, default_value_t = 7380)]
    meta_port: u16,
    /// Port of the controller's `/metrics`, `/health` and `/v1/status`.
    #[arg(long, default_value_t = 9600)]
    controller_port: u16,
    /// Topology file (addresses are replaced by 127.0.0.1 and the ports above).
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Trained failure-predictor model directory (`shardlet-predictor train`) for the
    /// scoring sidecar; default `DIR/predictor-model` when it exists. Without a model (or
    /// without the `shardlet-predictor` binary, which needs libtorch) the cluster starts
    /// without the sidecar and says so.
    #[arg(long)]
    predictor_model: Option<PathBuf>,
    /// Port of the predictor sidecar.
    #[arg(long, default_value_t = 9400)]
    predictor_port: u16,
    /// Serve every port over HTTPS: a local CA and a certificate for 127.0.0.1 are made
    /// in DIR/tls (kept across runs; keys 0600), and every component trusts that CA.
    /// Without it, everything is plain HTTP on loopback.
    #[arg(long)]
    tls: bool,
    /// Passed to the gateway: base domain of virtual-hosted–style requests (`Host:
    /// BUCKET.DOMAIN:PORT`); repeatable or comma-separated. Path style keeps working.
    #[arg(long = "domain", value_delimiter = ',', env = "SHARDLET_DOMAIN")]
    domains: Vec<String>,
}

/// How the cluster's components secure their ports: the flags each gets, and how this
/// process reaches them.
struct Security {
    flags: Vec<String>,
    transport: Transport,
    /// The CA certificate clients must trust (with `--tls`).
    ca: Option<PathBuf>,
}

impl Security {
    fn new(arguments: &DevArguments) -> anyhow::Result<Self> {
        if !arguments.tls {
            return Ok(Self {
                flags: vec!["--insecure-plaintext".into()],
                transport: Transport::Plaintext,
                ca: None,
            });
        }
        let directory = arguments.data.join("tls");
        let tls = local_tls(&directory)
            .with_context(|| format!("cannot make the local CA in {}", directory.display()))?;
        let path = |path: &Path| path.display().to_string();
        Ok(Self {
            flags: vec![
                "--tls-cert".into(),
                path(&tls.certificate),
                "--tls-key".into(),
                path(&tls.key),
                "--tls-ca".into(),
                path(&tls.ca),
            ],
            transport: Transport::from_ca_file(&tls.ca)?,
            ca: Some(tls.ca),
        })
    }

    fn scheme(&self) -> &'static str {
        self.transport.scheme()
    }
}

pub async fn run(arguments: DevArguments) -> anyhow::Result<()> {
    let data = arguments.data.clone();
    // Before anything is created or started: a refusal changes nothing.
    crate::gateway_command::virtual_hosts(&arguments.domains)?;
    let topology = local_topology(&arguments)?;
    check_ports_free(&arguments, &topology)?;
    // The cluster secret, the S3 key and every component's data live here: owner only.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data.join("logs"))
        .and_then(|()| std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)))
        .with_context(|| format!("cannot create {}", data.display()))?;
    let secret_path = data.join("cluster-secret");
    let secret = load_or_create_secret(&secret_path)?;
    let keyring = Keyring::from_root(&secret);
    let key_files = write_key_files(&data.join("keys"), &keyring, &topology)?;
    // The topology with local addresses: imported as the first layout version (the
    // layout in meta-raft rules after that); kept for `shardlet admin layout import`.
    let topology_text = topology_toml(
        &topology,
        "Written by `shardlet dev` from the source topology, with local addresses. The\n\
         first start imports it as the cluster layout; later starts keep the layout in\n\
         meta-raft (`shardlet admin layout show`).",
    );
    write_private(&data.join("topology.toml"), topology_text.as_bytes())?;
    let prepared = Prepared {
        keyring,
        key_files,
        secret_path,
        topology,
    };

    let security = Security::new(&arguments)?;
    let mut components: Vec<ChildProcess> = Vec::new();
    // The signal handlers go in before the first child starts (`biased`: polled first),
    // so Ctrl-C or SIGTERM at any moment, start-up included, stops every child started
    // so far instead of killing this process and leaving them running.
    let result = tokio::select! {
        biased;
        _ = shardlet_node::shutdown_signal() => Ok(()),
        result = start_and_wait(&arguments, &security, &prepared, &mut components) => result,
    };
    // An error is printed by `main`, once, after everything stopped.
    stop_all_components(&mut components).await;
    say!("stopped; data kept in {}", data.display());
    result
}

/// What `run` wrote to the data directory before starting anything.
struct Prepared {
    /// Derived from the cluster secret: this process holds the root, as an operator.
    keyring: Keyring,
    key_files: KeyFiles,
    secret_path: PathBuf,
    topology: Topology,
}

async fn start_and_wait(
    arguments: &DevArguments,
    security: &Security,
    prepared: &Prepared,
    components: &mut Vec<ChildProcess>,
) -> anyhow::Result<()> {
    let Prepared {
        keyring,
        key_files,
        secret_path,
        topology,
    } = prepared;
    let data = &arguments.data;
    let secret_file = secret_path.display().to_string();
    let meta_address = format!("127.0.0.1:{}", arguments.meta_port);
    // `--initial-members` with itself alone, not `--bootstrap`: it forms the cluster on
    // the first start and is a no-op on every later one (`--bootstrap` refuses a data
    // directory that already belongs to a cluster).
    let initial_members = format!("1={meta_address}");
    components.push(spawn(
        data,
        security,
        "meta",
        &[
            "meta",
            "--member-id",
            "1",
            "--listen",
            &meta_address,
            "--initial-members",
            &initial_members,
            "--data",
            &data.join("meta").display().to_string(),
            "--key-file",
            &key_files.path(Role::Member),
        ],
    )?);
    let controller_address = format!("127.0.0.1:{}", arguments.controller_port);
    let controller_url = format!("{}://{controller_address}", security.scheme());
    for node in topology.nodes() {
        let capacity = node.capacity_bytes.to_string();
        components.push(spawn(
            data,
            security,
            &format!("node-{}", node.id.0),
            &[
                "node",
                "--listen",
                &node.address,
                "--name",
                &node.name,
                "--region",
                &node.region,
                "--zone",
                &node.zone,
                "--capacity",
                &capacity,
                // Announced to the controller once it runs: the node learns its id.
                "--controller",
                &controller_url,
                "--data",
                &data
                    .join(format!("node-{}", node.id.0))
                    .display()
                    .to_string(),
                "--key-file",
                &key_files.path(node_role(&node.name)?),
            ],
        )?);
    }
    let mut waiting: Vec<(String, String)> = vec![("meta".into(), meta_address.clone())];
    waiting.extend(
        topology
            .nodes()
            .iter()
            .map(|node| (format!("node-{}", node.id.0), node.address.clone())),
    );
    wait_healthy(components, &waiting, security).await?;
    ensure_layout(&meta_address, keyring, &security.transport, topology).await?;
    let predictor_url = start_predictor(
        arguments,
        security,
        &key_files.path(Role::Predictor),
        components,
    )
    .await;

    let credentials = s3_credentials(
        &data.join("s3-credentials.json"),
        &meta_address,
        keyring,
        &security.transport,
    )
    .await?;
    let s3_address = format!("127.0.0.1:{}", arguments.s3_port);
    let admin_address = format!("127.0.0.1:{}", arguments.gateway_admin_port);
    let domains = arguments.domains.join(",");
    let gateway_key_file = key_files.path(Role::Gateway);
    let mut gateway_arguments = vec![
        "gateway",
        "--listen",
        &s3_address,
        "--admin-listen",
        &admin_address,
        "--meta",
        &meta_address,
        "--region",
        REGION,
        "--key-file",
        &gateway_key_file,
    ];
    if !domains.is_empty() {
        gateway_arguments.extend(["--domain", &domains]);
    }
    components.push(spawn(data, security, "gateway", &gateway_arguments)?);
    wait_healthy(
        components,
        &[("gateway".into(), s3_address.clone())],
        security,
    )
    .await?;
    let controller_keys = key_files.path(Role::Controller);
    let mut controller_arguments: Vec<&str> = vec![
        "controller",
        "--listen",
        &controller_address,
        "--meta",
        &meta_address,
        "--key-file",
        &controller_keys,
        // Nodes that announce themselves join without an operator (a node added to a
        // dev cluster by hand, too).
        "--auto-apply-announced",
        // Seconds, not minutes: a developer who stops a node sees it repaired.
        "--down-grace-seconds",
        "10",
        "--suspect-after-seconds",
        "3",
        "--repair-interval-seconds",
        "2",
        "--scrub-interval-seconds",
        "30",
        "--transition-interval-seconds",
        "10",
        "--change-dwell-seconds",
        "300",
        "--heat-half-life-seconds",
        "1800",
    ];
    if let Some(url) = &predictor_url {
        controller_arguments.extend(["--predictor-url", url.as_str()]);
    }
    components.push(spawn(data, security, "controller", &controller_arguments)?);
    wait_healthy(
        components,
        &[("controller".into(), controller_address.clone())],
        security,
    )
    .await?;
    print_welcome(
        &s3_address,
        &admin_address,
        security,
        data,
        topology,
        &credentials,
    );
    if !domains.is_empty() {
        say!(
            "# Virtual-hosted style: Host BUCKET.DOMAIN:{} for each --domain ({domains}); \
             its names must resolve here (e.g. /etc/hosts, one line per bucket)",
            arguments.s3_port
        );
    }
    let tls_flag = security
        .ca
        .as_ref()
        .map(|ca| format!(" --tls-ca {}", ca.display()))
        .unwrap_or_else(|| " --insecure-plaintext".into());
    say!(
        "# Controller: node states and risk: shardlet admin nodes --meta {meta_address} --controller {scheme}://{controller_address} --key-file {}{tls_flag} (or --secret-file {secret_file})",
        key_files.path(Role::Admin),
        scheme = security.scheme()
    );
    let _ = std::io::stdout().flush();

    // Run until a component dies on its own (a signal ends this future from `run`).
    let name = first_exit(components).await;
    bail!(
        "{name} exited unexpectedly; see its log in {}",
        data.join("logs").display()
    )
}

/// Refuses to start when an address it needs is taken, typically by another `shardlet
/// dev` still running: that cluster's members would answer this one's health checks, and
/// start-up would fail later with a confusing error (a signature mismatch with the other
/// cluster's secret). The predictor's port is not checked: the sidecar is optional.
fn check_ports_free(arguments: &DevArguments, topology: &Topology) -> anyhow::Result<()> {
    let mut needed = vec![
        ("--s3-port", format!("127.0.0.1:{}", arguments.s3_port)),
        (
            "--gateway-admin-port",
            format!("127.0.0.1:{}", arguments.gateway_admin_port),
        ),
        ("--meta-port", format!("127.0.0.1:{}", arguments.meta_port)),
        (
            "--controller-port",
            format!("127.0.0.1:{}", arguments.controller_port),
        ),
    ];
    for node in topology.nodes() {
        needed.push(("--node-base-port", node.address.clone()));
    }
    for (flag, address) in needed {
        if let Err(error) = std::net::TcpListener::bind(address.as_str()) {
            bail!(
                "{address} is not free ({error}); is another `shardlet dev` running? Stop it, or choose other ports with {flag}"
            );
        }
    }
    Ok(())
}

fn spawn(
    data: &Path,
    security: &Security,
    name: &str,
    arguments: &[&str],
) -> anyhow::Result<ChildProcess> {
    let executable = std::env::current_exe().context("cannot find the shardlet binary")?;
    spawn_program(data, security, name, &executable, arguments)
}

/// How long the predictor sidecar may take to load its model and answer.
const PREDICTOR_READY_DEADLINE: Duration = Duration::from_secs(30);

/// Starts the failure-predictor sidecar (`shardlet-predictor serve`) when a model and the
/// binary (built beside this one) exist. Optional by design: the controller degrades to
/// its heuristic without it, so every way of not starting it is printed and the cluster
/// starts anyway.
async fn start_predictor(
    arguments: &DevArguments,
    security: &Security,
    key_file: &str,
    components: &mut Vec<ChildProcess>,
) -> Option<String> {
    let data = &arguments.data;
    let model = arguments
        .predictor_model
        .clone()
        .unwrap_or_else(|| data.join("predictor-model"));
    if !model.join("model.json").is_file() {
        say!(
            "# predictor sidecar: not started (no model at {}; train one with `shardlet-predictor train` and pass --predictor-model DIR); failure risk falls back to the heuristic",
            model.display()
        );
        return None;
    }
    let executable = match std::env::current_exe() {
        Ok(path) => path.with_file_name("shardlet-predictor"),
        Err(_) => return None,
    };
    if !executable.is_file() {
        say!(
            "# predictor sidecar: not started ({} is not built: it needs libtorch, see scripts/install-libtorch.sh); failure risk falls back to the heuristic",
            executable.display()
        );
        return None;
    }
    let address = format!("127.0.0.1:{}", arguments.predictor_port);
    let model_text = model.display().to_string();
    let arguments = [
        "serve",
        "--model",
        &model_text,
        "--listen",
        &address,
        "--key-file",
        key_file,
    ];
    let component = match spawn_program(data, security, "predictor", &executable, &arguments) {
        Ok(component) => component,
        Err(error) => {
            say!("# predictor sidecar: not started ({error:#})");
            return None;
        }
    };
    components.push(component);
    let ready = tokio::time::timeout(
        PREDICTOR_READY_DEADLINE,
        wait_healthy(
            components,
            &[("predictor".into(), address.clone())],
            security,
        ),
    )
    .await;
    match ready {
        Ok(Ok(())) => {
            let url = format!("{}://{address}", security.scheme());
            say!("# predictor sidecar: {url} (model {model_text})");
            return Some(url);
        }
        Ok(Err(error)) => {
            say!("# predictor sidecar: failed to start, continuing without it: {error:#}");
            stop_predictor(components).await;
        }
        Err(_) => {
            say!("# predictor sidecar: no answer within {PREDICTOR_READY_DEADLINE:?}, continuing without it");
            stop_predictor(components).await;
        }
    }
    None
}

/// Removes the predictor from the cluster's components (killing it if still running), so
/// its absence never stops the cluster.
async fn stop_predictor(components: &mut Vec<ChildProcess>) {
    if let Some(position) = components.iter().position(|c| c.name() == "predictor") {
        components.remove(position).kill();
    }
}

fn spawn_program(
    data: &Path,
    security: &Security,
    name: &str,
    executable: &Path,
    arguments: &[&str],
) -> anyhow::Result<ChildProcess> {
    let mut command = Command::new(executable);
    // Twelve nodes share this machine with the gateway and the metadata member: one
    // async worker each (blocking file I/O has its own threads) instead of one per core
    // saves the wake-ups and context switches of idle workers stealing work, ~5 % of a
    // small PUT's CPU (docs/gateway.md, Performance). `TOKIO_WORKER_THREADS` overrides.
    if name.starts_with("node-") && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        command.env("TOKIO_WORKER_THREADS", "1");
    }
    // The children's security is this command's choice alone: none of the TLS
    // variables or keys this process may have been started with reaches them (each
    // holds only the role key file it is given; a cluster secret in the environment
    // would otherwise sit in every child's, readable in /proc).
    for variable in [
        "SHARDLET_INSECURE_PLAINTEXT",
        "SHARDLET_TLS_CERT",
        "SHARDLET_TLS_KEY",
        "SHARDLET_TLS_CA",
        "SHARDLET_CLUSTER_SECRET",
        "SHARDLET_KEYS",
    ] {
        command.env_remove(variable);
    }
    command.args(arguments).args(&security.flags);
    // Output to `DIR/logs/NAME.log`, the pid to `DIR/logs/NAME.pid` (tests and
    // operators find components by it, e.g. to kill -9 a node). Safety net: the child
    // is killed, with anything it started, if this process unwinds without stopping it.
    Ok(spawn_component(&data.join("logs"), name, command)?)
}

/// Polls `GET /health` of each component until it answers 200 (bounded), failing early
/// with the component's log if it exits.
async fn wait_healthy(
    components: &mut [ChildProcess],
    targets: &[(String, String)],
    security: &Security,
) -> anyhow::Result<()> {
    let give_up = tokio::time::Instant::now() + READY_DEADLINE;
    for (name, address) in targets {
        let Some(component) = components.iter_mut().find(|c| c.name() == name) else {
            bail!("{name} was never started");
        };
        let healthy = wait_until_healthy_over(
            component,
            address,
            &security.transport,
            give_up,
            READY_POLL_INTERVAL,
        )
        .await;
        match healthy {
            Ok(()) => {}
            Err(NotHealthy::Exited(status)) => bail!(
                "{name} exited ({status}) while starting; see {}",
                component
                    .log_path()
                    .unwrap_or(Path::new("its log"))
                    .display()
            ),
            Err(NotHealthy::TimedOut) => {
                bail!("{name} at {address} did not answer /health within {READY_DEADLINE:?}")
            }
        }
    }
    Ok(())
}

/// The first component whose exit stops the cluster. A storage node that dies does
/// not: the cluster is built to survive that, and the controller rebuilds its data
/// elsewhere after the grace period, which is what a developer killing one wants to see.
async fn first_exit(components: &mut [ChildProcess]) -> String {
    let mut reported = std::collections::BTreeSet::new();
    loop {
        for component in components.iter_mut() {
            if let Some(status) = component.exit_status() {
                if !component.name().starts_with("node-") {
                    return component.name().to_string();
                }
                if reported.insert(component.name().to_string()) {
                    complain!(
                        "{} exited ({status}); the cluster keeps running and the controller rebuilds its fragments elsewhere once it is declared down",
                        component.name()
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// SIGTERM to everyone (gateway first, metadata last), then wait; SIGKILL stragglers.
async fn stop_all_components(components: &mut [ChildProcess]) {
    stop_all(components, STOP_GRACE, |name| {
        complain!("{name} did not stop in time; killing it")
    })
    .await;
}

/// The topology with every node on 127.0.0.1 at `node_base_port + position`.
fn local_topology(arguments: &DevArguments) -> anyhow::Result<Topology> {
    let (text, source) = match &arguments.topology {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            DEFAULT_TOPOLOGY.to_string(),
            "examples/topology.toml".to_string(),
        ),
    };
    let topology =
        Topology::from_toml_str(&text, &source).map_err(|error| anyhow::anyhow!("{error}"))?;
    let mut nodes = topology.nodes().to_vec();
    for (position, node) in nodes.iter_mut().enumerate() {
        let port = u32::from(arguments.node_base_port) + position as u32;
        if port > u32::from(u16::MAX) {
            bail!(
                "--node-base-port {} leaves no port for node {}",
                arguments.node_base_port,
                node.id
            );
        }
        node.address = format!("127.0.0.1:{port}");
    }
    Topology::new(topology.epoch(), nodes).map_err(|error| anyhow::anyhow!("{error:?}"))
}

/// The role of the node named `name` (a name the topology file gave it).
fn node_role(name: &str) -> anyhow::Result<Role> {
    Ok(Role::Node(NodeName::parse(name).with_context(|| {
        format!("node name {name:?} of the topology cannot name a key")
    })?))
}

/// The cluster layout in meta-raft: on the first start (no layout yet) the topology
/// becomes version 1; later starts keep what meta-raft holds (nodes added, drained or
/// moved since), whatever the file says now.
async fn ensure_layout(
    meta_address: &str,
    keyring: &Keyring,
    transport: &Transport,
    topology: &Topology,
) -> anyhow::Result<()> {
    let metadata = shardlet_model::Metadata::new(Arc::new(crate::connect::meta_client(
        &[meta_address.to_string()],
        keyring,
        MetaCaller::Admin,
        transport,
    )?));
    let current = shardlet_model::layout::operations::read(&metadata)
        .await
        .context("cannot read the cluster layout")?;
    if current.record.version > 0 {
        say!(
            "# Keeping cluster layout version {} from the metadata service ({} nodes); `shardlet admin layout show` lists it.",
            current.record.version,
            current.record.nodes.len()
        );
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64);
    shardlet_model::layout::operations::import(&metadata, topology, false, now)
        .await
        .context("cannot import the topology as the first cluster layout")?;
    Ok(())
}

/// Where each role's key file is: `DIR/keys/ROLE.keys`.
struct KeyFiles {
    directory: PathBuf,
}

impl KeyFiles {
    fn path(&self, role: Role) -> String {
        let name = match role {
            Role::Node(name) => format!("node-{name}"),
            other => other.to_string(),
        };
        self.directory
            .join(format!("{name}.keys"))
            .display()
            .to_string()
    }
}

/// Writes every role's key file (derived from the cluster secret; rewritten on every
/// start, which is idempotent: derivation is deterministic) into `directory` (0700).
fn write_key_files(
    directory: &Path,
    keyring: &Keyring,
    topology: &Topology,
) -> anyhow::Result<KeyFiles> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)
        .and_then(|()| std::fs::set_permissions(directory, std::fs::Permissions::from_mode(0o700)))
        .with_context(|| format!("cannot create {}", directory.display()))?;
    let files = KeyFiles {
        directory: directory.to_path_buf(),
    };
    let mut roles = vec![
        Role::Member,
        Role::Gateway,
        Role::Controller,
        Role::Admin,
        Role::Predictor,
    ];
    for node in topology.nodes() {
        roles.push(node_role(&node.name)?);
    }
    for role in roles {
        let derived = keyring.for_role(role)?;
        let text = derived.render(&format!(
            "shardlet keys for role {role} ({}), written by `shardlet dev`",
            derived.describe()
        ))?;
        write_private(Path::new(&files.path(role)), text.as_bytes())?;
    }
    Ok(files)
}

/// The dev S3 key: kept in DIR/s3-credentials.json (written and fsynced before it is
/// registered, so a crash in between only means registering it again next run), and
/// registered in meta-raft (idempotent).
async fn s3_credentials(
    path: &Path,
    meta_address: &str,
    keyring: &Keyring,
    transport: &Transport,
) -> anyhow::Result<CredentialRecord> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Stored {
        access_key: String,
        secret_key: String,
    }
    let record = match std::fs::read_to_string(path) {
        Ok(text) => {
            let stored: Stored = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not valid credentials JSON; delete it to get a new key",
                    path.display()
                )
            })?;
            CredentialRecord {
                access_key: stored.access_key,
                secret_key: SecretKey(stored.secret_key),
                owner: "dev".into(),
                created_unix_ms: 0,
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let record = new_credential("dev");
            let stored = Stored {
                access_key: record.access_key.clone(),
                secret_key: record.secret_key.0.clone(),
            };
            write_private(path, serde_json::to_string_pretty(&stored)?.as_bytes())?;
            record
        }
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let client = crate::connect::meta_client(
        &[meta_address.to_string()],
        keyring,
        MetaCaller::Admin,
        transport,
    )?;
    Buckets::new(Catalog::new(Arc::new(client)))
        .ensure_credential(&record)
        .await
        .context("cannot register the dev S3 key in the metadata service")?;
    Ok(record)
}

/// Reads `path`, or creates it with 32 random bytes in hex, readable by the owner only.
fn load_or_create_secret(path: &Path) -> anyhow::Result<ClusterSecret> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return ClusterSecret::new(&text)
                .with_context(|| format!("invalid cluster secret in {}", path.display()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
    let text = hex::encode(rand::random::<[u8; 32]>());
    write_private(path, format!("{text}\n").as_bytes())?;
    Ok(ClusterSecret::new(&text)?)
}

fn print_welcome(
    s3_address: &str,
    admin_address: &str,
    security: &Security,
    data: &Path,
    topology: &Topology,
    credentials: &CredentialRecord,
) {
    let scheme = security.scheme();
    let endpoint = format!("{scheme}://{s3_address}");
    let zones: std::collections::BTreeSet<&str> =
        topology.nodes().iter().map(|n| n.zone.as_str()).collect();
    let regions: std::collections::BTreeSet<&str> =
        topology.nodes().iter().map(|n| n.region.as_str()).collect();
    say!(
        "\
# Shardlet dev is running: {nodes} storage nodes in {zones} zones and {regions} regions,
# one metadata member, the S3 gateway at {endpoint} (metrics: {scheme}://{admin_address}/metrics).
# Data and logs in {data}. Stop with Ctrl-C; running again keeps data and credentials.
# Paste (or eval) these lines:
export AWS_ENDPOINT_URL={endpoint}
export AWS_ACCESS_KEY_ID={access}
export AWS_SECRET_ACCESS_KEY={secret}
export AWS_REGION={REGION}
# then, for example:
#   aws --endpoint-url {endpoint} s3 mb s3://demo
#   aws --endpoint-url {endpoint} s3 cp ./README.md s3://demo/README.md
#   aws --endpoint-url {endpoint} s3 ls s3://demo/",
        nodes = topology.nodes().len(),
        zones = zones.len(),
        regions = regions.len(),
        data = data.display(),
        access = credentials.access_key,
        secret = credentials.secret_key.0,
    );
    if let Some(ca) = &security.ca {
        let ca = ca.display();
        say!(
            "\
# Every port speaks HTTPS with a certificate from the local CA {ca}:
export AWS_CA_BUNDLE={ca}
#   aws CLI: AWS_CA_BUNDLE above, or --ca-bundle {ca}
#   boto3:   boto3.client(\"s3\", endpoint_url=\"{endpoint}\", verify=\"{ca}\")
#   curl:    curl --cacert {ca} {scheme}://{admin_address}/metrics"
        );
    }
}
