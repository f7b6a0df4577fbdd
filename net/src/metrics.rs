//! The connection metrics of one listening port, registered in the process's registry
//! under the service's prefix (e.g. `shardlet_node_connections_open`).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Why a connection ended: the `reason` label of `…_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed it, or the server did after a `Connection: close` exchange.
    Finished,
    /// No complete request head within the header-read timeout (idle or trickling).
    HeaderReadTimeout,
    /// Closed to make room for a new connection at the connection limit.
    EvictedAtLimit,
    /// Not HTTP/1 (a malformed or oversized head: hyper answered 400/431 and closed).
    BadRequestHead,
    /// A plaintext request on a TLS port, answered with a 400 naming the scheme.
    PlaintextOnTls,
    TlsHandshakeFailed,
    TlsHandshakeTimeout,
    /// Any other I/O error (reset by peer, broken pipe).
    Error,
    /// Still open when the shutdown grace ran out.
    Shutdown,
}

impl CloseReason {
    pub const ALL: [CloseReason; 9] = [
        CloseReason::Finished,
        CloseReason::HeaderReadTimeout,
        CloseReason::EvictedAtLimit,
        CloseReason::BadRequestHead,
        CloseReason::PlaintextOnTls,
        CloseReason::TlsHandshakeFailed,
        CloseReason::TlsHandshakeTimeout,
        CloseReason::Error,
        CloseReason::Shutdown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Finished => "finished",
            CloseReason::HeaderReadTimeout => "header_read_timeout",
            CloseReason::EvictedAtLimit => "evicted_at_limit",
            CloseReason::BadRequestHead => "bad_request_head",
            CloseReason::PlaintextOnTls => "plaintext_on_tls",
            CloseReason::TlsHandshakeFailed => "tls_handshake_failed",
            CloseReason::TlsHandshakeTimeout => "tls_handshake_timeout",
            CloseReason::Error => "error",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

#[derive(Clone)]
pub struct ServerMetrics {
    pub connections_open: IntGauge,
    pub connections_accepted_total: IntCounter,
    pub connections_closed_total: IntCounterVec,
    /// Times the accept loop found every connection busy with a request (none idle to
    /// evict) and waited for one to finish before serving the next.
    pub connections_waited_at_limit_total: IntCounter,
}

impl ServerMetrics {
    /// Creates the metrics named `{prefix}_connections_…` (just `connections_…` for an
    /// empty prefix, for a registry that adds its own) and registers them in `registry`.
    pub fn register(registry: &Registry, prefix: &str) -> Result<Self, prometheus::Error> {
        let metrics = Self::unregistered(prefix)?;
        registry.register(Box::new(metrics.connections_open.clone()))?;
        registry.register(Box::new(metrics.connections_accepted_total.clone()))?;
        registry.register(Box::new(metrics.connections_closed_total.clone()))?;
        registry.register(Box::new(metrics.connections_waited_at_limit_total.clone()))?;
        Ok(metrics)
    }

    /// The same metrics outside any registry (tests, servers that expose none).
    pub fn unregistered(prefix: &str) -> Result<Self, prometheus::Error> {
        let name = |suffix: &str| {
            if prefix.is_empty() {
                suffix.to_string()
            } else {
                format!("{prefix}_{suffix}")
            }
        };
        let connections_closed_total = IntCounterVec::new(
            Opts::new(
                name("connections_closed_total"),
                "Connections ended, by reason (timeouts and evictions are the server's doing)",
            ),
            &["reason"],
        )?;
        // Every reason present from the start, so a dashboard's rate() sees a zero.
        for reason in CloseReason::ALL {
            connections_closed_total.with_label_values(&[reason.label()]);
        }
        Ok(Self {
            connections_open: IntGauge::new(
                name("connections_open"),
                "Connections held now (in a TLS handshake, idle or serving)",
            )?,
            connections_accepted_total: IntCounter::new(
                name("connections_accepted_total"),
                "Connections accepted",
            )?,
            connections_closed_total,
            connections_waited_at_limit_total: IntCounter::new(
                name("connections_waited_at_limit_total"),
                "Times every connection was busy at the limit and a new one waited for a slot",
            )?,
        })
    }

    pub fn closed(&self, reason: CloseReason) {
        self.connections_closed_total
            .with_label_values(&[reason.label()])
            .inc();
    }
}
