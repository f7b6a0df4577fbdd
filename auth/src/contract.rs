//! The constants of the signing contract every signer and verifier shares (the test kit
//! has its own copy, on purpose: it checks the contract, not this crate).

use std::time::Duration;

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
/// `x-shardlet-cluster` is the metadata cluster's id on raft RPC between members: signed,
/// so no one on the path can make a fresh member adopt another cluster's id.
pub const SIGNED_WHEN_PRESENT: [&str; 5] = [
    "x-shardlet-crc32c",
    "range",
    "x-shardlet-member",
    "x-shardlet-forwarded",
    "x-shardlet-cluster",
];
