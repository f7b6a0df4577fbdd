//! One metadata-service member: opens RocksDB, starts openraft, the group-commit batcher
//! and the HTTP server. The application layer the HTTP routes call into.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use openraft::error::{CheckIsLeaderError, InitializeError, RaftError};
use openraft::BasicNode;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::ClusterAuth;
use crate::batcher::{raft_write_error, Batcher, WriteError};
use crate::config::MetaConfig;
use crate::log_store::LogStore;
use crate::metrics::MetaMetrics;
use crate::network::HttpNetwork;
use crate::state_machine::{KvReader, StateMachine};
use crate::{storage, MemberId, Raft};

pub struct MetaNode {
    pub config: MetaConfig,
    pub advertise_address: String,
    pub raft: Raft,
    pub reader: KvReader,
    pub batcher: Batcher,
    pub auth: ClusterAuth,
    pub metrics: Arc<MetaMetrics>,
    /// Pooled client for forwarding requests to the leader.
    pub forward_http: reqwest::Client,
}

/// A started member. Dropping it does not stop it; call [`RunningMetaNode::shutdown`].
pub struct RunningMetaNode {
    pub node: Arc<MetaNode>,
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl RunningMetaNode {
    /// Stops serving, then stops raft. Everything acknowledged is already durable (see
    /// `log_store`), so shutdown has nothing to flush.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.await??;
        self.node
            .raft
            .shutdown()
            .await
            .map_err(|error| anyhow::anyhow!("raft shutdown: {error}"))?;
        Ok(())
    }

    /// Runs until the server stops (for the `shardlet meta` process).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await??;
        Ok(())
    }
}

impl MetaNode {
    pub async fn start(config: MetaConfig) -> anyhow::Result<RunningMetaNode> {
        let listener = TcpListener::bind(config.listen_address).await?;
        let address = listener.local_addr()?;
        let advertise_address = config
            .advertise_address
            .clone()
            .unwrap_or_else(|| address.to_string());
        let member_id = config.member_id;
        let db = storage::open(&config.data_dir.join("rocksdb"))?;
        let metrics = Arc::new(MetaMetrics::new(member_id)?);
        let auth = ClusterAuth::new(&config.cluster_secret)?;
        let log_store = LogStore::new(db.clone(), metrics.clone());
        let state_machine = StateMachine::open(db, metrics.clone())?;
        let reader = state_machine.reader();
        let network = HttpNetwork::new(member_id, auth.clone(), config.rpc_timeout)?;
        let raft = Raft::new(
            member_id,
            Arc::new(config.raft_config()?),
            network,
            log_store,
            state_machine,
        )
        .await?;
        let batcher = Batcher::start(
            raft.clone(),
            metrics.clone(),
            config.group_commit_batches_max,
            config.group_commit_queue_max,
        );
        let forward_http = reqwest::Client::builder()
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
        });
        let router = crate::server::router(node.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        // Small JSON responses must not wait for delayed ACKs (~40 ms): no Nagle.
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(member = member_id, %address, "meta member started");
        Ok(RunningMetaNode {
            node,
            address,
            stop: Some(stop),
            server,
        })
    }

    /// Makes this member a single-member cluster, unless it already belongs to one (so a
    /// restart with `--bootstrap` is harmless).
    pub async fn bootstrap(&self) -> anyhow::Result<()> {
        if self.raft.is_initialized().await? {
            return Ok(());
        }
        let members = BTreeMap::from([(
            self.config.member_id,
            BasicNode::new(self.advertise_address.clone()),
        )]);
        match self.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(error) => Err(anyhow::anyhow!("bootstrap failed: {error}")),
        }
    }

    /// Adds a learner and waits until it has caught up with the log (or by snapshot).
    pub async fn add_learner(
        &self,
        member_id: MemberId,
        address: String,
    ) -> Result<(), WriteError> {
        self.raft
            .add_learner(member_id, BasicNode::new(address), true)
            .await
            .map(|_| ())
            .map_err(raft_write_error)
    }

    /// Sets the voters to exactly `voters`; members not listed are removed entirely.
    /// openraft runs joint consensus, so the change is safe under load.
    pub async fn change_membership(&self, voters: BTreeSet<MemberId>) -> Result<(), WriteError> {
        self.raft
            .change_membership(voters, false)
            .await
            .map(|_| ())
            .map_err(raft_write_error)
    }

    /// Waits until a read on this member would be linearizable: confirms leadership with
    /// a quorum (read index) and waits for the state machine to reach it.
    pub async fn ensure_linearizable(&self) -> Result<(), WriteError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
                Err(WriteError::NotLeader {
                    leader_id: forward.leader_id,
                    leader_address: forward.leader_node.map(|node| node.addr),
                })
            }
            Err(error) => Err(WriteError::Unavailable(error.to_string())),
        }
    }

    /// The ids of every member (voters and learners) in the current configuration.
    pub fn members(&self) -> BTreeSet<MemberId> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect()
    }
}
