//! Why a request was refused, with the HTTP status and the metric label of each reason.
//! Messages name headers and keys, never a header's value or any key material.

use http::StatusCode;

use crate::contract::MAX_CLOCK_SKEW;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the request is not signed: missing {0} header")]
    MissingHeader(&'static str),
    #[error("malformed {0} header")]
    MalformedHeader(&'static str),
    #[error(
        "x-amz-date is {skew_seconds} s {} this server's clock (limit {} s): keep every host's clock synchronised (NTP)",
        if *.sender_ahead { "ahead of" } else { "behind" },
        MAX_CLOCK_SKEW.as_secs()
    )]
    ClockSkew {
        skew_seconds: u64,
        /// The sender's clock is ahead of the receiver's.
        sender_ahead: bool,
    },
    #[error("no key is named {0:?}")]
    UnknownKeyName(String),
    #[error(
        "requests signed with key {key} are not accepted here (this service accepts {accepted})"
    )]
    KeyNotAccepted { key: String, accepted: String },
    #[error("the signature does not match")]
    SignatureMismatch,
    #[error("this request (x-shardlet-nonce) was already received: a replay")]
    Replayed,
    #[error("too many recent requests to remember ({entries_max} nonces, replay_cache_entries_max); retry shortly")]
    ReplayCacheFull { entries_max: usize },
    #[error(
        "this endpoint requires the body's SHA-256 in x-amz-content-sha256, not UNSIGNED-PAYLOAD"
    )]
    PayloadHashRequired,
    #[error("the body does not match its signed SHA-256 (x-amz-content-sha256)")]
    BodyMismatch,
    #[error("the request is addressed to host {host:?}, not to this server ({expected})")]
    WrongHost { host: String, expected: String },
    #[error("cannot sign: {0}")]
    Signing(String),
    #[error("{0}")]
    BadSecret(String),
}

impl AuthError {
    /// The label of this refusal in the `…_auth_refused_total{reason}` metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingHeader(_) => "missing_header",
            AuthError::MalformedHeader(_) => "malformed_header",
            AuthError::ClockSkew { .. } => "clock_skew",
            AuthError::UnknownKeyName(_) => "unknown_key",
            AuthError::KeyNotAccepted { .. } => "key_not_accepted",
            AuthError::SignatureMismatch => "signature_mismatch",
            AuthError::Replayed => "replayed",
            AuthError::ReplayCacheFull { .. } => "replay_cache_full",
            AuthError::PayloadHashRequired => "payload_unsigned",
            AuthError::BodyMismatch => "body_mismatch",
            AuthError::WrongHost { .. } => "wrong_host",
            AuthError::Signing(_) => "signing",
            AuthError::BadSecret(_) => "bad_secret",
        }
    }

    /// 401 for every refusal of the caller's credentials; 503 when this server cannot
    /// remember one more nonce (the caller did nothing wrong and may retry).
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::ReplayCacheFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Signing(_) | AuthError::BadSecret(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}
