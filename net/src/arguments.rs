//! The command-line flags of a listening port and of the TLS every process uses, shared
//! by every Shardlet binary (`shardlet node|meta|gateway|controller|admin`,
//! `shardlet-predictor serve`), so each port is tuned and secured the same way.

use std::path::PathBuf;
use std::time::Duration;

use crate::limits::{LimitError, ServerLimits};
use crate::metrics_token::{MetricsToken, TokenError};
use crate::port::PortConfig;
use crate::tls::{ServerTls, TlsError, Transport};

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

/// TLS: the certificate a process serves with, the CA its clients trust, or the explicit
/// choice of plain HTTP. Global flags of the `shardlet` binary (every subcommand that
/// listens or connects reads them).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArguments {
    /// PEM certificate chain (leaf first) this process's port(s) serve; read at start,
    /// not reloaded (restart to rotate).
    #[arg(long, env = "SHARDLET_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "SHARDLET_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s) this process trusts when it connects to other Shardlet
    /// ports (nodes, metadata members, predictor); certificates must name the address
    /// dialled (IP or DNS subject alternative name).
    #[arg(long, env = "SHARDLET_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Serve and connect over plain HTTP, without TLS: only on a network that itself
    /// keeps strangers out and traffic private (see docs/net.md).
    #[arg(long, env = "SHARDLET_INSECURE_PLAINTEXT", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue, global = true)]
    pub insecure_plaintext: bool,
}

impl TlsArguments {
    /// The certificate this process's ports serve, or `None` with --insecure-plaintext.
    pub fn server_tls(&self) -> Result<Option<ServerTls>, ArgumentError> {
        match (&self.tls_cert, &self.tls_key, self.insecure_plaintext) {
            (Some(_), _, true) | (_, Some(_), true) => Err(ArgumentError::PlaintextAndTls),
            (None, None, true) => Ok(None),
            (Some(certificate), Some(key), false) => {
                Ok(Some(ServerTls::from_pem_files(certificate, key)?))
            }
            (Some(_), None, false) | (None, Some(_), false) => {
                Err(ArgumentError::CertificateAndKey)
            }
            (None, None, false) => Err(ArgumentError::NoCertificate),
        }
    }

    /// How this process's clients reach other Shardlet ports.
    pub fn transport(&self) -> Result<Transport, ArgumentError> {
        match (&self.tls_ca, self.insecure_plaintext) {
            (Some(_), true) => Err(ArgumentError::PlaintextAndTls),
            (None, true) => Ok(Transport::Plaintext),
            (Some(ca), false) => Ok(Transport::from_ca_file(ca)?),
            (None, false) => Err(ArgumentError::NoCa),
        }
    }
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
    #[error("this port serves TLS only and has no certificate: pass --tls-cert FILE and --tls-key FILE (or SHARDLET_TLS_CERT and SHARDLET_TLS_KEY), or --insecure-plaintext (SHARDLET_INSECURE_PLAINTEXT=true) to serve plain HTTP on a network that keeps strangers out and traffic private (docs/net.md)")]
    NoCertificate,
    #[error("--tls-cert and --tls-key go together: pass both")]
    CertificateAndKey,
    #[error("this process connects to other Shardlet ports over TLS and needs the CA that signed their certificates: pass --tls-ca FILE (or SHARDLET_TLS_CA), or --insecure-plaintext (SHARDLET_INSECURE_PLAINTEXT=true) for a plain-HTTP cluster (docs/net.md)")]
    NoCa,
    #[error("--insecure-plaintext excludes --tls-cert, --tls-key and --tls-ca: choose one")]
    PlaintextAndTls,
    #[error("{0}")]
    Tls(#[from] TlsError),
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

    /// The port these flags and `tls` describe, over the service's default `limits`.
    pub fn port(
        &self,
        limits: ServerLimits,
        tls: &TlsArguments,
    ) -> Result<PortConfig, ArgumentError> {
        Ok(PortConfig {
            limits: self.limits(limits)?,
            metrics_token: self.metrics_token()?,
            tls: tls.server_tls()?,
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
            ..ServerArguments::default()
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
