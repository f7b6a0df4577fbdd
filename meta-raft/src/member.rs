//! A member as a running process: opens its storage and identity, starts raft, the
//! batcher and the HTTP server (`crate::server`) around one [`MetaNode`], forms the
//! cluster when asked to (`crate::formation`), and stops them again.

use std::net::SocketAddr;
use std::sync::Arc;

use shardlet_net::{ServerMetrics, ServerOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::MemberAuth;
use crate::batcher::Batcher;
use crate::config::MetaConfig;
use crate::formation::Formation;
use crate::gate::RaftGate;
use crate::identity::Identity;
use crate::log_store::{self, LogStore};
use crate::metrics::MetaMetrics;
use crate::network::HttpNetwork;
use crate::node::MetaNode;
use crate::readiness::ReadinessState;
use crate::state_machine::StateMachine;
use crate::storage;
use crate::types::Raft;

/// A started member. Dropping it does not stop it; call [`RunningMetaNode::shutdown`].
pub struct RunningMetaNode {
    pub node: Arc<MetaNode>,
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    /// `--initial-members`: the formation running in the background; an error is a
    /// refusal that stops the member.
    formation: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningMetaNode {
    /// Stops gracefully: stops accepting, lets requests in flight finish (up to the
    /// port's shutdown grace), stops raft, then flushes RocksDB.
    ///
    /// What survives a crash instead: everything acknowledged is already durable (the
    /// raft log is fsynced before an entry counts, `crate::log_store`); the flush only
    /// writes the state machine's applied data out of the memtables, so the next start
    /// re-applies nothing and replays no WAL.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(formation) = self.formation.take() {
            formation.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.await?;
        self.node
            .raft
            .shutdown()
            .await
            .map_err(|error| anyhow::anyhow!("raft shutdown: {error}"))?;
        self.node.db.flush_wal(true)?;
        self.node.db.flush()?;
        tracing::info!(
            member = self.node.config.member_id,
            "meta member stopped; RocksDB flushed"
        );
        Ok(())
    }

    /// Runs until `shutdown` completes (then stops gracefully, see [`Self::shutdown`]),
    /// or until the formation refuses (then stops and returns the refusal).
    pub async fn run_until(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let formation = self.formation.take();
        let refused = async move {
            match formation {
                Some(formation) => match formation.await {
                    Ok(Ok(())) => std::future::pending::<anyhow::Error>().await,
                    Ok(Err(error)) => error,
                    Err(error) => anyhow::anyhow!("formation task failed: {error}"),
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown => {
                tracing::info!(member = self.node.config.member_id, "stopping: finishing requests in flight, then raft, then flushing RocksDB");
                self.shutdown().await
            }
            error = refused => {
                self.shutdown().await?;
                Err(error)
            }
        }
    }
}

/// The address this member advertises, and the formation it runs: `--initial-members`
/// names this member's own address, which becomes the advertised one.
fn advertised(config: &MetaConfig, bound: SocketAddr) -> anyhow::Result<String> {
    let own_entry = match &config.formation {
        Formation::InitialMembers(members) => Some(members.get(&config.member_id).ok_or_else(|| {
            anyhow::anyhow!(
                "--initial-members does not list this member ({}): list every initial member, this one included",
                config.member_id
            )
        })?),
        _ => None,
    };
    match (&config.advertise_address, own_entry) {
        (Some(advertised), Some(listed)) if advertised != listed => anyhow::bail!(
            "--advertise {advertised} differs from this member's entry in --initial-members ({listed}): the other members reach it at the listed address"
        ),
        (Some(advertised), _) => Ok(advertised.clone()),
        (None, Some(listed)) => Ok(listed.clone()),
        (None, None) => Ok(bound.to_string()),
    }
}

impl MetaNode {
    pub async fn start(config: MetaConfig) -> anyhow::Result<RunningMetaNode> {
        config.port.validate()?;
        let listener = TcpListener::bind(config.listen_address).await?;
        let address = listener.local_addr()?;
        let advertise_address = advertised(&config, address)?;
        let member_id = config.member_id;
        let db = storage::open(&config.data_dir.join("rocksdb"))?;
        let identity = Arc::new(Identity::open(
            db.clone(),
            &config.data_dir,
            log_store::holds_state(&db)?,
        )?);
        let metrics = Arc::new(MetaMetrics::new(member_id)?);
        // Requests must name this member as their host: its advertised address, or the
        // address it is bound to (which is the same unless it advertises a DNS name).
        let mut hosts = vec![advertise_address.clone()];
        if address.to_string() != advertise_address {
            hosts.push(address.to_string());
        }
        let auth = MemberAuth::new(&config.meta_key, hosts, config.replay_cache_entries_max);
        let log_store = LogStore::new(db.clone(), metrics.clone());
        let state_machine = StateMachine::open(db.clone(), metrics.clone())?;
        let reader = state_machine.reader();
        let snapshot_receiver = state_machine.snapshot_receiver();
        let network = HttpNetwork::new(
            member_id,
            auth.member_key().clone(),
            config.rpc_timeout,
            config.transport.clone(),
            identity.clone(),
        )?;
        let raft = Raft::new(
            member_id,
            Arc::new(config.raft_config()?),
            network,
            log_store,
            state_machine,
        )
        .await?;
        // Ends with raft (the channel closes when raft shuts down).
        tokio::spawn(crate::leader_watch::count_leader_changes(
            raft.clone(),
            metrics.raft_leader_changes_total.clone(),
        ));
        let gate = RaftGate::default();
        if config.formation != Formation::Join && !raft.is_initialized().await? {
            // Nothing may make this member part of a cluster while it decides whether to
            // form one.
            gate.close("asking the other members before forming a cluster");
        }
        let batcher = Batcher::start(
            raft.clone(),
            metrics.clone(),
            config.group_commit_batches_max,
            config.group_commit_queue_max,
        );
        let forward_http = config
            .transport
            .client_builder()
            .tcp_nodelay(true)
            .timeout(config.rpc_timeout)
            .build()?;
        let node = Arc::new(MetaNode {
            config,
            advertise_address,
            raft,
            reader,
            batcher,
            auth,
            metrics,
            forward_http,
            identity,
            gate,
            readiness_state: ReadinessState::default(),
            db,
            snapshot_receiver,
        });
        let router = crate::server::router(node.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ServerOptions {
            name: "meta",
            port: node.config.port.clone(),
            // The registry adds the `shardlet_meta_` prefix and the member label.
            metrics: ServerMetrics::register(&node.metrics.registry, "")?,
        };
        let server = tokio::spawn(shardlet_net::serve(listener, router, options, async move {
            let _ = stopped.await;
        }));
        tracing::info!(member = member_id, %address, "meta member started");
        let mut running = RunningMetaNode {
            node: node.clone(),
            address,
            stop: Some(stop),
            server,
            formation: None,
        };
        match node.config.formation.clone() {
            Formation::Join => {}
            Formation::Bootstrap { peers } => {
                if let Err(refusal) = crate::formation::bootstrap(&node, &peers).await {
                    running.shutdown().await?;
                    return Err(refusal);
                }
            }
            Formation::InitialMembers(members) => {
                running.formation = Some(tokio::spawn(async move {
                    crate::formation::initial_members(&node, &members).await
                }));
            }
        }
        Ok(running)
    }
}
