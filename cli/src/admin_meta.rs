//! `shardlet admin meta status|add|promote|remove`: the metadata cluster's membership.
//!
//! Every command first asks each member for its status (`GET /cluster/status`, signed
//! with `meta.admin`): who is a voter or learner, who leads, how far each has applied,
//! whether it is ready. The safety rules (one change at a time, never the last voter, no
//! change whose quorum does not answer, odd voter counts unless `--force`) are
//! `shardlet_meta::membership_rules`; this file asks, prints and follows progress.

use crate::output::out;
use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use shardlet_meta::membership_rules::{
    check_promote, check_remove, failures_tolerated, quorum, ClusterView, MemberHealth, Refusal,
};
use shardlet_meta::wire::ClusterStatus;
use shardlet_meta::{ClientError, MetaClient};
use shardlet_net::Transport;

use crate::connect::KeyArguments;

/// How often `add` looks at the learner's progress.
const PROGRESS_POLL_INTERVAL: Duration = Duration::from_millis(250);

#[derive(clap::Subcommand)]
pub enum MetaCommand {
    /// Every member: id, address, role, leader, term, commit and applied index, lag,
    /// readiness.
    Status(Target),
    /// Add a new member as a learner and wait until it has caught up (start it first:
    /// `shardlet meta --member-id ID --data DIR`, without --bootstrap or
    /// --initial-members).
    Add(AddArguments),
    /// Make a learner that has caught up a voter (one at a time).
    Promote(ChangeArguments),
    /// Remove a member (voter or learner), then stop its process.
    Remove(ChangeArguments),
}

#[derive(clap::Args)]
pub struct Target {
    /// Metadata service members (host:port), comma-separated: any one that answers is
    /// enough, the others are found from it.
    #[arg(long, value_delimiter = ',', required = true)]
    meta: Vec<String>,
    #[command(flatten)]
    keys: KeyArguments,
}

#[derive(clap::Args)]
pub struct AddArguments {
    /// The new member's id (`--member-id` it was started with; never one used before).
    member_id: u64,
    /// Its address as the other members reach it (its `--advertise`, or `--listen`).
    address: String,
    /// Give up waiting for it to catch up after this long (it stays a learner and keeps
    /// catching up).
    #[arg(long, default_value_t = 600)]
    timeout_seconds: u64,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
pub struct ChangeArguments {
    member_id: u64,
    /// Do it although it leaves an even number of voters, or promotes a learner that has
    /// not caught up. Changes that could not commit are refused even so.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    target: Target,
}

pub async fn run(command: MetaCommand, transport: &Transport) -> anyhow::Result<()> {
    match command {
        MetaCommand::Status(target) => {
            let cluster = Cluster::gather(&client(&target, transport)?, &target.meta).await?;
            cluster.print();
            Ok(())
        }
        MetaCommand::Add(arguments) => add(arguments, transport).await,
        MetaCommand::Promote(arguments) => change(arguments, transport, Change::Promote).await,
        MetaCommand::Remove(arguments) => change(arguments, transport, Change::Remove).await,
    }
}

fn client(target: &Target, transport: &Transport) -> anyhow::Result<MetaClient> {
    crate::connect::admin_meta_client(&target.meta, &target.keys, transport)
}

/// The cluster as its leader (or, without one, any member) describes it, and each
/// member's own answer.
struct Cluster {
    /// The leader's status when there is a leader; otherwise the first member's.
    view: ClusterStatus,
    members: BTreeMap<u64, Result<ClusterStatus, String>>,
}

impl Cluster {
    async fn gather(client: &MetaClient, addresses: &[String]) -> anyhow::Result<Self> {
        let mut first: Option<ClusterStatus> = None;
        let mut errors = Vec::new();
        for address in addresses {
            match client.status_of(address).await {
                Ok(status) => {
                    first = Some(status);
                    break;
                }
                Err(error) => errors.push(format!("{address}: {error}")),
            }
        }
        let Some(first) = first else {
            bail!("no metadata member answered: {}", errors.join("; "));
        };
        let leader_address = first
            .leader_id
            .filter(|leader| *leader != first.member_id)
            .and_then(|leader| first.addresses.get(&leader).cloned());
        let view = match leader_address {
            Some(address) => client.status_of(&address).await.unwrap_or(first),
            None => first,
        };
        let questions = view.addresses.iter().map(|(id, address)| async move {
            let answer = client
                .status_of(address)
                .await
                .map_err(|error| describe(&error));
            (*id, answer)
        });
        let members = futures::future::join_all(questions)
            .await
            .into_iter()
            .collect();
        Ok(Cluster { view, members })
    }

    fn is_voter(&self, member_id: u64) -> bool {
        self.view.voters.contains(&member_id)
    }

    /// What the safety rules need: each member's role and whether it answers ready.
    fn rules_view(&self) -> ClusterView {
        ClusterView {
            members: self
                .view
                .addresses
                .keys()
                .map(|id| {
                    let healthy = matches!(self.members.get(id), Some(Ok(status)) if status.ready);
                    (
                        *id,
                        MemberHealth {
                            voter: self.is_voter(*id),
                            healthy,
                        },
                    )
                })
                .collect(),
            joint: self.view.joint,
        }
    }

    /// Entries of the leader's log member `id` has not matched (leader's view only).
    fn lag(&self, member_id: u64) -> Option<u64> {
        let matched = self.view.replication.as_ref()?.get(&member_id).copied()?;
        let last = self.view.last_log_index.unwrap_or(0);
        Some(last.saturating_sub(matched.unwrap_or(0)))
    }

    fn print(&self) {
        let voters = self.view.voters.len();
        let cluster = self.view.cluster_id.as_ref().map_or(
            "(no id: formed before cluster ids)".to_string(),
            ToString::to_string,
        );
        out!(
            "cluster {cluster}: leader {}, term {}, {voters} voter(s) (a write needs {}, {} may fail), {} learner(s){}",
            self.view
                .leader_id
                .map_or("none".to_string(), |leader| leader.to_string()),
            self.view.term,
            quorum(voters),
            failures_tolerated(voters),
            self.view.learners.len(),
            if self.view.joint {
                "; a membership change is in progress"
            } else {
                ""
            }
        );
        out!(
            "{:<6} {:<24} {:<8} {:<10} {:>6} {:>10} {:>10} {:>8}  READY",
            "ID",
            "ADDRESS",
            "ROLE",
            "STATE",
            "TERM",
            "COMMITTED",
            "APPLIED",
            "LAG"
        );
        for (id, address) in &self.view.addresses {
            let role = if self.is_voter(*id) {
                "voter"
            } else {
                "learner"
            };
            let lag = self.lag(*id).map_or("-".to_string(), |lag| lag.to_string());
            match self.members.get(id) {
                Some(Ok(status)) => out!(
                    "{id:<6} {address:<24} {role:<8} {:<10} {:>6} {:>10} {:>10} {lag:>8}  {}",
                    status.state,
                    status.term,
                    index(status.committed_index),
                    index(status.last_applied_index),
                    match (&status.not_ready_reason, status.ready) {
                        (_, true) => "yes".to_string(),
                        (Some(reason), false) => format!("no: {reason}"),
                        (None, false) => "no".to_string(),
                    }
                ),
                Some(Err(error)) => out!(
                    "{id:<6} {address:<24} {role:<8} {:<10} {:>6} {:>10} {:>10} {lag:>8}  no answer: {error}",
                    "?", "?", "?", "?"
                ),
                None => {}
            }
        }
        if voters % 2 == 0 {
            out!(
                "note: {voters} voters tolerate no more failures than {}; promote a learner or remove a voter to reach an odd count",
                voters.saturating_sub(1)
            );
        }
    }
}

fn index(index: Option<u64>) -> String {
    index.map_or("-".to_string(), |index| index.to_string())
}

fn describe(error: &ClientError) -> String {
    match error {
        ClientError::Rejected { code, message, .. } => format!("{code}: {message}"),
        other => other.to_string(),
    }
}

#[derive(Clone, Copy)]
enum Change {
    Promote,
    Remove,
}

fn refused(refusal: Refusal) -> anyhow::Error {
    if refusal.forcible {
        anyhow::anyhow!("refused: {} (--force does it anyway)", refusal.reason)
    } else {
        anyhow::anyhow!("refused: {}", refusal.reason)
    }
}

async fn change(
    arguments: ChangeArguments,
    transport: &Transport,
    change: Change,
) -> anyhow::Result<()> {
    let client = client(&arguments.target, transport)?;
    let cluster = Cluster::gather(&client, &arguments.target.meta).await?;
    let member = arguments.member_id;
    let rules = cluster.rules_view();
    let (notes, result, done) = match change {
        Change::Promote => (
            check_promote(&rules, member, arguments.force).map_err(refused)?,
            client.promote(member).await,
            format!("member {member} is a voter"),
        ),
        Change::Remove => (
            check_remove(&rules, member, arguments.force).map_err(refused)?,
            client.remove(member).await,
            format!(
                "member {member} is no longer in the cluster: stop its process; to bring that machine back, start it with an empty data directory and add it again"
            ),
        ),
    };
    match result {
        Ok(()) => {}
        Err(ClientError::Ambiguous(reason)) => bail!(
            "the change was sent but its outcome is unknown ({reason}): look at `shardlet admin meta status` before trying again"
        ),
        Err(error) => return Err(anyhow::anyhow!(describe(&error))).context("the change was refused"),
    }
    out!("{done}");
    for note in notes {
        out!("note: {note}");
    }
    Ok(())
}

async fn add(arguments: AddArguments, transport: &Transport) -> anyhow::Result<()> {
    let client = client(&arguments.target, transport)?;
    let member = arguments.member_id;
    let address = arguments.address.clone();
    let cluster = Cluster::gather(&client, &arguments.target.meta).await?;
    match cluster.view.addresses.get(&member) {
        Some(known) if *known != address => bail!(
            "member {member} is already in the cluster at {known}; remove it first to add it at {address}"
        ),
        Some(_) if cluster.is_voter(member) => bail!("member {member} is already a voter"),
        Some(_) => out!("member {member} is already a learner; following its progress"),
        None => {
            check_newcomer(&client, &cluster, member, &address).await?;
            client
                .add_learner_with(member, &address, false)
                .await
                .map_err(|error| anyhow::anyhow!(describe(&error)))
                .with_context(|| format!("adding member {member} at {address} was refused"))?;
            out!("member {member} at {address} added as a learner; it is catching up");
        }
    }
    follow_catch_up(&client, &arguments, member).await
}

/// The new member must answer as itself and belong to no cluster: a member of another
/// cluster (or one that lost its disk and was started with its old flags) is refused.
async fn check_newcomer(
    client: &MetaClient,
    cluster: &Cluster,
    member: u64,
    address: &str,
) -> anyhow::Result<()> {
    let answer = client.status_of(address).await.map_err(|error| {
        anyhow::anyhow!(
            "no metadata member answers at {address} ({}): start it first (shardlet meta --member-id {member} --data DIR, without --bootstrap or --initial-members)",
            describe(&error)
        )
    })?;
    if answer.member_id != member {
        bail!(
            "member {} answers at {address}, not member {member}",
            answer.member_id
        );
    }
    let belongs = answer.initialized
        || answer
            .cluster_id
            .as_ref()
            .is_some_and(|id| Some(id) != cluster.view.cluster_id.as_ref());
    if belongs {
        bail!(
            "member {member} at {address} already belongs to {}: only a member with an empty data directory can be added",
            answer
                .cluster_id
                .map_or("a cluster".to_string(), |id| format!("cluster {id}"))
        );
    }
    Ok(())
}

/// Shows the learner's progress until it answers ready, or the timeout.
async fn follow_catch_up(
    client: &MetaClient,
    arguments: &AddArguments,
    member: u64,
) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} member {msg} catching up [{bar:40}] {pos}/{len} entries",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(member.to_string());
    let give_up = tokio::time::Instant::now() + Duration::from_secs(arguments.timeout_seconds);
    loop {
        if let Ok(cluster) = Cluster::gather(client, &arguments.target.meta).await {
            let last = cluster.view.last_log_index.unwrap_or(0);
            bar.set_length(last);
            bar.set_position(last.saturating_sub(cluster.lag(member).unwrap_or(last)));
            if matches!(cluster.members.get(&member), Some(Ok(status)) if status.ready) {
                bar.finish();
                out!(
                    "member {member} has caught up; make it a voter with `shardlet admin meta promote {member} --meta {}`",
                    arguments.target.meta.join(",")
                );
                return Ok(());
            }
        }
        if tokio::time::Instant::now() >= give_up {
            bar.abandon();
            bail!(
                "member {member} has not caught up after {} s; it stays a learner and keeps catching up (shardlet admin meta status)",
                arguments.timeout_seconds
            );
        }
        tokio::time::sleep(PROGRESS_POLL_INTERVAL).await;
    }
}
