//! The command-line flags of a listening port, shared by every Shardlet binary
//! (`shardlet node|meta|gateway|controller`, `shardlet-predictor serve`), so each
//! port is tuned the same way.

use std::time::Duration;

use crate::limits::{LimitError, ServerLimits};
use crate::metrics_token::{MetricsToken, TokenError};
use crate::port::PortConfig;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct ServerArguments {
    /// Connections held at once; at the limit an idle one is closed to make room.
    /// Default: 1024.
    #[arg(long)]
    pub connections_max: Option<usize>,
    /// Seconds a connection may go without a complete request head (idle keep-alive
    /// time included) before the server closes it. Default: 30.
    #[arg(long)]
    pub header_read_timeout_seconds: Option<f64>,
    /// File holding a bearer token that every `GET /metrics` of this process must carry
    /// (`Authorization: Bearer TOKEN`; Prometheus: `authorization.credentials_file`).
    #[arg(long, env = "SHARDLET_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArgumentError {
    #[error("--header-read-timeout-seconds must be a positive number of seconds, got {0}")]
    HeaderReadTimeout(f64),
    #[error("--connections-max must be at least 1")]
    ConnectionsMax,
    #[error("{0}")]
    Limits(#[from] LimitError),
    #[error("--metrics-token-file: {0}")]
    MetricsToken(#[from] TokenError),
}

impl ServerArguments {
    /// `base` with the flags given applied, validated.
    pub fn limits(&self, base: ServerLimits) -> Result<ServerLimits, ArgumentError> {
        let mut limits = base;
        if let Some(connections_max) = self.connections_max {
            if connections_max == 0 {
                return Err(ArgumentError::ConnectionsMax);
            }
            limits.connections_max = connections_max;
        }
        if let Some(seconds) = self.header_read_timeout_seconds {
            limits.header_read_timeout = Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|timeout| !timeout.is_zero())
                .ok_or(ArgumentError::HeaderReadTimeout(seconds))?;
        }
        limits.validate()?;
        Ok(limits)
    }

    /// The metrics token, if a file was named.
    pub fn metrics_token(&self) -> Result<Option<MetricsToken>, ArgumentError> {
        match &self.metrics_token_file {
            Some(path) => Ok(Some(MetricsToken::from_file(path)?)),
            None => Ok(None),
        }
    }

    /// The port these flags describe, over the service's default `limits`.
    pub fn port(&self, limits: ServerLimits) -> Result<PortConfig, ArgumentError> {
        Ok(PortConfig {
            limits: self.limits(limits)?,
            metrics_token: self.metrics_token()?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn flags_override_the_defaults_and_bad_values_name_the_flag() {
        let arguments = ServerArguments {
            connections_max: Some(7),
            header_read_timeout_seconds: Some(1.5),
            metrics_token_file: None,
        };
        let limits = arguments.limits(ServerLimits::default()).unwrap();
        assert_eq!(limits.connections_max, 7);
        assert_eq!(limits.header_read_timeout, Duration::from_millis(1500));

        for seconds in [0.0, -1.0, f64::NAN] {
            let error = ServerArguments {
                header_read_timeout_seconds: Some(seconds),
                ..ServerArguments::default()
            }
            .limits(ServerLimits::default())
            .unwrap_err();
            assert!(
                error.to_string().contains("--header-read-timeout-seconds"),
                "{error}"
            );
        }
        let error = ServerArguments {
            connections_max: Some(0),
            ..ServerArguments::default()
        }
        .limits(ServerLimits::default())
        .unwrap_err();
        assert!(error.to_string().contains("--connections-max"), "{error}");
    }
}
