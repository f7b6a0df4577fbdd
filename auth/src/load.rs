//! Where a process's keys come from, for the binaries (`shardlet`, `shardlet-predictor`):
//! `--key-file` or `SHARDLET_KEYS` (its role's keys, the normal case), or
//! `--secret-file` or `SHARDLET_CLUSTER_SECRET` (the root, from which it derives what it
//! needs; meant for operators and development). A flag wins over the environment; two
//! flags, or two variables, are refused as ambiguous.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::AuthError;
use crate::keyring::Keyring;
use crate::keys::ClusterSecret;

pub const ENV_CLUSTER_SECRET: &str = "SHARDLET_CLUSTER_SECRET";
pub const ENV_KEYS: &str = "SHARDLET_KEYS";
/// A key or secret file larger than this is not one (refused before reading it whole).
pub const KEY_FILE_BYTES_MAX: u64 = 64 * 1024;

/// The places keys may come from, as the command line and environment give them.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeySources<'a> {
    pub key_file: Option<&'a Path>,
    pub secret_file: Option<&'a Path>,
    /// The value of `SHARDLET_KEYS`.
    pub keys_environment: Option<&'a str>,
    /// The value of `SHARDLET_CLUSTER_SECRET`.
    pub secret_environment: Option<&'a str>,
}

/// Keys as loaded, with where they came from and what the caller should warn about.
#[derive(Debug)]
pub struct LoadedKeys {
    pub keyring: Keyring,
    /// `--key-file /path`, `SHARDLET_CLUSTER_SECRET`, …: for messages.
    pub source: String,
    /// E.g. a key file readable by others. Never contains key material.
    pub warnings: Vec<String>,
}

impl LoadedKeys {
    pub fn holds_root(&self) -> bool {
        self.keyring.holds_root()
    }
}

/// Loads the keys named by `sources` (module docs for precedence).
pub fn load_keys(sources: &KeySources<'_>) -> Result<LoadedKeys, AuthError> {
    let bad = |message: String| AuthError::BadSecret(message);
    match (sources.key_file, sources.secret_file) {
        (Some(_), Some(_)) => return Err(bad("give --key-file or --secret-file, not both".into())),
        (Some(path), None) => {
            let source = format!("key file {}", path.display());
            let (text, warnings) = read_private_file(path, &source)?;
            let keyring = Keyring::parse(&text, &source)?;
            return Ok(LoadedKeys {
                keyring,
                source,
                warnings,
            });
        }
        (None, Some(path)) => {
            let source = format!("cluster secret file {}", path.display());
            let (text, warnings) = read_private_file(path, &source)?;
            let secret = ClusterSecret::new(&text)
                .map_err(|error| bad(format!("invalid {source}: {error}")))?;
            return Ok(LoadedKeys {
                keyring: Keyring::from_root(&secret),
                source,
                warnings,
            });
        }
        (None, None) => {}
    }
    match (sources.keys_environment, sources.secret_environment) {
        (Some(_), Some(_)) => Err(bad(format!(
            "both {ENV_KEYS} and {ENV_CLUSTER_SECRET} are set; unset one"
        ))),
        (Some(text), None) => Ok(LoadedKeys {
            keyring: Keyring::parse(text, ENV_KEYS)?,
            source: ENV_KEYS.into(),
            warnings: Vec::new(),
        }),
        (None, Some(text)) => {
            let secret = ClusterSecret::new(text)
                .map_err(|error| bad(format!("invalid {ENV_CLUSTER_SECRET}: {error}")))?;
            Ok(LoadedKeys {
                keyring: Keyring::from_root(&secret),
                source: ENV_CLUSTER_SECRET.into(),
                warnings: Vec::new(),
            })
        }
        (None, None) => Err(bad(format!(
            "no keys: pass --key-file PATH (this process's role keys, from `shardlet admin key derive`) or set {ENV_KEYS}; or the cluster secret with --secret-file PATH or {ENV_CLUSTER_SECRET}"
        ))),
    }
}

/// Reads a small secret file: refused when every user may read it (as OpenSSH refuses
/// an open private key), accepted with a warning when its group may (Kubernetes mounts
/// a Secret with `fsGroup` as 0440; the Helm chart sets `defaultMode: 0400`). The same
/// rule as `shardlet_net::private_file` for TLS keys and the metrics token.
fn read_private_file(path: &Path, source: &str) -> Result<(String, Vec<String>), AuthError> {
    let cannot =
        |error: std::io::Error| AuthError::BadSecret(format!("cannot read the {source}: {error}"));
    let metadata = std::fs::metadata(path).map_err(cannot)?;
    if !metadata.is_file() {
        return Err(AuthError::BadSecret(format!("the {source} is not a file")));
    }
    if metadata.len() > KEY_FILE_BYTES_MAX {
        return Err(AuthError::BadSecret(format!(
            "the {source} is {} bytes, more than a key file holds ({KEY_FILE_BYTES_MAX}, KEY_FILE_BYTES_MAX)",
            metadata.len()
        )));
    }
    let mut warnings = Vec::new();
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(AuthError::BadSecret(format!(
            "the {source} can be read by every user (mode {mode:o}); `chmod 600` it"
        )));
    }
    if mode & 0o070 != 0 {
        warnings.push(format!(
            "the {source} can be read by its group (mode {mode:o}); make it 0600 unless the group is meant to"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(cannot)?;
    Ok((text, warnings))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::keyring::Role;
    use crate::keys::KeyName;

    const ROOT: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn keys_come_from_one_source_and_flags_win() {
        let directory = tempfile::tempdir().unwrap();
        let key_file = directory.path().join("gateway.keys");
        let root = Keyring::from_root(&ClusterSecret::new(ROOT).unwrap());
        let text = root
            .for_role(Role::Gateway)
            .unwrap()
            .render("gateway")
            .unwrap();
        std::fs::write(&key_file, text.as_bytes()).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let loaded = load_keys(&KeySources {
            key_file: Some(&key_file),
            secret_environment: Some(ROOT),
            ..KeySources::default()
        })
        .unwrap();
        assert!(!loaded.holds_root());
        assert!(loaded.warnings.is_empty());
        assert!(loaded.keyring.key(KeyName::Storage).is_some());

        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let loaded = load_keys(&KeySources {
            key_file: Some(&key_file),
            ..KeySources::default()
        })
        .unwrap();
        assert!(
            loaded.warnings[0].contains("mode 640"),
            "{:?}",
            loaded.warnings
        );
        for mode in [0o644, 0o604, 0o606] {
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(mode)).unwrap();
            let refused = load_keys(&KeySources {
                key_file: Some(&key_file),
                ..KeySources::default()
            })
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
            assert!(
                refused.contains(&format!("mode {mode:o}")) && refused.contains("chmod 600"),
                "mode {mode:o}: {refused}"
            );
        }

        let from_environment = load_keys(&KeySources {
            secret_environment: Some(ROOT),
            ..KeySources::default()
        })
        .unwrap();
        assert!(from_environment.holds_root());
    }

    #[test]
    fn missing_ambiguous_or_bad_sources_are_named() {
        let directory = tempfile::tempdir().unwrap();
        let missing = directory.path().join("missing.keys");
        let cases: Vec<(KeySources<'_>, &str)> = vec![
            (KeySources::default(), "no keys: pass --key-file"),
            (
                KeySources {
                    key_file: Some(&missing),
                    secret_file: Some(&missing),
                    ..KeySources::default()
                },
                "not both",
            ),
            (
                KeySources {
                    key_file: Some(&missing),
                    ..KeySources::default()
                },
                "cannot read the key file",
            ),
            (
                KeySources {
                    keys_environment: Some("x"),
                    secret_environment: Some(ROOT),
                    ..KeySources::default()
                },
                "both SHARDLET_KEYS and SHARDLET_CLUSTER_SECRET",
            ),
            (
                KeySources {
                    secret_environment: Some("short"),
                    ..KeySources::default()
                },
                "invalid SHARDLET_CLUSTER_SECRET",
            ),
            (
                KeySources {
                    key_file: Some(directory.path()),
                    ..KeySources::default()
                },
                "is not a file",
            ),
        ];
        for (sources, expected) in cases {
            let error = load_keys(&sources).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
