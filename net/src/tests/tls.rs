//! TLS on a port: a client trusting the cluster CA is served; a plaintext client gets
//! a readable refusal; a client trusting another CA, or dialling an address the
//! certificate does not name, is refused; a stalled handshake is closed.

use std::path::{Path, PathBuf};

use super::*;
use crate::arguments::{ArgumentError, TlsArguments};
use std::os::unix::fs::PermissionsExt;

/// A CA and a server certificate it signed, as PEM files in a temporary directory.
struct Pki {
    directory: tempfile::TempDir,
}

impl Pki {
    /// A CA, and a certificate for `names` (IP addresses or DNS names) it signed.
    fn new(names: &[&str]) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(
            names
                .iter()
                .map(|name| name.to_string())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let certificate = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(directory.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(directory.path().join("cert.pem"), certificate.pem()).unwrap();
        let key_path = directory.path().join("key.pem");
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Self { directory }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    fn server(&self) -> ServerTls {
        ServerTls::from_pem_files(&self.path("cert.pem"), &self.path("key.pem")).unwrap()
    }

    fn transport(&self) -> Transport {
        Transport::from_ca_file(&self.path("ca.pem")).unwrap()
    }
}

async fn get_with(transport: &Transport, url: &str) -> Result<(u16, String), reqwest::Error> {
    let client = transport.client_builder().build().unwrap();
    let response = client.get(url).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

#[tokio::test]
async fn a_client_trusting_the_cluster_ca_is_served_over_https() {
    let pki = Pki::new(&["127.0.0.1", "localhost"]);
    let server =
        Running::start_with_tls(limits(16, Duration::from_secs(600)), Some(pki.server())).await;
    let transport = pki.transport();
    let url = format!("{}/ok", transport.url(&server.address.to_string()));
    assert!(url.starts_with("https://"), "{url}");
    assert_eq!(
        get_with(&transport, &url).await.unwrap(),
        (200, "ok".into())
    );
    server.stop().await;
}

#[tokio::test]
async fn a_plaintext_client_is_refused_cleanly_by_a_tls_port() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server =
        Running::start_with_tls(limits(16, Duration::from_secs(600)), Some(pki.server())).await;
    let answer = request(server.address, "/ok").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("HTTPS only"), "{answer}");
    // A general HTTP client sees the same readable refusal.
    let (status, body) = get_with(
        &Transport::Plaintext,
        &format!("http://{}/ok", server.address),
    )
    .await
    .unwrap();
    assert_eq!(status, 400, "{body}");
    wait_until("both refusals are counted", || {
        server.closed(CloseReason::PlaintextOnTls) == 2
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused() {
    let pki = Pki::new(&["127.0.0.1"]);
    let other = Pki::new(&["127.0.0.1"]);
    let server =
        Running::start_with_tls(limits(16, Duration::from_secs(600)), Some(pki.server())).await;
    let url = format!("https://{}/ok", server.address);
    let error = get_with(&other.transport(), &url).await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    wait_until("the failed handshake is counted", || {
        server.closed(CloseReason::TlsHandshakeFailed) == 1
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_certificate_that_does_not_name_the_dialled_address_is_refused() {
    // Signed by the trusted CA, but for another name than 127.0.0.1.
    let pki = Pki::new(&["node-7.example"]);
    let server =
        Running::start_with_tls(limits(16, Duration::from_secs(600)), Some(pki.server())).await;
    let url = format!("https://{}/ok", server.address);
    assert!(get_with(&pki.transport(), &url).await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn a_plaintext_transport_refuses_nothing_but_an_https_one_refuses_http_urls() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = Running::start(limits(16, Duration::from_secs(600))).await;
    let url = format!("http://{}/ok", server.address);
    assert_eq!(get_with(&Transport::Plaintext, &url).await.unwrap().0, 200);
    // A TLS transport never falls back to plain HTTP.
    assert!(get_with(&pki.transport(), &url).await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_handshake_is_closed() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = Running::start_with_tls(
        ServerLimits {
            tls_handshake_timeout: Duration::from_millis(200),
            ..limits(16, Duration::from_secs(600))
        },
        Some(pki.server()),
    )
    .await;
    // The first byte of a TLS record, then nothing.
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(&[0x16]).await.unwrap();
    assert_eq!(read_until_closed(&mut stream).await, "");
    // Silence from the start is closed too.
    let mut silent = TcpStream::connect(server.address).await.unwrap();
    assert_eq!(read_until_closed(&mut silent).await, "");
    wait_until("both are counted", || {
        server.closed(CloseReason::TlsHandshakeTimeout) == 2
    })
    .await;
    server.stop().await;
}

fn file(path: &Path) -> Option<PathBuf> {
    Some(path.to_path_buf())
}

#[test]
fn tls_flags_are_checked_and_errors_name_the_flags_and_files() {
    let pki = Pki::new(&["127.0.0.1"]);
    let none = TlsArguments::default();
    let error = none.server_tls().unwrap_err();
    assert!(matches!(error, ArgumentError::NoCertificate));
    let text = error.to_string();
    assert!(
        text.contains("--tls-cert") && text.contains("--insecure-plaintext"),
        "{text}"
    );
    assert!(matches!(none.transport().unwrap_err(), ArgumentError::NoCa));
    assert!(none
        .transport()
        .unwrap_err()
        .to_string()
        .contains("--tls-ca"));

    let plaintext = TlsArguments {
        insecure_plaintext: true,
        ..TlsArguments::default()
    };
    assert!(plaintext.server_tls().unwrap().is_none());
    assert!(!plaintext.transport().unwrap().is_tls());

    let both = TlsArguments {
        tls_cert: file(&pki.path("cert.pem")),
        tls_key: file(&pki.path("key.pem")),
        insecure_plaintext: true,
        ..TlsArguments::default()
    };
    assert!(matches!(
        both.server_tls().unwrap_err(),
        ArgumentError::PlaintextAndTls
    ));

    let half = TlsArguments {
        tls_cert: file(&pki.path("cert.pem")),
        ..TlsArguments::default()
    };
    assert!(matches!(
        half.server_tls().unwrap_err(),
        ArgumentError::CertificateAndKey
    ));

    let complete = TlsArguments {
        tls_cert: file(&pki.path("cert.pem")),
        tls_key: file(&pki.path("key.pem")),
        tls_ca: file(&pki.path("ca.pem")),
        insecure_plaintext: false,
    };
    assert!(complete.server_tls().unwrap().is_some());
    assert!(complete.transport().unwrap().is_tls());

    // Missing and wrong files are named.
    let missing = TlsArguments {
        tls_cert: file(Path::new("/nonexistent/cert.pem")),
        tls_key: file(&pki.path("key.pem")),
        ..TlsArguments::default()
    };
    let text = missing.server_tls().unwrap_err().to_string();
    assert!(text.contains("/nonexistent/cert.pem"), "{text}");
    let key_as_certificate = TlsArguments {
        tls_cert: file(&pki.path("key.pem")),
        tls_key: file(&pki.path("key.pem")),
        ..TlsArguments::default()
    };
    let text = key_as_certificate.server_tls().unwrap_err().to_string();
    assert!(
        text.contains("key.pem") && text.contains("no PEM certificate"),
        "{text}"
    );
    let other = Pki::new(&["127.0.0.1"]);
    let wrong_key = TlsArguments {
        tls_cert: file(&pki.path("cert.pem")),
        tls_key: file(&other.path("key.pem")),
        ..TlsArguments::default()
    };
    let text = wrong_key.server_tls().unwrap_err().to_string();
    assert!(text.contains("do not make a TLS configuration"), "{text}");
    let certificate_as_ca = TlsArguments {
        tls_ca: file(&pki.path("key.pem")),
        ..TlsArguments::default()
    };
    let text = certificate_as_ca.transport().unwrap_err().to_string();
    assert!(text.contains("key.pem"), "{text}");
    // A private key every user on the host can read is refused, naming it.
    std::fs::set_permissions(pki.path("key.pem"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = complete.server_tls().unwrap_err().to_string();
    assert!(
        text.contains("key.pem") && text.contains("mode 644") && text.contains("chmod 600"),
        "{text}"
    );
}
