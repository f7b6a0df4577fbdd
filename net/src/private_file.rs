//! The permission rule for files that hold a secret a server reads at start (a TLS
//! private key, the metrics token): every user may not read it.
//!
//! Mode bits for "other" (`o+r`, `o+w`) are refused, as OpenSSH refuses an open private
//! key: on a shared host that file is the port's identity. Group bits are accepted
//! with a warning, because Kubernetes mounts a Secret with `fsGroup` as 0440 (group
//! read is how a non-root container reads it); the Helm chart sets `defaultMode: 0400`.
//! The same rule holds for key files (`shardlet-auth`, `load.rs`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Why a secret file is refused.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("the {what} {path} can be read by every user (mode {mode:o}); `chmod 600` it")]
    OpenToEveryone {
        what: &'static str,
        path: String,
        mode: u32,
    },
}

/// Checks the permissions of `path`, which holds the `what` (e.g. "TLS private key").
/// A group-readable file is accepted and logged as a warning.
pub fn check_private_file(path: &Path, what: &'static str) -> Result<(), PrivateFileError> {
    let metadata = std::fs::metadata(path).map_err(|source| PrivateFileError::Read {
        what,
        path: path.display().to_string(),
        source,
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(PrivateFileError::OpenToEveryone {
            what,
            path: path.display().to_string(),
            mode,
        });
    }
    if mode & 0o070 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "the {what} can be read by its group; make it 0600 unless the group is meant to"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_secret_file_every_user_can_read_is_refused_naming_it_and_its_mode() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("key.pem");
        std::fs::write(&path, "secret").unwrap();
        for (mode, refused) in [
            (0o600, false),
            (0o400, false),
            (0o640, false),
            (0o440, false),
            (0o644, true),
            (0o604, true),
            (0o602, true),
            (0o666, true),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let result = check_private_file(&path, "TLS private key");
            assert_eq!(result.is_err(), refused, "mode {mode:o}");
            if let Err(error) = result {
                let text = error.to_string();
                assert!(
                    text.contains("key.pem")
                        && text.contains(&format!("mode {mode:o}"))
                        && text.contains("chmod 600"),
                    "{text}"
                );
            }
        }
        let missing = check_private_file(&directory.path().join("absent"), "metrics token");
        assert!(missing.unwrap_err().to_string().contains("absent"));
    }
}
