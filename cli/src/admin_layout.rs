//! `shardlet admin layout show|assign|remove|apply|revert|import` (and `status`, in
//! `admin_layout_status.rs`): the cluster layout in
//! meta-raft (`shardlet_model::layout`, docs/layout.md). Changes are staged, reviewed
//! with `show`, and applied as the next version with `apply --version N`.

use crate::output::{out, out_text};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use shardlet_model::layout::check::{check_assignment, check_name, next_layout};
use shardlet_model::layout::operations::{self, Imported};
use shardlet_model::layout::{
    parse_capacity, Change, ChangeSource, LayoutRecord, RoleAssignment, StagedChange,
};
use shardlet_model::Metadata;
use shardlet_net::Transport;

use crate::connect::KeyArguments;

#[derive(clap::Subcommand)]
pub enum LayoutCommand {
    /// The applied layout, the staged changes (pending roles of nodes that announced
    /// themselves included) and what applying them would give.
    Show(Target),
    /// Stage a node's role: a new node (every field needed) or a change to one.
    Assign(AssignArguments),
    /// Stage a node's removal: draining (it takes nothing new and is emptied), or
    /// decommissioned for good with --decommission.
    Remove(RemoveArguments),
    /// Apply the staged changes as version N (the current version + 1, as `show` says).
    Apply(ApplyArguments),
    /// Drop every staged change.
    Revert(Target),
    /// Make a topology file (examples/topology.toml) the next layout version.
    Import(ImportArguments),
    /// The version applied against the one the controller rebalances towards, the
    /// rebalance's progress (moved, remaining, rate, ETA) and what draining nodes
    /// still hold; --watch follows until done.
    Status(crate::admin_layout_status::StatusArguments),
}

#[derive(clap::Args)]
pub struct Target {
    /// Metadata service members (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true, env = "SHARDLET_META")]
    meta: Vec<String>,
    /// The admin's keys (`meta.admin`), or the cluster secret.
    #[command(flatten)]
    keys: KeyArguments,
}

#[derive(clap::Args)]
pub struct AssignArguments {
    /// The node's name (a DNS label).
    name: String,
    #[arg(long)]
    region: Option<String>,
    /// The node's zone (its failure domain).
    #[arg(long)]
    zone: Option<String>,
    /// Bytes, or with a unit: 500GiB, 4T, 2TB.
    #[arg(long)]
    capacity: Option<String>,
    /// Share of new data (default: 1.0 per TiB of capacity).
    #[arg(long)]
    weight: Option<f64>,
    /// `host:port` of the node's API.
    #[arg(long)]
    address: Option<String>,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
pub struct RemoveArguments {
    /// The node's name.
    name: String,
    /// The node is gone for good: its name and id are never used again. Refused while
    /// the node still holds fragments (drain it first: `layout remove NAME`, then
    /// `layout status` until it holds none), unless --force.
    #[arg(long)]
    decommission: bool,
    /// With --decommission: the node is dead hardware, whatever it still holds is
    /// rebuilt from the other copies instead of copied from it (redundancy dips until
    /// the repair is done).
    #[arg(long, requires = "decommission")]
    force: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
pub struct ApplyArguments {
    /// The version the staged changes become: the current version + 1. Required, so two
    /// operators never apply blindly over each other.
    #[arg(long, required = true)]
    version: u64,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
pub struct ImportArguments {
    /// The topology file.
    file: PathBuf,
    /// Replace a layout that already has other nodes (nodes the file omits are kept as
    /// decommissioned: ids are never reused).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    target: Target,
}

fn metadata(target: &Target, transport: &Transport) -> anyhow::Result<Metadata> {
    Ok(Metadata::new(Arc::new(crate::connect::admin_meta_client(
        &target.meta,
        &target.keys,
        transport,
    )?)))
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Runs `command` against the members, reached over `transport` (the global TLS flags).
pub async fn run(command: LayoutCommand, transport: &Transport) -> anyhow::Result<()> {
    match command {
        LayoutCommand::Status(arguments) => {
            crate::admin_layout_status::run(arguments, transport).await?;
        }
        LayoutCommand::Show(target) => {
            let layout = operations::read(&metadata(&target, transport)?)
                .await
                .context("cannot read the cluster layout")?;
            out_text!("{}", describe(&layout.record));
        }
        LayoutCommand::Assign(arguments) => {
            check_name(&arguments.name).context("layout assign")?;
            let role = RoleAssignment {
                region: arguments.region,
                zone: arguments.zone,
                capacity_bytes: arguments
                    .capacity
                    .as_deref()
                    .map(parse_capacity)
                    .transpose()
                    .context("--capacity")?,
                weight: arguments.weight,
                address: arguments.address,
            };
            anyhow::ensure!(
                role != RoleAssignment::default(),
                "layout assign {}: nothing to assign; give --zone, --region, --capacity, \
                 --weight or --address",
                arguments.name
            );
            check_assignment(&arguments.name, &role).context("layout assign")?;
            stage(
                &arguments.target,
                transport,
                arguments.name,
                Change::Assign(role),
            )
            .await?;
        }
        LayoutCommand::Remove(arguments) => {
            check_name(&arguments.name).context("layout remove")?;
            let change = if arguments.decommission {
                if !arguments.force {
                    refuse_decommission_while_holding(
                        &arguments.target,
                        transport,
                        &arguments.name,
                    )
                    .await?;
                }
                Change::Decommission
            } else {
                Change::Remove
            };
            stage(&arguments.target, transport, arguments.name, change).await?;
        }
        LayoutCommand::Apply(arguments) => {
            let metadata = metadata(&arguments.target, transport)?;
            let applied = operations::apply(&metadata, arguments.version, now_unix_ms())
                .await
                .with_context(|| format!("layout apply --version {}", arguments.version))?;
            out!(
                "applied cluster layout version {}: {} nodes; gateways and controllers use it within seconds",
                applied.record.version,
                applied.record.nodes.len()
            );
        }
        LayoutCommand::Revert(target) => {
            let (layout, dropped) = operations::revert(&metadata(&target, transport)?)
                .await
                .context("layout revert")?;
            out!(
                "dropped {dropped} staged changes; the layout stays at version {}",
                layout.record.version
            );
        }
        LayoutCommand::Import(arguments) => {
            let topology = crate::connect::load_topology(&arguments.file)?;
            let metadata = metadata(&arguments.target, transport)?;
            match operations::import(&metadata, &topology, arguments.force, now_unix_ms())
                .await
                .with_context(|| format!("layout import {}", arguments.file.display()))?
            {
                Imported::Applied(version) => out!(
                    "imported {} as cluster layout version {version}: {} nodes",
                    arguments.file.display(),
                    topology.nodes().len()
                ),
                Imported::Unchanged(version) => out!(
                    "the cluster layout (version {version}) already has exactly the nodes of {}; nothing changed",
                    arguments.file.display()
                ),
            }
        }
    }
    Ok(())
}

/// A node that still holds fragments is not decommissioned by accident: each of them
/// would drop a shardlet's redundancy by one until repair rebuilt it elsewhere, and a
/// fragment whose other copies are already gone would be lost. A live node drains first;
/// dead hardware takes `--force`.
async fn refuse_decommission_while_holding(
    target: &Target,
    transport: &Transport,
    name: &str,
) -> anyhow::Result<()> {
    let meta = Arc::new(crate::connect::admin_meta_client(
        &target.meta,
        &target.keys,
        transport,
    )?);
    let metadata = Metadata::new(meta.clone());
    let layout = operations::read(&metadata)
        .await
        .context("layout remove: cannot read the cluster layout")?
        .record;
    let Some(node) = layout.nodes.iter().find(|node| node.name == name) else {
        // Not applied yet (a pending role): it holds nothing.
        return Ok(());
    };
    let held = crate::admin_nodes::fragments_on(&meta, node.id)
        .await
        .context("layout remove: cannot count the node's fragments")?;
    anyhow::ensure!(
        held == 0,
        "layout remove {name} --decommission: node {name} (id {}) still holds {held} fragments; \
         drain it first (`shardlet admin layout remove {name}`, apply, then `shardlet admin \
         layout status` until it holds none), or, if it is dead hardware whose data must be \
         rebuilt from the other copies, add --force",
        node.id
    );
    Ok(())
}

async fn stage(
    target: &Target,
    transport: &Transport,
    name: String,
    change: Change,
) -> anyhow::Result<()> {
    let metadata = metadata(target, transport)?;
    let staged = StagedChange {
        name: name.clone(),
        change,
        source: ChangeSource::Operator,
        staged_unix_ms: now_unix_ms(),
    };
    let layout = operations::stage(&metadata, staged)
        .await
        .with_context(|| format!("cannot stage the change of node {name}"))?;
    let record = &layout.record;
    match record.staged_for(&name) {
        Some(staged) => out!("staged: {}", describe_change(staged)),
        None => out!("dropped the staged change of node {name} (it was not applied yet)"),
    }
    out!(
        "review with `shardlet admin layout show`, then `shardlet admin layout apply --version {}`",
        record.version + 1
    );
    Ok(())
}

fn describe_change(staged: &StagedChange) -> String {
    let what = match &staged.change {
        Change::Assign(role) => {
            let mut fields = Vec::new();
            if let Some(region) = &role.region {
                fields.push(format!("region={region}"));
            }
            if let Some(zone) = &role.zone {
                fields.push(format!("zone={zone}"));
            }
            if let Some(capacity) = role.capacity_bytes {
                fields.push(format!("capacity={capacity}"));
            }
            if let Some(weight) = role.weight {
                fields.push(format!("weight={weight}"));
            }
            if let Some(address) = &role.address {
                fields.push(format!("address={address}"));
            }
            format!("assign {}", fields.join(" "))
        }
        Change::Remove => "remove (drain)".to_string(),
        Change::Decommission => "decommission".to_string(),
    };
    let source = match staged.source {
        ChangeSource::Operator => "operator",
        ChangeSource::Announced => "announced by the node: pending role",
    };
    format!("{} {what} ({source})", staged.name)
}

/// What `layout show` prints.
fn describe(layout: &LayoutRecord) -> String {
    let mut text = String::new();
    if layout.version == 0 {
        text.push_str("cluster layout: none applied yet (version 0)\n");
    } else {
        text.push_str(&format!(
            "cluster layout version {} (by {}, at unix ms {})\n",
            layout.version, layout.applied_by, layout.applied_unix_ms
        ));
        text.push_str(&format!(
            "{:>4}  {:<24} {:<22} {:<12} {:<14} {:>16} {:>8}  {}\n",
            "ID", "NAME", "ADDRESS", "REGION", "ZONE", "CAPACITY", "WEIGHT", "STATE"
        ));
        for node in &layout.nodes {
            text.push_str(&format!(
                "{:>4}  {:<24} {:<22} {:<12} {:<14} {:>16} {:>8.3}  {}\n",
                node.id.0,
                node.name,
                node.address,
                node.region,
                node.zone,
                node.capacity_bytes,
                node.effective_weight(),
                node.state.as_str()
            ));
        }
    }
    if layout.staged.is_empty() {
        text.push_str("no staged changes\n");
        return text;
    }
    text.push_str("staged changes:\n");
    for staged in &layout.staged {
        text.push_str(&format!("  {}\n", describe_change(staged)));
    }
    match next_layout(layout, &layout.staged, 0, "preview") {
        Ok(next) => text.push_str(&format!(
            "apply them with: shardlet admin layout apply --version {} ({} nodes)\n",
            next.version,
            next.nodes.len()
        )),
        Err(error) => text.push_str(&format!(
            "they cannot be applied as they are: {error}\n(change them with `layout assign`/`layout remove`, or drop them with `layout revert`)\n"
        )),
    }
    text
}
