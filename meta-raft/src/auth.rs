//! Cluster-secret authentication of requests between members and from clients, with the
//! `shardlet-auth` signature (SigV4 keyed by the cluster secret) every internal Shardlet
//! RPC carries.
//!
//! On top of it, every request carries:
//! - `x-shardlet-crc32c`: CRC32C of the body. It is signed, and the receiver checks it
//!   against the body it got, so a body cannot be altered or swapped under a valid
//!   signature (`shardlet-auth` signs `UNSIGNED-PAYLOAD` and leaves body integrity to
//!   this header);
//! - `x-shardlet-member`: the sender's member id, or `client`. Raft RPC uses it to refuse
//!   members outside the configuration (a removed member that still runs). It is not
//!   an authentication boundary: anyone holding the secret is trusted.

use std::time::SystemTime;

use http::HeaderMap;
use shardlet_auth::{ClusterSecret, ReceivedSignature, RequestParts};
use shardlet_core::Crc32c;

pub const HEADER_MEMBER: &str = "x-shardlet-member";
pub const HEADER_CRC32C: &str = "x-shardlet-crc32c";
/// The member header value used by [`crate::client::MetaClient`].
pub const CLIENT_SENDER: &str = "client";

/// The cluster secret. Its `Debug` never shows it.
#[derive(Clone, Debug)]
pub struct ClusterAuth {
    secret: ClusterSecret,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Signature(#[from] shardlet_auth::AuthError),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} is not valid")]
    InvalidHeader(&'static str),
    #[error("the body does not match its signed x-shardlet-crc32c")]
    BodyChecksumMismatch,
}

/// Who sent a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    Member(crate::types::MemberId),
    Client,
}

impl ClusterAuth {
    /// Refuses an empty or short secret (see `shardlet_auth::SECRET_BYTES_MIN`).
    pub fn new(secret: &str) -> Result<Self, AuthError> {
        Ok(ClusterAuth {
            secret: ClusterSecret::new(secret)?,
        })
    }

    /// The headers to attach to a request for `target` (path and query) on `host`
    /// (`address:port`, exactly as the `Host` header will carry it).
    pub fn sign(
        &self,
        method: &str,
        host: &str,
        target: &str,
        sender: &Sender,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>, AuthError> {
        let crc32c = Crc32c::of(body).to_string();
        let parts = RequestParts {
            method,
            host,
            target,
            crc32c: Some(&crc32c),
            range: None,
        };
        let signature = shardlet_auth::sign_request(&self.secret, &parts, SystemTime::now())?;
        let mut headers: Vec<(&'static str, String)> = signature
            .iter()
            .map(|(name, value)| (name, value.to_string()))
            .collect();
        headers.push((HEADER_CRC32C, crc32c));
        headers.push((HEADER_MEMBER, sender_text(sender)));
        Ok(headers)
    }

    /// Checks the signature and the body checksum; returns who sent the request.
    pub fn verify(
        &self,
        method: &str,
        target: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Sender, AuthError> {
        let verified = self.verify_headers(method, target, headers)?;
        verified.verify_body(body)?;
        Ok(verified.sender)
    }

    /// Checks the signature over the method, target and headers, before any byte of
    /// the body is read: a stranger's request is refused without the server ever
    /// reading (or buffering) what it sends. The body is checked after with
    /// [`VerifiedHeaders::verify_body`].
    pub fn verify_headers(
        &self,
        method: &str,
        target: &str,
        headers: &HeaderMap,
    ) -> Result<VerifiedHeaders, AuthError> {
        let host = header(headers, "host")?;
        let crc32c = header(headers, HEADER_CRC32C)?;
        let member = header(headers, HEADER_MEMBER)?;
        let parts = RequestParts {
            method,
            host,
            target,
            crc32c: Some(crc32c),
            range: None,
        };
        let received = ReceivedSignature {
            authorization: optional_header(headers, "authorization")?,
            amz_date: optional_header(headers, "x-amz-date")?,
            content_sha256: optional_header(headers, "x-amz-content-sha256")?,
        };
        shardlet_auth::verify_request(&self.secret, &parts, &received, SystemTime::now())?;
        let body_crc32c: Crc32c = crc32c
            .parse()
            .map_err(|_| AuthError::InvalidHeader(HEADER_CRC32C))?;
        Ok(VerifiedHeaders {
            sender: parse_sender(member)?,
            body_crc32c,
        })
    }
}

/// A request whose signed headers checked out; its body is still to be checked.
#[derive(Debug, Clone)]
pub struct VerifiedHeaders {
    pub sender: Sender,
    body_crc32c: Crc32c,
}

impl VerifiedHeaders {
    /// The body must be the one the signed `x-shardlet-crc32c` names.
    pub fn verify_body(&self, body: &[u8]) -> Result<(), AuthError> {
        if self.body_crc32c != Crc32c::of(body) {
            return Err(AuthError::BodyChecksumMismatch);
        }
        Ok(())
    }
}

fn optional_header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, AuthError> {
    headers
        .get(name)
        .map(|value| value.to_str().map_err(|_| AuthError::InvalidHeader(name)))
        .transpose()
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, AuthError> {
    optional_header(headers, name)?.ok_or(AuthError::MissingHeader(name))
}

fn sender_text(sender: &Sender) -> String {
    match sender {
        Sender::Member(id) => id.to_string(),
        Sender::Client => CLIENT_SENDER.to_string(),
    }
}

fn parse_sender(text: &str) -> Result<Sender, AuthError> {
    if text == CLIENT_SENDER {
        return Ok(Sender::Client);
    }
    text.parse()
        .map(Sender::Member)
        .map_err(|_| AuthError::InvalidHeader(HEADER_MEMBER))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &str = "a-cluster-secret-for-tests";
    const HOST: &str = "127.0.0.1:7380";

    fn signed(auth: &ClusterAuth, target: &str, sender: Sender, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("host", HOST.parse().unwrap());
        for (name, value) in auth.sign("POST", HOST, target, &sender, body).unwrap() {
            headers.insert(name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn signed_request_verifies_and_names_its_sender() {
        let auth = ClusterAuth::new(SECRET).unwrap();
        let headers = signed(&auth, "/raft/vote", Sender::Member(3), b"{}");
        assert_eq!(
            auth.verify("POST", "/raft/vote", &headers, b"{}"),
            Ok(Sender::Member(3))
        );
    }

    #[test]
    fn wrong_secret_altered_body_or_path_is_rejected() {
        let auth = ClusterAuth::new(SECRET).unwrap();
        let headers = signed(&auth, "/kv/put", Sender::Client, b"{}");
        let other = ClusterAuth::new("another-secret-of-enough-bytes").unwrap();
        assert!(matches!(
            other.verify("POST", "/kv/put", &headers, b"{}"),
            Err(AuthError::Signature(_))
        ));
        assert_eq!(
            auth.verify("POST", "/kv/put", &headers, b"{ }"),
            Err(AuthError::BodyChecksumMismatch)
        );
        assert!(matches!(
            auth.verify("POST", "/kv/get", &headers, b"{}"),
            Err(AuthError::Signature(_))
        ));
    }

    #[test]
    fn missing_or_malformed_headers_are_named() {
        let auth = ClusterAuth::new(SECRET).unwrap();
        assert_eq!(
            auth.verify("GET", "/", &HeaderMap::new(), b""),
            Err(AuthError::MissingHeader("host"))
        );
        let mut headers = signed(&auth, "/", Sender::Client, b"");
        headers.insert(HEADER_MEMBER, "someone".parse().unwrap());
        assert_eq!(
            auth.verify("POST", "/", &headers, b""),
            Err(AuthError::InvalidHeader(HEADER_MEMBER))
        );
    }

    #[test]
    fn short_secrets_are_refused_and_debug_never_shows_the_secret() {
        assert!(ClusterAuth::new("short").is_err());
        assert!(!format!("{:?}", ClusterAuth::new(SECRET).unwrap()).contains(SECRET));
    }
}
