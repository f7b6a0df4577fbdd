//! Signing: AWS SigV4 computed with the stock `aws-sigv4` crate. The access key id is the
//! name of the signing key ([`KeyName`]), the secret its 64 hex digits; every request
//! carries a fresh random nonce (`x-shardlet-nonce`, signed) so a receiver can refuse a
//! second use of it.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use sha2::{Digest, Sha256};

use crate::contract::{HEADER_NONCE, REGION, SERVICE, SIGNED_WHEN_PRESENT, UNSIGNED_PAYLOAD};
use crate::error::AuthError;
use crate::keys::{Key, KeyName};

/// The parts of a request the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The `Host` header as sent (`host:port`, port omitted only when it is the default).
    pub host: &'a str,
    /// Path and query exactly as they go on the wire (`/v1/fragments?after=…`).
    pub target: &'a str,
    /// The request's headers among [`SIGNED_WHEN_PRESENT`] (lowercase names).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body's SHA-256 in lowercase hex, or `None` for `UNSIGNED-PAYLOAD` (a body
    /// then needs another signed integrity check, e.g. `x-shardlet-crc32c`).
    pub payload_sha256: Option<&'a str>,
}

/// The headers a signed request carries in addition to its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub authorization: String,
    pub amz_date: String,
    pub content_sha256: String,
    pub nonce: String,
}

impl SignatureHeaders {
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("authorization", self.authorization.as_str()),
            ("x-amz-date", self.amz_date.as_str()),
            ("x-amz-content-sha256", self.content_sha256.as_str()),
            (HEADER_NONCE, self.nonce.as_str()),
        ]
        .into_iter()
    }
}

/// The SHA-256 of `body` in lowercase hex, for [`RequestParts::payload_sha256`].
pub fn payload_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// A fresh nonce: 128 random bits from the thread's CSPRNG, 32 lowercase hex digits.
pub fn new_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A key and its name: what a client signs with. `Debug` shows the name only.
#[derive(Clone)]
pub struct SigningKey {
    name: KeyName,
    key: Key,
}

impl SigningKey {
    pub fn new(name: KeyName, key: Key) -> Self {
        SigningKey { name, key }
    }

    pub fn name(&self) -> KeyName {
        self.name
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Signs `request` at `time` with a fresh nonce.
    pub fn sign(
        &self,
        request: &RequestParts<'_>,
        time: SystemTime,
    ) -> Result<SignatureHeaders, AuthError> {
        self.sign_with_nonce(request, time, &new_nonce())
    }

    /// Signs with the given nonce: for verification, and for tests that need a replay.
    pub fn sign_with_nonce(
        &self,
        request: &RequestParts<'_>,
        time: SystemTime,
        nonce: &str,
    ) -> Result<SignatureHeaders, AuthError> {
        for (name, _) in request.headers {
            if !SIGNED_WHEN_PRESENT.contains(name) {
                return Err(AuthError::Signing(format!(
                    "header {name} is not one the contract signs"
                )));
            }
        }
        let access_key_id = self.name.to_string();
        let secret = self.key.to_hex();
        let identity =
            Credentials::new(access_key_id, secret.as_str(), None, None, "shardlet").into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name(SERVICE)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|error| AuthError::Signing(error.to_string()))?
            .into();
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(request.headers.len() + 1);
        headers.extend(request.headers.iter().copied());
        headers.push((HEADER_NONCE, nonce));
        let body = match request.payload_sha256 {
            Some(hash) => SignableBody::Precomputed(hash.to_string()),
            None => SignableBody::UnsignedPayload,
        };
        // The host travels in the URI: aws-sigv4 derives the canonical `host` from it the
        // same way HTTP clients derive the Host header (default port omitted).
        let uri = format!("http://{}{}", request.host, request.target);
        let signable = SignableRequest::new(request.method, uri, headers.into_iter(), body)
            .map_err(|error| AuthError::Signing(error.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|error| AuthError::Signing(error.to_string()))?
            .into_parts();
        let mut authorization = None;
        let mut amz_date = None;
        for (name, value) in instructions.headers() {
            match name {
                "authorization" => authorization = Some(value.to_string()),
                "x-amz-date" => amz_date = Some(value.to_string()),
                _ => {}
            }
        }
        match (authorization, amz_date) {
            (Some(authorization), Some(amz_date)) => Ok(SignatureHeaders {
                authorization,
                amz_date,
                content_sha256: request
                    .payload_sha256
                    .unwrap_or(UNSIGNED_PAYLOAD)
                    .to_string(),
                nonce: nonce.to_string(),
            }),
            _ => Err(AuthError::Signing(
                "aws-sigv4 produced no authorization header".into(),
            )),
        }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.name)
    }
}
