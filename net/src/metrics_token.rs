//! [`MetricsToken`]: an optional bearer token every `/metrics` of a process requires
//! (`--metrics-token-file`), the one Prometheus sends with
//! `authorization: { type: Bearer, credentials_file: … }`.
//!
//! Checked by the server itself (`crate::server`) before the request reaches the
//! service, so every port that serves `/metrics` gets the same check.

use std::path::Path;

use subtle::ConstantTimeEq;

/// Shortest token accepted: 128 bits of hex.
pub const TOKEN_CHARACTERS_MIN: usize = 32;
/// Longest token accepted (it travels in a header).
pub const TOKEN_CHARACTERS_MAX: usize = 4096;

#[derive(Clone)]
pub struct MetricsToken(String);

impl std::fmt::Debug for MetricsToken {
    /// Never the token itself: configurations are logged.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("MetricsToken(…)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the metrics token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Permissions(#[from] crate::private_file::PrivateFileError),
    #[error("the metrics token in {path} must be {TOKEN_CHARACTERS_MIN} to {TOKEN_CHARACTERS_MAX} visible ASCII characters (no spaces), e.g. `openssl rand -hex 32`")]
    Invalid { path: String },
}

impl MetricsToken {
    /// The token in the file at `path`, surrounding whitespace ignored.
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        crate::private_file::check_private_file(path, "metrics token file")?;
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(&text).ok_or_else(|| TokenError::Invalid {
            path: path.display().to_string(),
        })
    }

    /// `text` trimmed, if it is a usable token.
    pub fn new(text: &str) -> Option<Self> {
        let token = text.trim();
        let usable = (TOKEN_CHARACTERS_MIN..=TOKEN_CHARACTERS_MAX).contains(&token.len())
            && token.bytes().all(|byte| byte.is_ascii_graphic());
        usable.then(|| Self(token.to_string()))
    }

    /// Whether an `Authorization` header value carries this token (`Bearer <token>`),
    /// compared in constant time.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some(presented) = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
        else {
            return false;
        };
        presented.ct_eq(self.0.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let token = MetricsToken::new(&format!("  {TOKEN}\n")).unwrap();
        assert!(token.admits(Some(format!("Bearer {TOKEN}").as_bytes())));
        assert!(!token.admits(None));
        assert!(!token.admits(Some(TOKEN.as_bytes())));
        assert!(!token.admits(Some(format!("Basic {TOKEN}").as_bytes())));
        assert!(!token.admits(Some(format!("Bearer {TOKEN}x").as_bytes())));
        assert!(!token.admits(Some(b"Bearer 0123456789abcdef")));
    }

    #[test]
    fn short_or_spaced_tokens_are_refused_and_errors_name_the_file() {
        assert!(MetricsToken::new("short").is_none());
        assert!(MetricsToken::new(&format!("{TOKEN} {TOKEN}")).is_none());
        assert!(MetricsToken::new(&"a".repeat(TOKEN_CHARACTERS_MAX + 1)).is_none());
        let error = MetricsToken::from_file(Path::new("/nonexistent/token")).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/token"), "{error}");
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("token");
        std::fs::write(&path, "short").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = MetricsToken::from_file(&path).unwrap_err();
        assert!(matches!(error, TokenError::Invalid { .. }), "{error}");
        assert!(error.to_string().contains(&path.display().to_string()));
        // A good token in a file every user can read is refused for that.
        std::fs::write(&path, TOKEN).unwrap();
        assert!(MetricsToken::from_file(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = MetricsToken::from_file(&path).unwrap_err();
        assert!(error.to_string().contains("mode 644"), "{error}");
        assert!(!format!("{:?}", MetricsToken::new(TOKEN).unwrap()).contains(TOKEN));
    }
}
