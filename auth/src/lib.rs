//! `shardlet-auth`: how every internal Shardlet request is signed and verified — to
//! storage nodes, to meta-raft members, to the controller's `/v1/status` and to the
//! predictor's `/v1/score` — with per-role keys derived from the cluster secret.
//!
//! It must never import another Shardlet crate: every service depends on it.
//!
//! | module | its one job |
//! |---|---|
//! | [`keys`] | the key hierarchy: names, HMAC-SHA256 derivation from the root |
//! | [`keyring`] | the keys one process holds, what each role holds, key files |
//! | [`signature`] | SigV4 signing with a named key and a fresh nonce |
//! | [`verifier`] | verification: accepted keys, clock skew, signature, host, replay |
//! | [`replay`] | the bounded memory of nonces already accepted |
//! | [`response`] | signed answers (the predictor's scores) |
//! | [`load`] | keys from `--key-file` / `--secret-file` / the environment |
//!
//! The signature is plain AWS SigV4 (HMAC-SHA256) from the stock `aws-sigv4` crate:
//! service and region `shardlet`, access key id = the name of the signing key
//! (`meta.gateway`, `node-7`, …), secret = its 64 hex digits. Signed headers: `host`,
//! `x-amz-date`, `x-amz-content-sha256`, `x-shardlet-nonce`, and those of
//! [`SIGNED_WHEN_PRESENT`] the request carries. `x-amz-content-sha256` is the body's
//! SHA-256 where the body is small (meta-raft: a cryptographic binding) or
//! `UNSIGNED-PAYLOAD` for fragment bodies, which are bound by the signed
//! `x-shardlet-crc32c` instead (SHA-256 would cap a node at ~1.9 GB/s per core; a CRC
//! detects accidents, not an attacker on the path: that is TLS's job).

pub mod amz_date;
pub mod error;
pub mod keyring;
pub mod keys;
pub mod load;
pub mod replay;
pub mod response;
pub mod signature;
pub mod verifier;

use std::time::Duration;

pub use amz_date::parse_amz_date;
pub use error::AuthError;
pub use keyring::{Keyring, Role};
pub use keys::{ClusterSecret, Key, KeyName, MetaCaller, SECRET_BYTES_MIN};
pub use replay::{ReplayCache, REPLAY_CACHE_ENTRIES_MAX_DEFAULT};
pub use signature::{payload_sha256, RequestParts, SignatureHeaders, SigningKey};
pub use verifier::{ReceivedSignature, Verified, Verifier};

pub const SERVICE: &str = "shardlet";
pub const REGION: &str = "shardlet";
/// The random, signed, single-use value of every request.
pub const HEADER_NONCE: &str = "x-shardlet-nonce";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Requests dated further than this from the verifier's clock are refused. Short,
/// because every accepted nonce is remembered this long; it requires hosts' clocks to
/// agree within it (NTP keeps them within milliseconds).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Headers that are signed when the request carries them (besides `host`,
/// `x-amz-date`, `x-amz-content-sha256` and the nonce). Anything else is left out so
/// proxies and clients may add headers freely; none of those may change a request's
/// meaning.
pub const SIGNED_WHEN_PRESENT: [&str; 4] = [
    "x-shardlet-crc32c",
    "range",
    "x-shardlet-member",
    "x-shardlet-forwarded",
];

#[cfg(test)]
mod tests;
