//! A local certificate authority and one server certificate for a cluster on this
//! machine (`shardlet dev --tls`, the TLS tests), made with `rcgen` (production layer:
//! returns errors, never panics).
//!
//! Files under the given directory (0700): `ca.pem` (the CA certificate clients trust:
//! `AWS_CA_BUNDLE`, boto3's `verify=`, `--tls-ca`), `ca-key.pem`, `server.pem` and
//! `server-key.pem` (keys 0600). The server certificate names `127.0.0.1`, `::1` and
//! `localhost`, the addresses a local cluster listens on. Existing files are kept, so a
//! second run of `shardlet dev` keeps the CA a developer already configured.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where a local cluster's TLS files are.
#[derive(Clone, Debug)]
pub struct LocalTls {
    pub ca: PathBuf,
    pub certificate: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalTlsError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot make the local certificates: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The names every local server certificate carries.
pub const LOCAL_NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// The CA and server certificate in `directory`, made now if any file is missing.
pub fn local_tls(directory: &Path) -> Result<LocalTls, LocalTlsError> {
    let tls = LocalTls {
        ca: directory.join("ca.pem"),
        certificate: directory.join("server.pem"),
        key: directory.join("server-key.pem"),
    };
    let ca_key_path = directory.join("ca-key.pem");
    if [&tls.ca, &tls.certificate, &tls.key, &ca_key_path]
        .iter()
        .all(|path| path.exists())
    {
        return Ok(tls);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)
        .map_err(|source| LocalTlsError::Write {
            path: directory.display().to_string(),
            source,
        })?;
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Shardlet local CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(
        LOCAL_NAMES
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>(),
    )?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Shardlet local server");
    let certificate = params.signed_by(&key, &ca, &ca_key)?;
    // Keys first and owner-only; the certificates are public.
    write_file(&ca_key_path, ca_key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&tls.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&tls.certificate, certificate.pem().as_bytes(), 0o644)?;
    write_file(&tls.ca, ca.pem().as_bytes(), 0o644)?;
    Ok(tls)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), LocalTlsError> {
    let error = |source| LocalTlsError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn keys_are_owner_only_and_a_second_call_keeps_the_ca() {
        let directory = tempfile::tempdir().unwrap();
        let tls = local_tls(&directory.path().join("tls")).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&tls.key), 0o600);
        assert_eq!(mode(&directory.path().join("tls/ca-key.pem")), 0o600);
        assert_eq!(mode(&directory.path().join("tls")), 0o700);
        let ca = std::fs::read(&tls.ca).unwrap();
        let again = local_tls(&directory.path().join("tls")).unwrap();
        assert_eq!(std::fs::read(&again.ca).unwrap(), ca);
        assert!(shardlet_net::ServerTls::from_pem_files(&tls.certificate, &tls.key).is_ok());
        assert!(shardlet_net::Transport::from_ca_file(&tls.ca).is_ok());
    }
}
