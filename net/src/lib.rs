//! `shardlet-net`: the one HTTP server every Shardlet port runs on (gateway, storage
//! node, meta-raft, controller, predictor sidecar), so each port gets the same defences:
//! a header-read timeout that also ends idle keep-alive connections, a connection limit
//! that evicts idle strangers before it turns anyone away, bounded request heads,
//! TCP_NODELAY, graceful shutdown with a deadline, and connection metrics.
//!
//! Modules, lowest layer first; each imports only modules above it in this list:
//!
//! | module | its one job |
//! |---|---|
//! | [`limits`] | [`ServerLimits`]: every bound of a port, named, with defaults |
//! | [`metrics`] | [`ServerMetrics`]: connections open, accepted, closed by reason |
//! | [`tls`] | [`ServerTls`] (a port's certificate) and [`Transport`] (how internal clients reach ports: plaintext, or TLS trusting the cluster CA) |
//! | [`process_metrics`] | [`ProcessMetrics`]: `shardlet_build_info` and the `process_*` metrics every service exports |
//! | [`metrics_token`] | [`MetricsToken`]: the bearer token `/metrics` may require |
//! | [`connections`] | the table of open connections and the eviction rule at the limit |
//! | [`port`] | [`PortConfig`]: what an operator sets on one port |
//! | [`server`] | [`serve`]: the accept loop and one connection's life |
//! | [`arguments`] | the command-line flags of a port, shared by every binary |
//! | [`readiness`] | [`Readiness`]: what `GET /ready` answers (200, or 503 with a reason) |
//! | [`signal`] | [`shutdown_signal`]: SIGTERM or SIGINT, what stops every server |
//!
//! A base-layer crate beside `auth` and `core`: it knows HTTP and sockets, nothing of
//! fragments, metadata or S3, and must never import another Shardlet crate.

pub mod arguments;
mod connections;
pub mod limits;
pub mod metrics;
pub mod metrics_token;
pub mod port;
pub mod private_file;
pub mod process_metrics;
pub mod readiness;
pub mod server;
pub mod signal;
pub mod tls;

pub use limits::ServerLimits;
pub use metrics::{CloseReason, ServerMetrics};
pub use metrics_token::MetricsToken;
pub use port::PortConfig;
pub use process_metrics::ProcessMetrics;
pub use readiness::{Readiness, READY_PATH};
pub use server::{serve, ServerOptions};
pub use signal::shutdown_signal;
pub use tls::{ServerTls, Transport};

#[cfg(test)]
mod tests;
