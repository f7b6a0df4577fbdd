//! `shardlet-node`: a storage node. It stores fragments on local disk, crash-safe and
//! checksummed, serves them over a signed HTTP API, and reports its health. A fragment is
//! an immutable, named byte string: this crate knows nothing about objects, buckets,
//! shardlets' placement or redundancy. The API, file format and durability argument are
//! in docs/storage-node.md.
//!
//! Start one with [`run`] (or [`BoundNode`] to learn the port first); talk to one with
//! [`client::NodeClient`].
//!
//! Modules, lowest layer first; each imports only modules above it in this list:
//!
//! | module | its one job |
//! |---|---|
//! | [`announce`] | the node tells the controller who and where it is, and learns its id |
//! | [`config`] | [`NodeConfig`]: every limit and timeout of a node |
//! | [`metrics`] | the Prometheus metrics of a node (names are part of the contract) |
//! | [`wire`] | the HTTP API's header names, paths and JSON bodies (server and client) |
//! | [`range`] | `Range: bytes=…` parsing |
//! | [`store_error`] | [`store_error::StoreError`]: what can fail storing or reading a fragment |
//! | [`write_fence`] | after a failed fsync, no more writes are acknowledged (until restart) |
//! | [`fragment_file`] | one fragment in the file format: format, staging buffers, writer, reader |
//! | [`group_commit`] | one directory fsync shared by the writes waiting for it |
//! | [`small_store`] | small fragments as values in one RocksDB |
//! | [`store`] | [`store::FragmentStore`]: files and small store behind one API, crash-safe |
//! | [`health`] | the `/health` report, sampled from `/proc` and the store |
//! | [`error`] | [`error::ApiError`]: a store or request failure as an HTTP status and JSON body |
//! | [`request`] | a request's headers and query checked before any body byte is read |
//! | [`server`] | the HTTP API: router, authentication, the fragment handlers |
//! | [`client`] | [`NodeClient`]: the signed client every other component uses |
//! | [`fuzzing`] | the properties the fuzz targets check (`fuzz/`): file format, requests, bodies |
//!
//! `client` never imports `server` (they share [`wire`]), and `health` never imports
//! `server`. This crate depends on `shardlet-core` (ids, checksums) and `shardlet-auth`
//! (request signing) only; it must never import the metadata service (`shardlet-meta`,
//! `shardlet-model`), the gateway, the controller or the predictor: they call it, over
//! HTTP, through [`NodeClient`].

pub mod announce;
pub mod client;
pub mod config;
pub mod error;
pub mod fragment_file;
pub mod fuzzing;
pub mod group_commit;
pub mod health;
pub mod metrics;
pub mod range;
pub mod readiness;
pub mod request;
pub mod server;
pub mod small_store;
pub mod store;
pub mod store_error;
pub mod wire;
pub mod write_fence;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use shardlet_net::ServerOptions;

pub use client::{ClientError, NodeClient};
pub use config::NodeConfig;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot create metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot open data directory {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid server limits: {0}")]
    Limits(#[from] shardlet_net::limits::LimitError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error("{0}")]
    Announce(String),
}

/// A node whose store is open and whose socket is bound, not yet serving.
pub struct BoundNode {
    listener: tokio::net::TcpListener,
    state: Arc<server::AppState>,
    local_address: SocketAddr,
}

impl BoundNode {
    /// Opens the store (recovering from any crash) and binds the listening socket.
    pub async fn bind(config: NodeConfig) -> Result<Self, NodeError> {
        config.port.validate()?;
        let metrics = Arc::new(metrics::NodeMetrics::new()?);
        let announced = config.announce.as_ref();
        metrics.set_info(
            config.name.as_str(),
            announced.and_then(|a| a.zone.as_deref()).unwrap_or(""),
            announced.and_then(|a| a.region.as_deref()).unwrap_or(""),
        );
        let data_dir = config.data_dir.clone();
        let store_metrics = Arc::clone(&metrics);
        let store = tokio::task::spawn_blocking(move || {
            store::FragmentStore::open(&data_dir, store_metrics)
        })
        .await
        .map_err(|error| NodeError::Open {
            path: config.data_dir.display().to_string(),
            source: std::io::Error::other(error.to_string()),
        })?
        .map_err(|source| NodeError::Open {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| NodeError::Bind {
                address: config.listen,
                source,
            })?;
        let local_address = listener.local_addr().map_err(NodeError::Serve)?;
        let health = health::HealthSampler::new(&config.data_dir, Arc::clone(&metrics));
        let state = server::AppState::new(config, Arc::new(store), metrics, health);
        Ok(Self {
            listener,
            state,
            local_address,
        })
    }

    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// The address the node announces: `--advertise`, or the bound one.
    pub fn advertised_address(&self) -> Result<Option<String>, NodeError> {
        let Some(announce) = &self.state.config.announce else {
            return Ok(None);
        };
        if let Some(address) = &announce.advertise {
            return Ok(Some(address.clone()));
        }
        if self.local_address.ip().is_unspecified() {
            return Err(NodeError::Announce(format!(
                "the node listens on {} (every interface), which no one can dial: name the address others reach it at with --advertise HOST:PORT",
                self.local_address
            )));
        }
        Ok(Some(self.local_address.to_string()))
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish (bounded by the port's shutdown grace) and returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        let advertise = self.advertised_address()?;
        let state = self.state;
        let sampler = state.health.spawn(state.config.health_interval);
        let announcer = match (&state.config.announce, advertise) {
            (Some(announce), Some(address)) => {
                let key = shardlet_auth::SigningKey::new(
                    shardlet_auth::KeyName::Node(state.config.name),
                    state.config.key.clone(),
                );
                Some(tokio::spawn(announce::announce_until_assigned(
                    announce.clone(),
                    address,
                    key,
                    Arc::clone(&state.assigned_id),
                )))
            }
            _ => None,
        };
        let options = ServerOptions {
            name: "node",
            port: state.config.port.clone(),
            metrics: state.metrics.server.clone(),
        };
        let app = server::router(Arc::clone(&state));
        shardlet_net::serve(self.listener, app, options, shutdown).await;
        sampler.abort();
        if let Some(announcer) = announcer {
            announcer.abort();
        }
        Ok(())
    }
}

/// Opens the store, binds, prints `shardlet node <name> listening on http://ADDR` on
/// stdout (so a parent process can learn a port chosen with `:0`), and serves until
/// `shutdown` (announcing itself meanwhile when configured to).
pub async fn run(
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let name = config.name;
    let scheme = if config.port.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let node = BoundNode::bind(config).await?;
    let address = node.local_address();
    // Refused before the line below, so a parent never takes a node that cannot
    // announce itself for a started one.
    node.advertised_address()?;
    println!("shardlet node {name} listening on {scheme}://{address}");
    tracing::info!(%address, %name, "storage node listening");
    node.serve(shutdown).await
}

/// Completes on SIGINT or SIGTERM (the one signal every Shardlet server stops on).
pub use shardlet_net::shutdown_signal;
