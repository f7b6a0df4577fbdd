//! How a cluster comes into being, once, and never again by accident.
//!
//! Three ways to start a member (`MetaConfig::formation`):
//! - [`Formation::Join`] (no flag): a member of whatever cluster its data directory
//!   belongs to; a new member waits until `shardlet admin meta add` adds it.
//! - [`Formation::Bootstrap`] (`--bootstrap`): form a one-member cluster, ONCE. Refused
//!   when the data directory already belongs to a cluster (restart without the flag), and
//!   when anything at a `--peers` address answers as a member of a cluster.
//! - [`Formation::InitialMembers`] (`--initial-members 1=host:port,2=…`, etcd-style):
//!   the member with the lowest id forms the cluster of all of them once every other one
//!   answers and belongs to no cluster; the others wait to be contacted. Safe to repeat
//!   on every start (what a Helm chart does): a member whose data directory belongs to
//!   the cluster just starts.
//!
//! Why so careful: a member that lost its disk and formed a cluster again would fork the
//! metadata (two clusters, each accepting writes, under one name). So whoever forms a
//! cluster first asks every address it was given; if any answers as a member of a
//! cluster (this one or another), it refuses and says how a member that lost its disk
//! rejoins: removed, then added back as a new learner. While a member is being formed it
//! refuses raft RPC ([`crate::gate::RaftGate`]), so no cluster can adopt it half-way.
//!
//! The cluster id ([`crate::identity`]) is recorded before `initialize`: a crash between
//! the two leaves the id alone, and the next start (same flags) goes on.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::BasicNode;

use crate::identity::ClusterId;
use crate::node::MetaNode;
use crate::peers::{ask, PeerAnswer};
use crate::types::MemberId;

pub use crate::formation_plan::{parse_initial_members, Formation, INITIAL_MEMBERS_MAX};

/// Pause between two rounds of asking the other initial members.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(1);
/// How often a member waiting for the others says so in its log.
const WAITING_LOG_EVERY: Duration = Duration::from_secs(10);

/// What the member that forms a cluster does after asking: go on, ask again, or stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Proceed,
    Wait(String),
    Refuse(String),
}

/// How a member that lost its disk comes back; every refusal ends with it.
pub fn rejoin_advice(member_id: MemberId, address: &str) -> String {
    format!(
        "if member {member_id} lost its data directory, it must rejoin as a new learner instead: `shardlet admin meta remove {member_id} --meta MEMBER`, then start it with an empty data directory and neither --bootstrap nor --initial-members, then `shardlet admin meta add {member_id} {address} --meta MEMBER` and `shardlet admin meta promote {member_id} --meta MEMBER`"
    )
}

/// `--bootstrap --peers …`: proceed unless some peer answers as a member of a cluster,
/// or as something that is not an idle member.
pub fn judge_bootstrap(answers: &[(String, PeerAnswer)]) -> Verdict {
    for (address, answer) in answers {
        match answer {
            PeerAnswer::Unreachable(_) => {}
            PeerAnswer::Member(status) if !status.initialized && status.cluster_id.is_none() => {}
            other => return Verdict::Refuse(other.describe(address)),
        }
    }
    Verdict::Proceed
}

/// The lowest initial member: proceed once every other one answers as itself and
/// belongs to no cluster (or to the one this member already recorded, a restart after
/// recording it); refuse when one belongs to a cluster.
pub fn judge_initial_members(
    recorded: Option<&ClusterId>,
    answers: &[(MemberId, String, PeerAnswer)],
) -> Verdict {
    let mut waiting = Vec::new();
    for (expected, address, answer) in answers {
        match answer {
            PeerAnswer::Member(status) => {
                if status.member_id != *expected {
                    return Verdict::Refuse(format!(
                        "--initial-members names member {expected} at {address}, but member {} answers there",
                        status.member_id
                    ));
                }
                let ours = status.cluster_id.is_some() && status.cluster_id.as_ref() == recorded;
                if status.initialized || (status.cluster_id.is_some() && !ours) {
                    return Verdict::Refuse(answer.describe(address));
                }
            }
            PeerAnswer::RefusesOurKey(_) => return Verdict::Refuse(answer.describe(address)),
            PeerAnswer::Unreachable(_) | PeerAnswer::NotAMember(_) => {
                waiting.push(answer.describe(address));
            }
        }
    }
    if waiting.is_empty() {
        Verdict::Proceed
    } else {
        Verdict::Wait(format!(
            "waiting for every initial member to answer: {}",
            waiting.join("; ")
        ))
    }
}

/// Another initial member, on a data directory that belongs to no cluster: refuse when
/// the cluster already exists and its leader says this member had acknowledged entries
/// (its data was lost); otherwise wait to be contacted. Best effort: a leader elected
/// after this member went away does not know.
pub fn judge_waiting_member(me: MemberId, answers: &[(String, PeerAnswer)]) -> Verdict {
    for (address, answer) in answers {
        let PeerAnswer::Member(status) = answer else {
            continue;
        };
        let matched = status
            .replication
            .as_ref()
            .and_then(|replication| replication.get(&me).copied().flatten());
        if status.initialized && matched.is_some() {
            return Verdict::Refuse(format!(
                "{}, whose leader has replicated up to entry {} to member {me}, yet this member's data directory is empty",
                answer.describe(address),
                matched.unwrap_or_default()
            ));
        }
    }
    Verdict::Proceed
}

/// Asks every address once, in parallel.
async fn ask_all<K: Clone>(
    node: &MetaNode,
    addresses: &[(K, String)],
) -> Vec<(K, String, PeerAnswer)> {
    let questions = addresses.iter().map(|(key, address)| async move {
        (key.clone(), address.clone(), ask(node, address).await)
    });
    futures::future::join_all(questions).await
}

/// Whether this member's data directory already belongs to a cluster, and which.
async fn belongs_to(node: &MetaNode) -> anyhow::Result<Option<String>> {
    let initialized = node.raft.is_initialized().await?;
    Ok(match (initialized, node.identity.get()) {
        (true, Some(cluster)) => Some(format!("cluster {cluster}")),
        (true, None) => Some("a cluster (formed before cluster ids)".to_string()),
        (false, _) => None,
    })
}

/// `--bootstrap`: forms a one-member cluster, or explains why not (see the module
/// comment). On success the gate is open.
pub async fn bootstrap(node: &MetaNode, peers: &[String]) -> anyhow::Result<()> {
    let member_id = node.config.member_id;
    let data_dir = node.config.data_dir.display().to_string();
    if let Some(cluster) = belongs_to(node).await? {
        anyhow::bail!(
            "refusing --bootstrap: the data directory {data_dir} already belongs to {cluster} (member {member_id}). --bootstrap forms a new cluster once; start this member again without it (or use --initial-members, which is safe to repeat)"
        );
    }
    if let Some(recorded) = node.identity.get() {
        // Recorded, then crashed before `initialize`: formed by this same flag.
        tracing::info!(cluster = %recorded, "finishing a bootstrap interrupted after recording the cluster id");
    }
    let addresses: Vec<((), String)> = peers.iter().map(|peer| ((), peer.clone())).collect();
    let answers: Vec<(String, PeerAnswer)> = ask_all(node, &addresses)
        .await
        .into_iter()
        .map(|((), address, answer)| (address, answer))
        .collect();
    if let Verdict::Refuse(reason) = judge_bootstrap(&answers) {
        anyhow::bail!(
            "refusing --bootstrap: {reason}. Forming a new cluster here would fork the metadata; {}",
            rejoin_advice(member_id, &node.advertise_address)
        );
    }
    let members = BTreeMap::from([(member_id, node.advertise_address.clone())]);
    initialize(node, &members).await
}

/// `--initial-members`: see the module comment. Returns once this member formed the
/// cluster, or once it may wait to be contacted (the gate is then open); errors are
/// refusals the operator must act on.
pub async fn initial_members(
    node: &MetaNode,
    members: &BTreeMap<MemberId, String>,
) -> anyhow::Result<()> {
    let member_id = node.config.member_id;
    if let Some(cluster) = belongs_to(node).await? {
        tracing::info!(
            member = member_id,
            "already a member of {cluster}; --initial-members has nothing to do"
        );
        node.gate.open();
        return Ok(());
    }
    let others: Vec<(MemberId, String)> = members
        .iter()
        .filter(|(id, _)| **id != member_id)
        .map(|(id, address)| (*id, address.clone()))
        .collect();
    let lowest = members.keys().next().copied() == Some(member_id);
    if !lowest {
        let answers: Vec<(String, PeerAnswer)> = ask_all(node, &others)
            .await
            .into_iter()
            .map(|(_, address, answer)| (address, answer))
            .collect();
        if let Verdict::Refuse(reason) = judge_waiting_member(member_id, &answers) {
            anyhow::bail!(
                "refusing to join as member {member_id}: {reason}; {}",
                rejoin_advice(member_id, &node.advertise_address)
            );
        }
        tracing::info!(
            member = member_id,
            "waiting for the member with the lowest id to form the cluster"
        );
        node.gate.open();
        return Ok(());
    }
    let mut last_logged: Option<tokio::time::Instant> = None;
    loop {
        let answers = ask_all(node, &others).await;
        match judge_initial_members(node.identity.get().as_ref(), &answers) {
            Verdict::Proceed => break,
            Verdict::Refuse(reason) => anyhow::bail!(
                "refusing to form the cluster of --initial-members: {reason}. Forming it would fork the metadata; {}",
                rejoin_advice(member_id, &node.advertise_address)
            ),
            Verdict::Wait(reason) => {
                node.gate.close(reason.clone());
                if last_logged.is_none_or(|at| at.elapsed() >= WAITING_LOG_EVERY) {
                    tracing::info!(member = member_id, "{reason}");
                    last_logged = Some(tokio::time::Instant::now());
                }
                tokio::time::sleep(ASK_AGAIN_AFTER).await;
            }
        }
    }
    initialize(node, members).await
}

/// Records the cluster id (a new one unless one was recorded by an interrupted
/// formation), then initialises raft with `members` as voters, then opens the gate.
async fn initialize(node: &MetaNode, members: &BTreeMap<MemberId, String>) -> anyhow::Result<()> {
    let cluster = node.identity.get().unwrap_or_else(ClusterId::generate);
    node.identity.record(&cluster)?;
    let nodes: BTreeMap<MemberId, BasicNode> = members
        .iter()
        .map(|(id, address)| (*id, BasicNode::new(address.clone())))
        .collect();
    match node.raft.initialize(nodes).await {
        Ok(()) => {}
        // Initialised by an earlier run that crashed before saying so.
        Err(openraft::error::RaftError::APIError(
            openraft::error::InitializeError::NotAllowed(_),
        )) => {}
        Err(error) => anyhow::bail!("forming the cluster failed: {error}"),
    }
    node.gate.open();
    tracing::info!(cluster = %cluster, voters = ?members.keys().collect::<Vec<_>>(), "formed the metadata cluster");
    Ok(())
}

impl MetaNode {
    /// Makes this member a single-member cluster: `--bootstrap` without peers; refused
    /// when it already belongs to one.
    pub async fn bootstrap(&self) -> anyhow::Result<()> {
        bootstrap(self, &[]).await
    }
}

#[cfg(test)]
mod tests;
