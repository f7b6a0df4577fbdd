//! `shardlet admin …`: operator commands against running processes.

use crate::output::{complain, out, out_text};
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use futures::StreamExt;
use shardlet_core::FragmentId;
use shardlet_gateway::object::catalog::Catalog;
use shardlet_gateway::object::commit::Buckets;
use shardlet_model::schema::{BucketRecord, GrantPermission};
use shardlet_net::arguments::TlsArguments;
use shardlet_net::Transport;
use shardlet_node::client::{ClientOptions, PutOutcome, ReadRange};
use shardlet_node::NodeClient;

use shardlet_auth::{KeyName, Role};

use crate::connect::KeyArguments;

#[derive(clap::Args)]
pub struct AdminArguments {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand)]
enum AdminCommand {
    /// Fragments stored on one storage node.
    #[command(subcommand)]
    Fragment(FragmentCommand),
    /// S3 credentials.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Storage node states as the controller recorded them, with fragment counts.
    Nodes(crate::admin_nodes::NodesArguments),
    /// Empty a storage node: mark it draining and follow the evacuation.
    Drain(crate::admin_nodes::DrainArguments),
    /// Bucket settings.
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Settings every gateway and controller shares (the upload deadline).
    #[command(subcommand)]
    Cluster(crate::admin_cluster::ClusterCommand),
    /// The metadata cluster's members: status, add, promote, remove.
    #[command(subcommand)]
    Meta(crate::admin_meta::MetaCommand),
    /// The cluster layout: storage nodes, zones, capacities; staged changes, versions.
    #[command(subcommand)]
    Layout(crate::admin_layout::LayoutCommand),
    /// A storage node's health report (unauthenticated: no keys needed).
    Health {
        /// Base URL of the node, e.g. http://127.0.0.1:19101
        #[arg(long)]
        node: String,
    },
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// Create an access key and secret (printed once; stored in meta-raft).
    Create(crate::gateway_command::KeyCreateArguments),
    /// Delete an access key (leaked or retired): gateways refuse it within 10 s; the
    /// owner's buckets stay.
    Delete(crate::gateway_command::KeyDeleteArguments),
    /// Write the key file of one process role, derived from the keys given (normally
    /// the cluster secret): hand each process only its own.
    Derive(DeriveArguments),
    /// Make the keys a JSON file declares present (idempotent): one line per key,
    /// created, unchanged or replaced (with --replace).
    Import(crate::admin_key_import::KeyImportArguments),
    /// List the access keys: access key, owner, creation time (never a secret).
    List(crate::gateway_command::KeyListArguments),
}

#[derive(clap::Args)]
struct DeriveArguments {
    /// member (meta-raft), gateway, controller, admin, predictor, or node (with --node).
    #[arg(long)]
    role: String,
    /// The storage node's name, for role node (its key is `node-NAME`).
    #[arg(long)]
    node: Option<String>,
    /// Where to write the key file (created 0600, replaced if present); `-` for stdout.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    keys: KeyArguments,
}

#[derive(clap::Subcommand)]
enum BucketCommand {
    /// The redundancy level new objects get when their PUT names no storage class
    /// (objects already stored keep theirs; the controller re-codes by heat later).
    SetRedundancy {
        /// Metadata service members (host:port), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        meta: Vec<String>,
        bucket: String,
        level: Level,
        #[command(flatten)]
        keys: KeyArguments,
    },
    /// Give an access key of another owner read or read-write access to a bucket
    /// (replaces the key's previous grant). The owner keeps full control.
    Grant {
        /// Metadata service members (host:port), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        meta: Vec<String>,
        bucket: String,
        access_key: String,
        permission: GrantLevel,
        #[command(flatten)]
        keys: KeyArguments,
    },
    /// Take a key's grant on a bucket away.
    Revoke {
        /// Metadata service members (host:port), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        meta: Vec<String>,
        bucket: String,
        access_key: String,
        #[command(flatten)]
        keys: KeyArguments,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum GrantLevel {
    /// GetObject, HeadObject, listings.
    Read,
    /// Read, plus PutObject, CopyObject, DeleteObject(s), multipart uploads.
    ReadWrite,
}

impl From<GrantLevel> for GrantPermission {
    fn from(level: GrantLevel) -> Self {
        match level {
            GrantLevel::Read => Self::Read,
            GrantLevel::ReadWrite => Self::ReadWrite,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Level {
    Low,
    Medium,
    High,
}

impl From<Level> for shardlet_core::RedundancyLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Low => Self::Low,
            Level::Medium => Self::Medium,
            Level::High => Self::High,
        }
    }
}

#[derive(clap::Args)]
struct NodeTarget {
    /// Base URL of the node, e.g. http://127.0.0.1:19101
    #[arg(long)]
    node: String,
    /// The node's name: requests are signed with its key (`node-NAME`), derived from
    /// the keys given (the cluster secret, `storage`, or that node's own key file).
    #[arg(long)]
    node_name: String,
    #[command(flatten)]
    keys: KeyArguments,
}

#[derive(clap::Subcommand)]
enum FragmentCommand {
    /// Store a fragment from a file (or stdin with `--file -`).
    Put {
        #[command(flatten)]
        node: NodeTarget,
        id: FragmentId,
        #[arg(long)]
        file: PathBuf,
    },
    /// Write a fragment (or a byte range of it) to stdout or a file.
    Get {
        #[command(flatten)]
        node: NodeTarget,
        id: FragmentId,
        /// First byte to read (with --last, or to the end).
        #[arg(long)]
        first: Option<u64>,
        #[arg(long, requires = "first")]
        last: Option<u64>,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Print a fragment's length and CRC32C.
    Head {
        #[command(flatten)]
        node: NodeTarget,
        id: FragmentId,
    },
    Delete {
        #[command(flatten)]
        node: NodeTarget,
        id: FragmentId,
    },
    /// List fragments (one page, or all with --all).
    List {
        #[command(flatten)]
        node: NodeTarget,
        #[arg(long)]
        after: Option<FragmentId>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        all: bool,
    },
}

fn client(target: &NodeTarget, transport: &Transport) -> anyhow::Result<NodeClient> {
    let keyring = crate::connect::load_keyring(&target.keys, None)?;
    let name = shardlet_auth::NodeName::parse(&target.node_name)
        .map_err(|error| anyhow::anyhow!("--node-name: {error}"))?;
    let key = crate::connect::signing_key(&keyring, KeyName::Node(name))?;
    let options = ClientOptions {
        transport: transport.clone(),
        ..ClientOptions::default()
    };
    Ok(NodeClient::with_options(&target.node, key, options)?)
}

pub async fn run(arguments: AdminArguments, tls: &TlsArguments) -> anyhow::Result<()> {
    // Every command that connects needs the cluster's CA or an explicit
    // --insecure-plaintext; `key derive` only writes a file and needs neither.
    let transport = || tls.transport();
    match arguments.command {
        AdminCommand::Health { node } => {
            let report = shardlet_node::client::health_at(&node, &transport()?).await?;
            out!("{}", serde_json_pretty(&report)?);
        }
        AdminCommand::Fragment(command) => fragment(command, &transport()?).await?,
        AdminCommand::Nodes(arguments) => {
            crate::admin_nodes::nodes(arguments, &transport()?).await?
        }
        AdminCommand::Drain(arguments) => {
            crate::admin_nodes::drain(arguments, &transport()?).await?
        }
        AdminCommand::Key(KeyCommand::Create(arguments)) => {
            crate::gateway_command::create_key(arguments, &transport()?).await?
        }
        AdminCommand::Key(KeyCommand::Delete(arguments)) => {
            crate::gateway_command::delete_key(arguments, &transport()?).await?
        }
        AdminCommand::Key(KeyCommand::Derive(arguments)) => derive_keys(arguments)?,
        AdminCommand::Key(KeyCommand::List(arguments)) => {
            crate::gateway_command::list_keys(arguments, &transport()?).await?
        }
        AdminCommand::Key(KeyCommand::Import(arguments)) => {
            crate::admin_key_import::import_keys(arguments, &transport()?).await?
        }
        AdminCommand::Bucket(command) => bucket(command, &transport()?).await?,
        AdminCommand::Cluster(command) => crate::admin_cluster::run(command, &transport()?).await?,
        AdminCommand::Meta(command) => crate::admin_meta::run(command, &transport()?).await?,
        AdminCommand::Layout(command) => crate::admin_layout::run(command, &transport()?).await?,
    }
    Ok(())
}

async fn bucket(command: BucketCommand, transport: &Transport) -> anyhow::Result<()> {
    let buckets = |meta: &[String], keys: &KeyArguments| -> anyhow::Result<Buckets> {
        let client = crate::connect::admin_meta_client(meta, keys, transport)?;
        Ok(Buckets::new(Catalog::new(std::sync::Arc::new(client))))
    };
    match command {
        BucketCommand::SetRedundancy {
            meta,
            bucket,
            level,
            keys,
        } => {
            let updated = buckets(&meta, &keys)?
                .set_bucket_redundancy(&bucket, level.into())
                .await
                .with_context(|| format!("cannot set the redundancy of bucket {bucket}"))?;
            out!(
                "bucket {}: default redundancy {:?}",
                updated.name,
                updated.default_redundancy
            );
        }
        BucketCommand::Grant {
            meta,
            bucket,
            access_key,
            permission,
            keys,
        } => {
            let updated = buckets(&meta, &keys)?
                .set_grant(&bucket, &access_key, Some(permission.into()))
                .await
                .with_context(|| format!("cannot grant {access_key} access to bucket {bucket}"))?;
            print_grants(&updated);
        }
        BucketCommand::Revoke {
            meta,
            bucket,
            access_key,
            keys,
        } => {
            let updated = buckets(&meta, &keys)?
                .set_grant(&bucket, &access_key, None)
                .await
                .with_context(|| {
                    format!("cannot revoke {access_key}'s access to bucket {bucket}")
                })?;
            print_grants(&updated);
        }
    }
    Ok(())
}

fn print_grants(bucket: &BucketRecord) {
    out!("bucket {}: owner {}", bucket.name, bucket.owner);
    for grant in &bucket.grants {
        out!("  {} {}", grant.access_key, grant.permission.as_str());
    }
    if bucket.grants.is_empty() {
        out!("  (no grants)");
    }
}

/// `shardlet admin key derive`: the key file of one role, written owner-only.
fn derive_keys(arguments: DeriveArguments) -> anyhow::Result<()> {
    let role = Role::parse(&arguments.role, arguments.node.as_deref())
        .map_err(|error| anyhow::anyhow!("--role: {error}"))?;
    let keyring = crate::connect::load_keyring(&arguments.keys, None)?;
    let derived = keyring
        .for_role(role)
        .with_context(|| format!("cannot derive the keys of role {role}"))?;
    let text = derived.render(&format!(
        "shardlet keys for role {role} ({}): pass with --key-file; keep this file 0600",
        derived.describe()
    ))?;
    if arguments.out.as_os_str() == "-" {
        out_text!("{}", text.as_str());
        return Ok(());
    }
    crate::connect::write_private(&arguments.out, text.as_bytes())?;
    complain!(
        "wrote the keys of role {role} ({}) to {}",
        derived.describe(),
        arguments.out.display()
    );
    Ok(())
}

fn serde_json_pretty<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)?)
}

async fn fragment(command: FragmentCommand, transport: &Transport) -> anyhow::Result<()> {
    match command {
        FragmentCommand::Put { node, id, file } => {
            let bytes = if file.as_os_str() == "-" {
                let mut buffer = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer)?;
                buffer
            } else {
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            let length = bytes.len();
            let outcome = client(&node, transport)?.put(&id, bytes.into()).await?;
            let what = match outcome {
                PutOutcome::Created => "stored",
                PutOutcome::AlreadyStored => "already stored (identical)",
            };
            out!("{id}: {what}, {length} bytes");
        }
        FragmentCommand::Get {
            node,
            id,
            first,
            last,
            output,
        } => {
            let client = client(&node, transport)?;
            let mut stream = match (first, last) {
                (None, _) => client.get(&id).await?,
                (Some(first), None) => client.get_range(&id, ReadRange::From { first }).await?,
                (Some(first), Some(last)) => {
                    client
                        .get_range(&id, ReadRange::Inclusive { first, last })
                        .await?
                }
            };
            let mut sink: Box<dyn Write> = match &output {
                Some(path) => Box::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            while let Some(chunk) = stream.next().await {
                sink.write_all(&chunk?)?;
            }
            sink.flush()?;
        }
        FragmentCommand::Head { node, id } => {
            let info = client(&node, transport)?.head(&id).await?;
            out!("{id} length={} crc32c={}", info.length, info.crc32c);
        }
        FragmentCommand::Delete { node, id } => {
            client(&node, transport)?.delete(&id).await?;
            out!("{id}: deleted");
        }
        FragmentCommand::List {
            node,
            after,
            limit,
            all,
        } => {
            let client = client(&node, transport)?;
            let mut after = after;
            loop {
                let page = client.list(after.as_ref(), limit).await?;
                for fragment in &page.fragments {
                    out!("{} {} {}", fragment.id, fragment.length, fragment.crc32c);
                }
                match page.next_after {
                    Some(next) if all => after = Some(next),
                    _ => break,
                }
            }
        }
    }
    Ok(())
}
