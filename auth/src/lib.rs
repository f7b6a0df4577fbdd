//! `shardlet-auth`: how every internal Shardlet request is signed and verified — to
//! storage nodes, to meta-raft members, to the controller's `/v1/status` and to the
//! predictor's `/v1/score` — with per-role keys derived from the cluster secret.
//!
//! It must never import another Shardlet crate: every service depends on it.
//!
//! | module | its one job |
//! |---|---|
//! | [`contract`] | the constants of the wire contract: service, headers, skew window |
//! | [`keys`] | the key hierarchy: names, HMAC-SHA256 derivation from the root |
//! | [`node_name`] | a storage node's name (a DNS label): its identity and its key's name |
//! | [`keyring`] | the keys one process holds, what each role holds, key files |
//! | [`signature`] | SigV4 signing with a named key and a fresh nonce |
//! | [`verifier`] | verification: accepted keys, clock skew, signature, host, replay |
//! | [`replay`] | the bounded memory of nonces already accepted |
//! | [`response`] | signed answers (the predictor's scores) |
//! | [`load`] | keys from `--key-file` / `--secret-file` / the environment |
//! | [`fuzzing`] | the properties the `internal_auth` fuzz target checks |
//!
//! The signature is plain AWS SigV4 (HMAC-SHA256) from the stock `aws-sigv4` crate:
//! service and region `shardlet`, access key id = the name of the signing key
//! (`meta.gateway`, `node-eu-west-a-1`, …), secret = its 64 hex digits. Signed headers: `host`,
//! `x-amz-date`, `x-amz-content-sha256`, `x-shardlet-nonce`, and those of
//! [`SIGNED_WHEN_PRESENT`] the request carries. `x-amz-content-sha256` is the body's
//! SHA-256 where the body is small (meta-raft: a cryptographic binding) or
//! `UNSIGNED-PAYLOAD` for fragment bodies, which are bound by the signed
//! `x-shardlet-crc32c` instead (SHA-256 would cap a node at ~1.9 GB/s per core; a CRC
//! detects accidents, not an attacker on the path: that is TLS's job).

pub mod amz_date;
pub mod contract;
pub mod error;
pub mod fuzzing;
pub mod keyring;
pub mod keys;
pub mod load;
pub mod node_name;
pub mod replay;
pub mod response;
pub mod signature;
pub mod verifier;

pub use amz_date::parse_amz_date;
pub use contract::{
    HEADER_NONCE, MAX_CLOCK_SKEW, REGION, SERVICE, SIGNED_WHEN_PRESENT, UNSIGNED_PAYLOAD,
};
pub use error::AuthError;
pub use keyring::{Keyring, Role};
pub use keys::{ClusterSecret, Key, KeyName, MetaCaller, SECRET_BYTES_MIN};
pub use node_name::{InvalidNodeName, NodeName, NODE_NAME_BYTES_MAX};
pub use replay::{ReplayCache, REPLAY_CACHE_ENTRIES_MAX_DEFAULT};
pub use signature::{payload_sha256, RequestParts, SignatureHeaders, SigningKey};
pub use verifier::{ReceivedSignature, Verified, Verifier};

#[cfg(test)]
mod tests;
