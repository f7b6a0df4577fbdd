//! `shardlet admin layout status [--watch]`: the layout version applied against the one
//! the controller's rebalance works towards, its progress (shardlets and bytes moved and
//! remaining, rate, ETA; `g/rebalance`, written by the active controller after each
//! pass) and what draining nodes still hold (the node → fragment index). With `--watch`
//! it follows until the rebalance is done and no draining node holds anything, with an
//! indicatif bar when stdout is a terminal.

use crate::output::out_text;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use shardlet_core::NodeId;
use shardlet_meta::MetaClient;
use shardlet_model::layout::{operations, AdminState, LayoutRecord};
use shardlet_model::schema::{keys, RebalanceRecord};
use shardlet_model::Metadata;
use shardlet_net::Transport;

use crate::connect::KeyArguments;

/// Pause between two looks with `--watch`.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(clap::Args)]
pub struct StatusArguments {
    /// Follow until the rebalance is done and draining nodes are empty.
    #[arg(long)]
    watch: bool,
    /// With --watch, give up (exit status 1) after this many seconds.
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    timeout_seconds: u64,
    /// Metadata service members (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true, env = "SHARDLET_META")]
    meta: Vec<String>,
    /// The admin's keys (`meta.admin`), or the cluster secret.
    #[command(flatten)]
    keys: KeyArguments,
}

/// One look at the cluster.
struct Look {
    layout: LayoutRecord,
    progress: Option<RebalanceRecord>,
    /// Draining nodes: (id, name, fragments still indexed on it).
    draining: Vec<(NodeId, String, usize)>,
}

impl Look {
    fn done(&self) -> bool {
        let rebalanced = self.progress.as_ref().is_some_and(|progress| {
            progress.layout_version >= self.layout.version && progress.shardlets_remaining == 0
        });
        rebalanced && self.draining.iter().all(|(_, _, held)| *held == 0)
    }
}

pub async fn run(arguments: StatusArguments, transport: &Transport) -> anyhow::Result<()> {
    let meta = Arc::new(crate::connect::admin_meta_client(
        &arguments.meta,
        &arguments.keys,
        transport,
    )?);
    let metadata = Metadata::new(meta.clone());
    let first = look(&meta, &metadata).await?;
    if !arguments.watch {
        out_text!("{}", describe(&first));
        return Ok(());
    }
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} rebalance [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let give_up = tokio::time::Instant::now() + Duration::from_secs(arguments.timeout_seconds);
    let mut current = first;
    loop {
        match (&bar, &current.progress) {
            (Some(bar), Some(progress)) => {
                bar.set_length(progress.bytes_moved + progress.bytes_remaining);
                bar.set_position(progress.bytes_moved);
                let held: usize = current.draining.iter().map(|(_, _, held)| held).sum();
                bar.set_message(format!(
                    "version {}, {} shardlets left, {held} fragments on draining nodes",
                    progress.layout_version, progress.shardlets_remaining
                ));
            }
            (Some(_), None) => {}
            (None, _) => out_text!("{}", describe(&current)),
        }
        if current.done() {
            if let Some(bar) = &bar {
                bar.finish();
            }
            out_text!("{}", describe(&current));
            return Ok(());
        }
        if tokio::time::Instant::now() >= give_up {
            if let Some(bar) = &bar {
                bar.abandon();
            }
            bail!(
                "the rebalance is not done after {}s; it continues",
                arguments.timeout_seconds
            );
        }
        tokio::time::sleep(WATCH_INTERVAL).await;
        current = look(&meta, &metadata).await?;
    }
}

async fn look(meta: &MetaClient, metadata: &Metadata) -> anyhow::Result<Look> {
    let layout = operations::read(metadata)
        .await
        .context("cannot read the cluster layout")?
        .record;
    let progress = metadata
        .read::<RebalanceRecord>(keys::CLUSTER_REBALANCE.as_bytes())
        .await
        .context("cannot read the rebalance progress (g/rebalance)")?
        .map(|stored| stored.record);
    let mut draining = Vec::new();
    for node in layout
        .nodes
        .iter()
        .filter(|node| node.state == AdminState::Draining)
    {
        let held = crate::admin_nodes::fragments_on(meta, node.id).await?;
        draining.push((node.id, node.name.clone(), held));
    }
    Ok(Look {
        layout,
        progress,
        draining,
    })
}

fn describe(look: &Look) -> String {
    let mut text = format!("cluster layout version {} applied\n", look.layout.version);
    match &look.progress {
        None => text.push_str("rebalance: no controller has reported yet\n"),
        Some(progress) => {
            let now = now_unix_ms();
            let seconds = now.saturating_sub(progress.started_unix_ms) as f64 / 1000.0;
            let rate = if seconds > 0.0 {
                progress.bytes_moved as f64 / seconds
            } else {
                0.0
            };
            let behind = if progress.layout_version < look.layout.version {
                " (the controller has not seen the applied version yet)"
            } else {
                ""
            };
            text.push_str(&format!(
                "rebalance towards version {}{behind}: {} shardlets ({} bytes) moved, {} shardlets ({} bytes) remaining, {} left to repair\n",
                progress.layout_version,
                progress.shardlets_moved,
                progress.bytes_moved,
                progress.shardlets_remaining,
                progress.bytes_remaining,
                progress.shardlets_left_to_repair,
            ));
            let eta = if progress.bytes_remaining == 0 {
                "done".to_string()
            } else if rate > 0.0 {
                format!("about {:.0} s left", progress.bytes_remaining as f64 / rate)
            } else {
                "unknown".to_string()
            };
            text.push_str(&format!(
                "  started {:.0} s ago, last pass {:.0} s ago, {:.0} bytes/s, {eta}\n",
                seconds,
                now.saturating_sub(progress.updated_unix_ms) as f64 / 1000.0,
                rate
            ));
            if let Some(reason) = &progress.waiting_for {
                text.push_str(&format!("  waiting for: {reason}\n"));
            }
        }
    }
    for (id, name, held) in &look.draining {
        text.push_str(&format!(
            "draining node {name} (id {id}) still holds {held} fragments\n"
        ));
    }
    text
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
