//! `shardlet`: one binary for every Shardlet process and for operators.
//!
//! - `shardlet node …`: a storage node;
//! - `shardlet dev --data DIR`: a whole local cluster (metadata, 12 storage nodes, S3 gateway);
//! - `shardlet admin fragment put|get|head|delete|list --node URL …`: talk to a node;
//! - `shardlet meta …`: a member of the metadata service;
//! - `shardlet gateway …`: the S3 gateway; `shardlet admin key create`: S3 credentials;
//!   `shardlet admin key derive --role R`: a process's key file; `shardlet admin key
//!   import --file F`: keys declared in a file;
//! - `shardlet controller …`: failure detection, repair, scrub, transitions;
//!   `shardlet admin nodes` / `shardlet admin drain NODE`: node states, evacuation;
//! - `shardlet admin cluster show|set`: settings every process shares (upload deadline);
//! - `shardlet admin meta status|add|promote|remove`: the metadata cluster's members.
//! - `shardlet admin layout show|assign|remove|apply|revert|import`: the cluster layout.
//!
//! Module order, lowest first: `connect` (keys, metadata client, topology file; imports
//! no command), then one module per command (`*_command`, `admin`, `admin_cluster`,
//! `admin_key_import`, `admin_layout`, `admin_meta`, `admin_nodes`, `dev`),
//! then this file, which parses the command line and dispatches. Commands never import
//! this file or each other's internals beyond what `admin` reuses of `gateway_command`.
//!
//! Must never hold logic of its own beyond argument parsing and printing: every process
//! is a library's `run` (storage-node, meta-raft, gateway, controller), so the tests and
//! `shardlet dev` drive the same code. Never imports the test kit's test layer.

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod output;

mod admin;
mod admin_cluster;
mod admin_key_import;
mod admin_layout;
mod admin_layout_status;
mod admin_meta;
mod admin_nodes;
mod connect;
mod controller_command;
mod dev;
mod gateway_command;
mod meta_command;

use crate::output::complain;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use shardlet_net::arguments::TlsArguments;
use shardlet_node::NodeConfig;

#[derive(Parser)]
#[command(
    name = "shardlet",
    version,
    about = "Shardlet: a self-healing, S3-compatible object store"
)]
struct Cli {
    /// Log line format (the filter comes from RUST_LOG, default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(flatten)]
    tls: shardlet_net::arguments::TlsArguments,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a storage node.
    Node(NodeArguments),
    /// Start a local development setup in DIR and print how to talk to it.
    Dev(dev::DevArguments),
    /// Operator commands.
    Admin(admin::AdminArguments),
    /// Run one member of the metadata service (openraft over RocksDB).
    Meta(meta_command::MetaArgs),
    /// Run the S3 gateway.
    Gateway(gateway_command::GatewayArguments),
    /// Run the controller: failure detection, repair, scrub, heat-driven transitions.
    Controller(controller_command::ControllerArguments),
}

#[derive(clap::Args)]
struct NodeArguments {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long)]
    listen: SocketAddr,
    /// Data directory (created if missing).
    #[arg(long)]
    data: PathBuf,
    /// The node's name: its identity in the cluster layout (which allocates its id) and
    /// its key's name. A DNS label (a Kubernetes pod name fits).
    #[arg(long, env = "SHARDLET_NODE_NAME")]
    name: String,
    /// Removed: a node is known by its name; the layout gives it its id.
    #[arg(long, hide = true)]
    node_id: Option<u32>,
    /// Controllers to announce this node to (base URLs, comma-separated): the node
    /// appears as a pending role in `shardlet admin layout show` and learns its id once
    /// the layout is applied. Without it the node announces nothing (its role comes
    /// from `layout import` or `layout assign`).
    #[arg(long, value_delimiter = ',', env = "SHARDLET_CONTROLLER")]
    controller: Vec<String>,
    /// `host:port` where gateways and controllers reach this node (announced); default:
    /// the listen address, refused when it is a wildcard such as 0.0.0.0.
    #[arg(long, env = "SHARDLET_ADVERTISE")]
    advertise: Option<String>,
    /// The node's region (announced; a DNS label).
    #[arg(long, env = "SHARDLET_REGION")]
    region: Option<String>,
    /// The node's zone, its failure domain (announced; a DNS label).
    #[arg(long, env = "SHARDLET_ZONE")]
    zone: Option<String>,
    /// The capacity the node offers (announced): bytes, or with a unit (500G, 4T, 1TiB).
    #[arg(long, env = "SHARDLET_CAPACITY")]
    capacity: Option<String>,
    /// This node's key (`node-NAME`): `--key-file` from `shardlet admin key derive --role
    /// node --node NAME`.
    #[command(flatten)]
    keys: connect::KeyArguments,
    /// Refuse PUTs that would leave less free space than this.
    #[arg(long)]
    reserve_bytes: Option<u64>,
    /// Largest fragment accepted.
    #[arg(long)]
    max_fragment_bytes: Option<u64>,
    #[command(flatten)]
    server: shardlet_net::arguments::ServerArguments,
    /// Nonces of accepted requests remembered to refuse replays (≤ 40 bytes each);
    /// when full, requests get 503 until the oldest expire (60 s).
    #[arg(long, default_value_t = shardlet_auth::REPLAY_CACHE_ENTRIES_MAX_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    replay_cache_entries_max: u64,
}

fn main() -> ExitCode {
    shardlet_net::process_metrics::set_build_commit(env!("SHARDLET_BUILD_COMMIT"));
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            complain!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let tls = cli.tls;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Node(arguments) => run_node(arguments, &tls).await,
            Command::Dev(arguments) => dev::run(arguments).await,
            Command::Admin(arguments) => admin::run(arguments, &tls).await,
            Command::Meta(arguments) => meta_command::run(arguments, &tls).await,
            Command::Gateway(arguments) => gateway_command::run(arguments, &tls).await,
            Command::Controller(arguments) => controller_command::run(arguments, &tls).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            complain!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--region` / `--zone` of a node: a DNS label. An empty one gets its own message: it
/// comes from an environment variable that is set but empty, e.g. a Kubernetes pod's
/// `topology.kubernetes.io/zone` label read through the downward API where the cluster
/// does not fill it.
fn check_placement_label(node: &str, flag: &'static str, value: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !value.is_empty(),
        "--{flag} is empty (given as --{flag}= or an empty SHARDLET_{}, or a $(VARIABLE) in \
         the arguments that expanded to nothing, such as a pod label the cluster does not \
         fill): give the node's {flag}, or leave the flag out",
        flag.to_uppercase()
    );
    shardlet_model::layout::check::check_label(node, flag, value)
        .map_err(|error| anyhow::anyhow!("--{flag}: {error}"))
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A failed write of a log line (stderr closed: `shardlet dev` run with `2>&-`, a
    // supervisor gone) must not end the process: tracing-subscriber would report it
    // with `eprintln!`, which panics on the same closed stderr.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run_node(arguments: NodeArguments, tls: &TlsArguments) -> anyhow::Result<()> {
    anyhow::ensure!(
        arguments.node_id.is_none(),
        "--node-id was removed: a node is known by its name (--name NAME), and the cluster \
         layout gives it its id"
    );
    let name = shardlet_auth::NodeName::parse(&arguments.name)
        .map_err(|error| anyhow::anyhow!("--name: {error}"))?;
    let capacity_bytes = arguments
        .capacity
        .as_deref()
        .map(shardlet_model::layout::parse_capacity)
        .transpose()
        .map_err(|error| anyhow::anyhow!("--capacity: {error}"))?;
    for (flag, value) in [("region", &arguments.region), ("zone", &arguments.zone)] {
        if let Some(value) = value {
            check_placement_label(name.as_str(), flag, value)?;
        }
    }
    if let Some(advertise) = &arguments.advertise {
        shardlet_model::layout::check::check_address(advertise)
            .map_err(|error| anyhow::anyhow!("--advertise: {error}"))?;
    }
    let role = shardlet_auth::Role::Node(name);
    let keyring = connect::load_keyring(&arguments.keys, Some(role))?;
    let key = connect::require(&keyring, shardlet_auth::KeyName::Node(name))?;
    let transport = tls.transport()?;
    let mut config = NodeConfig::new(arguments.listen, arguments.data, name, key);
    if !arguments.controller.is_empty() {
        for controller in &arguments.controller {
            let url = reqwest::Url::parse(controller).map_err(|error| {
                anyhow::anyhow!("--controller {controller:?} is not a URL: {error}")
            })?;
            anyhow::ensure!(
                url.scheme() == transport.scheme() && url.host_str().is_some(),
                "--controller {controller:?}: this cluster is reached over {}://HOST:PORT",
                transport.scheme()
            );
        }
        config.announce = Some(shardlet_node::announce::AnnounceConfig {
            controllers: arguments.controller,
            advertise: arguments.advertise,
            region: arguments.region,
            zone: arguments.zone,
            capacity_bytes,
            transport,
        });
    }
    if let Some(reserve) = arguments.reserve_bytes {
        config.reserve_bytes = reserve;
    }
    if let Some(max) = arguments.max_fragment_bytes {
        config.max_fragment_bytes = max;
    }
    config.port = arguments.server.port(config.port.limits, tls)?;
    config.replay_cache_entries_max = usize::try_from(arguments.replay_cache_entries_max)?;
    shardlet_node::run(config, shardlet_node::shutdown_signal()).await?;
    tracing::info!("storage node stopped");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn a_meta_member_takes_exactly_one_of_member_id_and_member_id_from_hostname() {
        use clap::Parser as _;
        let parse = |extra: &[&str]| {
            let mut arguments = vec!["shardlet", "meta", "--data", "/tmp/meta"];
            arguments.extend_from_slice(extra);
            super::Cli::try_parse_from(arguments).map(|_| ())
        };
        assert!(parse(&["--member-id", "2"]).is_ok());
        assert!(parse(&["--member-id-from-hostname"]).is_ok());
        let neither = parse(&[]).unwrap_err().to_string();
        assert!(neither.contains("--member-id-from-hostname"), "{neither}");
        let both = parse(&["--member-id", "2", "--member-id-from-hostname"])
            .unwrap_err()
            .to_string();
        assert!(both.contains("cannot be used with"), "{both}");
    }

    #[test]
    fn an_empty_zone_or_region_is_refused_as_empty() {
        for flag in ["zone", "region"] {
            let error = super::check_placement_label("node-1", flag, "")
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("--{flag} is empty"))
                    && error.contains(&format!("SHARDLET_{}", flag.to_uppercase())),
                "{error}"
            );
        }
        assert!(super::check_placement_label("node-1", "zone", "Zone_A")
            .unwrap_err()
            .to_string()
            .contains("not a DNS label"));
        assert!(super::check_placement_label("node-1", "zone", "zone-a").is_ok());
    }
}
