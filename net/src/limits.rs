//! [`ServerLimits`]: every bound a listening port enforces on the connections it holds,
//! named, with the defaults every service starts from.

use std::time::Duration;

/// Connections one server holds at once by default. Each costs a file descriptor and a
/// task; at the limit, an idle connection is closed to make room (see
/// `crate::connections`), so legitimate clients get in even while strangers hold the rest.
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;
/// How long a connection may go without a complete request head: from the moment it
/// opens (or its previous response was sent) until the head's last byte. It is both the
/// keep-alive idle timeout and the header-read timeout: hyper (1.12) starts its
/// `header_read_timeout` as soon as a connection waits for a request, not at the first
/// byte, so one clock covers an idle socket and a trickled head alike.
pub const HEADER_READ_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// How long a connection must have been idle (since it opened, or since its last
/// response) before it may be evicted at the limit: the time every client, however fast
/// strangers open connections, is guaranteed for sending its request head.
pub const EVICTION_IDLE_MIN_DEFAULT: Duration = Duration::from_secs(1);
/// Longest TLS handshake; a client that stalls it is closed.
pub const TLS_HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Largest request head (request line plus headers). hyper's own floor is 8 KiB.
pub const HEADER_BYTES_MAX_DEFAULT: usize = 64 * 1024;
/// Most header fields in one request head.
pub const HEADERS_MAX_DEFAULT: usize = 100;
/// How long requests in flight may finish after shutdown is asked for.
pub const SHUTDOWN_GRACE_DEFAULT: Duration = Duration::from_secs(10);

/// The bounds of one listening port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections held at once (accepted, in a TLS handshake, idle or serving).
    pub connections_max: usize,
    /// See [`HEADER_READ_TIMEOUT_DEFAULT`].
    pub header_read_timeout: Duration,
    /// See [`EVICTION_IDLE_MIN_DEFAULT`].
    pub eviction_idle_min: Duration,
    pub tls_handshake_timeout: Duration,
    pub header_bytes_max: usize,
    pub headers_max: usize,
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            connections_max: CONNECTIONS_MAX_DEFAULT,
            header_read_timeout: HEADER_READ_TIMEOUT_DEFAULT,
            eviction_idle_min: EVICTION_IDLE_MIN_DEFAULT,
            tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT_DEFAULT,
            header_bytes_max: HEADER_BYTES_MAX_DEFAULT,
            headers_max: HEADERS_MAX_DEFAULT,
            shutdown_grace: SHUTDOWN_GRACE_DEFAULT,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("the connection limit must be at least 1")]
    NoConnections,
    #[error("the header-read timeout must be longer than zero")]
    NoHeaderTime,
    #[error("the eviction age ({eviction:?}) must be shorter than the header-read timeout ({header:?}), or nothing idle could ever be evicted")]
    EvictionAfterTimeout {
        eviction: Duration,
        header: Duration,
    },
    #[error("the TLS handshake timeout must be longer than zero")]
    NoHandshakeTime,
    #[error("the request head limit must be at least 8192 bytes (hyper's floor), got {0}")]
    HeadTooSmall(usize),
    #[error("the header count limit must be at least 1")]
    NoHeaders,
}

impl ServerLimits {
    /// Checks the bounds make a usable server (a zero limit would refuse everyone).
    pub fn validate(&self) -> Result<(), LimitError> {
        if self.connections_max == 0 {
            return Err(LimitError::NoConnections);
        }
        if self.header_read_timeout.is_zero() {
            return Err(LimitError::NoHeaderTime);
        }
        if self.eviction_idle_min >= self.header_read_timeout {
            return Err(LimitError::EvictionAfterTimeout {
                eviction: self.eviction_idle_min,
                header: self.header_read_timeout,
            });
        }
        if self.tls_handshake_timeout.is_zero() {
            return Err(LimitError::NoHandshakeTime);
        }
        if self.header_bytes_max < 8192 {
            return Err(LimitError::HeadTooSmall(self.header_bytes_max));
        }
        if self.headers_max == 0 {
            return Err(LimitError::NoHeaders);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_zero_bounds_are_refused() {
        assert_eq!(ServerLimits::default().validate(), Ok(()));
        let zero = |change: fn(&mut ServerLimits)| {
            let mut limits = ServerLimits::default();
            change(&mut limits);
            limits.validate()
        };
        assert_eq!(
            zero(|l| l.connections_max = 0),
            Err(LimitError::NoConnections)
        );
        assert_eq!(
            zero(|l| l.header_read_timeout = Duration::ZERO),
            Err(LimitError::NoHeaderTime)
        );
        assert!(matches!(
            zero(|l| l.eviction_idle_min = l.header_read_timeout),
            Err(LimitError::EvictionAfterTimeout { .. })
        ));
        assert_eq!(
            zero(|l| l.tls_handshake_timeout = Duration::ZERO),
            Err(LimitError::NoHandshakeTime)
        );
        assert_eq!(
            zero(|l| l.header_bytes_max = 100),
            Err(LimitError::HeadTooSmall(100))
        );
        assert_eq!(zero(|l| l.headers_max = 0), Err(LimitError::NoHeaders));
    }
}
