//! TLS for every port and every internal client (rustls with the ring provider).
//!
//! - [`ServerTls`]: a port's certificate chain and key, read from PEM files
//!   (`--tls-cert`, `--tls-key`) once at start: not reloaded. Rotating a certificate
//!   means restarting the process (one at a time: clients retry on another member or
//!   replica meanwhile).
//! - [`Transport`]: how an internal client reaches the cluster's ports: plaintext, or
//!   TLS trusting only the CA in `--tls-ca` and checking that the certificate names the
//!   host it dialled (an IP address in a node's or member's address must be in the
//!   certificate's IP SANs, a name in its DNS SANs). One switch for the whole cluster:
//!   node and member addresses stay `host:port` (topology files unchanged), and the
//!   scheme comes from the transport.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A client keeps an idle pooled connection at most this long: shorter than the
/// servers' header-read timeout (30 s by default), so a pooled connection is not reused
/// at the moment the server closes it for idleness.
pub const CLIENT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {reason}")]
    Read {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("{path} holds no PEM {what}")]
    Empty { what: &'static str, path: String },
    #[error(
        "the certificate {certificate} and the key {key} do not make a TLS configuration: {reason}"
    )]
    Config {
        certificate: String,
        key: String,
        reason: String,
    },
    #[error("the CA file {path} holds a certificate rustls cannot use: {reason}")]
    BadCa { path: String, reason: String },
    #[error("cannot build the HTTPS client: {0}")]
    Client(String),
    #[error(transparent)]
    KeyPermissions(#[from] crate::private_file::PrivateFileError),
}

/// The ring provider. rustls 0.23.48 deprecates it because it has no post-quantum key
/// exchange (X25519MLKEM768, which rustls offers with aws-lc-rs only); aws-lc-rs needs
/// cmake to build here and takes several times longer, so ring it is: classical
/// X25519/P-256 key exchange, AES-GCM and ChaCha20-Poly1305, TLS 1.2 and 1.3.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_error = |reason: String| TlsError::Read {
        what,
        path: path.display().to_string(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| read_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| read_error(error.to_string()))?;
    if certificates.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.display().to_string(),
        });
    }
    Ok(certificates)
}

/// A port's TLS configuration.
#[derive(Clone)]
pub struct ServerTls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ServerTls")
    }
}

impl ServerTls {
    /// Reads the certificate chain (leaf first) and the private key (PKCS#8, PKCS#1 or
    /// SEC1) from PEM files; errors name the file.
    pub fn from_pem_files(certificate: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = read_certificates(certificate, "certificate")?;
        crate::private_file::check_private_file(key, "TLS private key")?;
        let private_key = PrivateKeyDer::from_pem_file(key).map_err(|error| TlsError::Read {
            what: "private key",
            path: key.display().to_string(),
            reason: error.to_string(),
        })?;
        let config_error = |reason: String| TlsError::Config {
            certificate: certificate.display().to_string(),
            key: key.display().to_string(),
            reason,
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| config_error(error.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(|error| config_error(error.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// How an internal client reaches the cluster's ports.
#[derive(Clone, Default)]
pub enum Transport {
    /// `http://`: only on a network that protects the traffic itself (docs/net.md).
    #[default]
    Plaintext,
    /// `https://`, trusting only the cluster's CA.
    Tls(Arc<rustls::ClientConfig>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.scheme())
    }
}

impl Transport {
    /// TLS trusting the CA certificate(s) in the PEM file at `path`.
    pub fn from_ca_file(path: &Path) -> Result<Self, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in read_certificates(path, "CA certificate")? {
            roots.add(certificate).map_err(|error| TlsError::BadCa {
                path: path.display().to_string(),
                reason: error.to_string(),
            })?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Client(error.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self::Tls(Arc::new(config)))
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Plaintext => "http",
            Self::Tls(_) => "https",
        }
    }

    /// `scheme://address` for a `host:port` address (one that already names a scheme
    /// is returned as it is).
    pub fn url(&self, address: &str) -> String {
        if address.starts_with("http://") || address.starts_with("https://") {
            address.to_string()
        } else {
            format!("{}://{address}", self.scheme())
        }
    }

    /// A reqwest client builder for this transport: the cluster's CA as the only trust
    /// (with TLS), and idle pooled connections dropped before servers close them.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder().pool_idle_timeout(CLIENT_POOL_IDLE_TIMEOUT);
        match self {
            Self::Plaintext => builder,
            Self::Tls(config) => builder
                .use_preconfigured_tls(rustls::ClientConfig::clone(config))
                .https_only(true),
        }
    }
}
