//! Cluster-secret authentication of requests between members and from clients.
//!
//! Every request except `/metrics` and `/health` carries
//! `x-shardlet-member` (the sender's member id, or `client`), `x-shardlet-date` (unix
//! seconds) and `x-shardlet-signature`: hex HMAC-SHA256, keyed by the cluster secret,
//! over `method \n path-and-query \n member \n date \n hex(SHA-256(body))`. A verifier
//! rejects a bad signature, and a date more than `CLOCK_SKEW_SECONDS_MAX` away from its
//! own clock (bounds replay).
//!
//! This is the one layer to replace with the `shardlet-auth` crate (SigV4 with the cluster
//! secret) once it lands: callers only use [`ClusterAuth::sign`] and
//! [`ClusterAuth::verify`].

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

pub const HEADER_MEMBER: &str = "x-shardlet-member";
pub const HEADER_DATE: &str = "x-shardlet-date";
pub const HEADER_SIGNATURE: &str = "x-shardlet-signature";
/// How far a request's date may be from the verifier's clock.
pub const CLOCK_SKEW_SECONDS_MAX: u64 = 300;
/// The member header value used by [`crate::MetaClient`].
pub const CLIENT_SENDER: &str = "client";

type HmacSha256 = hmac::Hmac<Sha256>;

/// The cluster secret. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ClusterAuth {
    secret: Vec<u8>,
}

impl std::fmt::Debug for ClusterAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ClusterAuth(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} is not valid")]
    InvalidHeader(&'static str),
    #[error("request date is more than {CLOCK_SKEW_SECONDS_MAX} s from this member's clock")]
    DateOutOfRange,
    #[error("signature does not match: wrong cluster secret or altered request")]
    BadSignature,
}

/// Who sent a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    Member(crate::MemberId),
    Client,
}

impl ClusterAuth {
    pub fn new(secret: &str) -> Self {
        ClusterAuth {
            secret: secret.as_bytes().to_vec(),
        }
    }

    fn mac(&self, method: &str, path: &str, member: &str, date: &str, body: &[u8]) -> HmacSha256 {
        let body_hash = hex_encode(&Sha256::digest(body));
        // An HMAC accepts keys of any length, so this cannot fail; the fallback keeps the
        // code panic-free without an `expect`.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new(&Default::default()));
        for part in [method, path, member, date, &body_hash] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    /// The headers to attach to a request.
    pub fn sign(&self, method: &str, path: &str, sender: &Sender, body: &[u8]) -> Vec<(&'static str, String)> {
        let member = sender_text(sender);
        let date = unix_seconds().to_string();
        let signature = hex_encode(&self.mac(method, path, &member, &date, body).finalize().into_bytes());
        vec![
            (HEADER_MEMBER, member),
            (HEADER_DATE, date),
            (HEADER_SIGNATURE, signature),
        ]
    }

    /// Checks a request's signature in constant time; returns who sent it.
    pub fn verify(&self, method: &str, path: &str, headers: &HeaderMap, body: &[u8]) -> Result<Sender, AuthError> {
        let member = header(headers, HEADER_MEMBER)?;
        let date = header(headers, HEADER_DATE)?;
        let signature = header(headers, HEADER_SIGNATURE)?;
        let signature = hex_decode(signature).ok_or(AuthError::InvalidHeader(HEADER_SIGNATURE))?;
        let sender = parse_sender(member)?;
        let seconds: u64 = date.parse().map_err(|_| AuthError::InvalidHeader(HEADER_DATE))?;
        if seconds.abs_diff(unix_seconds()) > CLOCK_SKEW_SECONDS_MAX {
            return Err(AuthError::DateOutOfRange);
        }
        self.mac(method, path, member, date, body)
            .verify_slice(&signature)
            .map_err(|_| AuthError::BadSignature)?;
        Ok(sender)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, AuthError> {
    headers
        .get(name)
        .ok_or(AuthError::MissingHeader(name))?
        .to_str()
        .map_err(|_| AuthError::InvalidHeader(name))
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

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers_of(signed: Vec<(&'static str, String)>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in signed {
            headers.insert(name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn signed_request_verifies_and_names_its_sender() {
        let auth = ClusterAuth::new("secret");
        let headers = headers_of(auth.sign("POST", "/raft/vote", &Sender::Member(3), b"{}"));
        assert_eq!(auth.verify("POST", "/raft/vote", &headers, b"{}"), Ok(Sender::Member(3)));
    }

    #[test]
    fn wrong_secret_altered_body_or_path_is_rejected() {
        let auth = ClusterAuth::new("secret");
        let headers = headers_of(auth.sign("POST", "/kv/put", &Sender::Client, b"{}"));
        let other = ClusterAuth::new("other");
        assert_eq!(other.verify("POST", "/kv/put", &headers, b"{}"), Err(AuthError::BadSignature));
        assert_eq!(auth.verify("POST", "/kv/put", &headers, b"{ }"), Err(AuthError::BadSignature));
        assert_eq!(auth.verify("POST", "/kv/get", &headers, b"{}"), Err(AuthError::BadSignature));
    }

    #[test]
    fn missing_or_malformed_headers_are_named() {
        let auth = ClusterAuth::new("secret");
        assert_eq!(
            auth.verify("GET", "/", &HeaderMap::new(), b""),
            Err(AuthError::MissingHeader(HEADER_MEMBER))
        );
        let mut headers = headers_of(auth.sign("GET", "/", &Sender::Client, b""));
        headers.insert(HEADER_SIGNATURE, "zz".parse().unwrap());
        assert_eq!(
            auth.verify("GET", "/", &headers, b""),
            Err(AuthError::InvalidHeader(HEADER_SIGNATURE))
        );
        let mut headers = headers_of(auth.sign("GET", "/", &Sender::Client, b""));
        headers.insert(HEADER_DATE, "1".parse().unwrap());
        assert_eq!(auth.verify("GET", "/", &headers, b""), Err(AuthError::DateOutOfRange));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        assert!(!format!("{:?}", ClusterAuth::new("hunter2")).contains("hunter2"));
    }
}
