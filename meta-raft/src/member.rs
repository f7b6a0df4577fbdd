//! A member as a running process: opens its storage, starts raft, the batcher and the
//! HTTP server (`crate::server`) around one [`MetaNode`], and stops them again.

use std::net::SocketAddr;
use std::sync::Arc;

use shardlet_net::{ServerMetrics, ServerOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::MemberAuth;
use crate::batcher::Batcher;
use crate::config::MetaConfig;
use crate::log_store::LogStore;
use crate::metrics::MetaMetrics;
use crate::network::HttpNetwork;
use crate::node::MetaNode;
use crate::state_machine::StateMachine;
use crate::storage;
use crate::types::Raft;

/// A started member. Dropping it does not stop it; call [`RunningMetaNode::shutdown`].
pub struct RunningMetaNode {
    pub node: Arc<MetaNode>,
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

impl RunningMetaNode {
    /// Stops serving, then stops raft. Everything acknowledged is already durable (see
    /// `log_store`), so shutdown has nothing to flush.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.await?;
        self.node
            .raft
            .shutdown()
            .await
            .map_err(|error| anyhow::anyhow!("raft shutdown: {error}"))?;
        Ok(())
    }

    /// Runs until the server stops (for the `shardlet meta` process).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await?;
        Ok(())
    }
}

impl MetaNode {
    pub async fn start(config: MetaConfig) -> anyhow::Result<RunningMetaNode> {
        config.port.validate()?;
        let listener = TcpListener::bind(config.listen_address).await?;
        let address = listener.local_addr()?;
        let advertise_address = config
            .advertise_address
            .clone()
            .unwrap_or_else(|| address.to_string());
        let member_id = config.member_id;
        let db = storage::open(&config.data_dir.join("rocksdb"))?;
        let metrics = Arc::new(MetaMetrics::new(member_id)?);
        // Requests must name this member as their host: its advertised address, or the
        // address it is bound to (which is the same unless it advertises a DNS name).
        let mut hosts = vec![advertise_address.clone()];
        if address.to_string() != advertise_address {
            hosts.push(address.to_string());
        }
        let auth = MemberAuth::new(&config.meta_key, hosts, config.replay_cache_entries_max);
        let log_store = LogStore::new(db.clone(), metrics.clone());
        let state_machine = StateMachine::open(db, metrics.clone())?;
        let reader = state_machine.reader();
        let snapshot_receiver = state_machine.snapshot_receiver();
        let network = HttpNetwork::new(
            member_id,
            auth.member_key().clone(),
            config.rpc_timeout,
            config.transport.clone(),
        )?;
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
        Ok(RunningMetaNode {
            node,
            address,
            stop: Some(stop),
            server,
        })
    }
}
