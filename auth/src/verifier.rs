//! Verification: a receiver holds the keys it accepts (by name), recomputes the
//! signature of what it received, and remembers the nonce.
//!
//! Order of the checks, cheapest and least revealing first: the headers are present and
//! well formed; the key named by the access key id is one this receiver accepts; the
//! date is within [`MAX_CLOCK_SKEW`]; the signature matches (constant-time comparison of
//! the whole `Authorization` header: key, scope, signed headers, signature); the `Host`
//! is this receiver's (when it is configured with its names); the nonce was never seen.
//! Only then is the nonce remembered, so strangers cannot fill the replay cache.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::amz_date::parse_amz_date;
use crate::contract::{HEADER_NONCE, MAX_CLOCK_SKEW, SIGNED_WHEN_PRESENT, UNSIGNED_PAYLOAD};
use crate::error::AuthError;
use crate::keys::{derive, Key, KeyName};
use crate::replay::ReplayCache;
use crate::signature::{RequestParts, SigningKey};

/// The signature headers as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceivedSignature<'a> {
    pub authorization: Option<&'a str>,
    pub amz_date: Option<&'a str>,
    pub content_sha256: Option<&'a str>,
    pub nonce: Option<&'a str>,
}

/// A request whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key it was signed with: who sent it, as far as this receiver can tell.
    pub key: KeyName,
    /// The signed SHA-256 of the body, `None` for `UNSIGNED-PAYLOAD`.
    pub payload_sha256: Option<[u8; 32]>,
    /// The request's nonce as sent: what a signed answer is bound to.
    pub nonce: String,
}

impl Verified {
    /// Refuses `UNSIGNED-PAYLOAD`: for endpoints whose body the signature must cover.
    /// Call it before reading the body.
    pub fn require_payload_hash(&self) -> Result<(), AuthError> {
        match self.payload_sha256 {
            Some(_) => Ok(()),
            None => Err(AuthError::PayloadHashRequired),
        }
    }

    /// The body must be the one whose SHA-256 was signed.
    pub fn check_body(&self, body: &[u8]) -> Result<(), AuthError> {
        let expected = self.payload_sha256.ok_or(AuthError::PayloadHashRequired)?;
        let actual: [u8; 32] = Sha256::digest(body).into();
        if bool::from(expected.ct_eq(&actual)) {
            Ok(())
        } else {
            Err(AuthError::BodyMismatch)
        }
    }
}

/// What one receiver accepts, and the nonces it has seen.
pub struct Verifier {
    accepted: BTreeMap<KeyName, SigningKey>,
    /// Parents whose every child key is accepted, derived when a request names it (the
    /// controller accepts any storage node's announcement: `node-NAME` from `storage`).
    parents: Vec<(KeyName, Key)>,
    /// When set, the signed `Host` must be one of these (members of one service share
    /// a key; this keeps a request for one from being replayed to another).
    hosts: Option<Vec<String>>,
    replay: ReplayCache,
}

impl Verifier {
    /// Accepts requests signed with any of `accepted`.
    pub fn new(accepted: Vec<SigningKey>, replay: ReplayCache) -> Self {
        Verifier {
            accepted: accepted.into_iter().map(|key| (key.name(), key)).collect(),
            parents: Vec::new(),
            hosts: None,
            replay,
        }
    }

    /// Also accepts every key whose parent is `parent` (e.g. `storage`: every `node-NAME`),
    /// deriving the named child's key for each request (one HMAC, ~1 µs). The caller is
    /// then whoever holds that child key, and [`Verified::key`] names it.
    pub fn with_children_of(mut self, parent: KeyName, parent_key: Key) -> Self {
        self.parents.push((parent, parent_key));
        self
    }

    /// Also requires the `Host` to be one of `hosts` (e.g. the advertised address).
    pub fn with_hosts(mut self, hosts: Vec<String>) -> Self {
        self.hosts = Some(hosts);
        self
    }

    pub fn replay_cache(&self) -> &ReplayCache {
        &self.replay
    }

    /// The names accepted, for messages (`meta.admin, meta.controller, …`).
    pub fn describe_accepted(&self) -> String {
        self.accepted
            .keys()
            .map(|name| name.to_string())
            .chain(
                self.parents
                    .iter()
                    .map(|(parent, _)| format!("keys derived from {parent}")),
            )
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The key named `name` if this verifier accepts it: held, or derived from a held
    /// parent.
    fn accepted_key(&self, name: KeyName) -> Option<SigningKey> {
        if let Some(key) = self.accepted.get(&name) {
            return Some(key.clone());
        }
        let parent = name.parent()?;
        self.parents
            .iter()
            .find(|(held, _)| *held == parent)
            .map(|(_, parent_key)| SigningKey::new(name, derive(parent_key, name)))
    }

    /// Verifies a request from its method, target (path and query as received) and
    /// headers. Every header the contract signs must appear at most once.
    pub fn verify(
        &self,
        method: &str,
        target: &str,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<Verified, AuthError> {
        let host = single(headers, "host")?.ok_or(AuthError::MissingHeader("host"))?;
        let mut signed: Vec<(&str, &str)> = Vec::with_capacity(SIGNED_WHEN_PRESENT.len());
        for name in SIGNED_WHEN_PRESENT {
            if let Some(value) = single(headers, name)? {
                signed.push((name, value));
            }
        }
        let received = ReceivedSignature {
            authorization: single(headers, "authorization")?,
            amz_date: single(headers, "x-amz-date")?,
            content_sha256: single(headers, "x-amz-content-sha256")?,
            nonce: single(headers, HEADER_NONCE)?,
        };
        let parts = RequestParts {
            method,
            host,
            target,
            headers: &signed,
            payload_sha256: None,
        };
        self.verify_parts(&parts, &received, now)
    }

    /// Verifies `request` (its `payload_sha256` is taken from `received`).
    pub fn verify_parts(
        &self,
        request: &RequestParts<'_>,
        received: &ReceivedSignature<'_>,
        now: SystemTime,
    ) -> Result<Verified, AuthError> {
        let authorization = received
            .authorization
            .ok_or(AuthError::MissingHeader("authorization"))?;
        let amz_date = received
            .amz_date
            .ok_or(AuthError::MissingHeader("x-amz-date"))?;
        let content_sha256 = received
            .content_sha256
            .ok_or(AuthError::MissingHeader("x-amz-content-sha256"))?;
        let nonce_text = received
            .nonce
            .ok_or(AuthError::MissingHeader(HEADER_NONCE))?;
        let key_name = access_key_id(authorization)?;
        let key = self
            .accepted_key(key_name)
            .ok_or_else(|| AuthError::KeyNotAccepted {
                key: key_name.to_string(),
                accepted: self.describe_accepted(),
            })?;
        let time = parse_amz_date(amz_date).ok_or(AuthError::MalformedHeader("x-amz-date"))?;
        let (skew, sender_ahead) = match now.duration_since(time) {
            Ok(behind) => (behind, false),
            Err(ahead) => (ahead.duration(), true),
        };
        if skew > MAX_CLOCK_SKEW {
            return Err(AuthError::ClockSkew {
                skew_seconds: skew.as_secs(),
                sender_ahead,
            });
        }
        let payload_sha256 = parse_payload_hash(content_sha256)?;
        let nonce = parse_nonce(nonce_text)?;
        let parts = RequestParts {
            payload_sha256: (content_sha256 != UNSIGNED_PAYLOAD).then_some(content_sha256),
            ..*request
        };
        let expected = key.sign_with_nonce(&parts, time, nonce_text)?;
        if !bool::from(
            expected
                .authorization
                .as_bytes()
                .ct_eq(authorization.as_bytes()),
        ) {
            return Err(AuthError::SignatureMismatch);
        }
        if let Some(hosts) = &self.hosts {
            if !hosts.iter().any(|host| host == request.host) {
                return Err(AuthError::WrongHost {
                    host: request.host.chars().take(256).collect(),
                    expected: hosts.join(" or "),
                });
            }
        }
        let date_seconds = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let now_seconds = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.replay
            .check_and_remember(nonce, date_seconds, now_seconds)?;
        Ok(Verified {
            key: key_name,
            payload_sha256,
            nonce: nonce_text.to_string(),
        })
    }
}

/// The key named in `Credential=NAME/date/region/service/aws4_request`.
fn access_key_id(authorization: &str) -> Result<KeyName, AuthError> {
    let credential = authorization
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .ok_or(AuthError::MalformedHeader("authorization"))?;
    let (name, _) = credential
        .split_once('/')
        .ok_or(AuthError::MalformedHeader("authorization"))?;
    name.parse()
}

fn parse_payload_hash(text: &str) -> Result<Option<[u8; 32]>, AuthError> {
    if text == UNSIGNED_PAYLOAD {
        return Ok(None);
    }
    let mut hash = [0u8; 32];
    if text.len() != 64 || !is_lower_hex(text) || hex::decode_to_slice(text, &mut hash).is_err() {
        return Err(AuthError::MalformedHeader("x-amz-content-sha256"));
    }
    Ok(Some(hash))
}

fn parse_nonce(text: &str) -> Result<u128, AuthError> {
    if text.len() != 32 || !is_lower_hex(text) {
        return Err(AuthError::MalformedHeader(HEADER_NONCE));
    }
    u128::from_str_radix(text, 16).map_err(|_| AuthError::MalformedHeader(HEADER_NONCE))
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// The one value of header `name`, if present; a second value or non-ASCII text is
/// malformed (a signed header's meaning must be unambiguous).
fn single<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::MalformedHeader(name));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| AuthError::MalformedHeader(name))
}
