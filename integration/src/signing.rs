//! Keys and request signatures exactly as the internal authentication contract
//! describes them (docs/internal-auth.md), written from the contract with the stock
//! `hmac`, `sha2` and `aws-sigv4` crates and independently of the servers' own
//! `shardlet-auth` crate: when a server accepts these signatures and the processes run
//! on key files made here, the servers follow the contract, not just their own client.
//!
//! - A key is HMAC-SHA256(parent key, "shardlet-key-v1 " + its name); the root's key
//!   material is the cluster secret's text (trimmed). Parents: `meta`, `storage`,
//!   `controller`, `predictor` ← root; `meta.*` ← `meta`; `node-NAME` ← `storage`.
//! - A key file lists `name=64 lowercase hex` entries, one per line, `#` comments.
//! - A request is SigV4 with service and region `shardlet`, access key id = the key's
//!   name, secret = its hex; `x-shardlet-nonce` (32 lowercase hex, fresh per request)
//!   is signed with `host`, `x-amz-date`, `x-amz-content-sha256` and, when present,
//!   `x-shardlet-crc32c`, `range`, `x-shardlet-member`, `x-shardlet-forwarded`,
//!   `x-shardlet-cluster`.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub const SERVICE: &str = "shardlet";
pub const REGION: &str = "shardlet";
pub const NONCE_HEADER: &str = "x-shardlet-nonce";

/// The headers the contract says are signed when present, besides the ones the signer
/// adds itself (`host`, `x-amz-date`, `x-amz-content-sha256`) and the nonce.
const SIGNED_WHEN_PRESENT: [&str; 5] = [
    "x-shardlet-crc32c",
    "range",
    "x-shardlet-member",
    "x-shardlet-forwarded",
    "x-shardlet-cluster",
];

/// A named key: what a request is signed with.
#[derive(Clone, Debug)]
pub struct ContractKey {
    pub name: String,
    /// 64 lowercase hex digits.
    pub hex: String,
}

fn parent_of(name: &str) -> Option<&'static str> {
    match name {
        "root" => None,
        "meta" | "storage" | "controller" | "predictor" => Some("root"),
        _ if name.starts_with("meta.") => Some("meta"),
        _ if name.starts_with("node-") => Some("storage"),
        _ => panic!("no key is named {name:?} in the contract"),
    }
}

fn key_material(root: &str, name: &str) -> Vec<u8> {
    match parent_of(name) {
        None => root.trim().as_bytes().to_vec(),
        Some(parent) => {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key_material(root, parent))
                .expect("HMAC takes any key length");
            mac.update(format!("shardlet-key-v1 {name}").as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// Key `name` of the cluster whose secret is `root`.
pub fn derive(root: &str, name: &str) -> ContractKey {
    ContractKey {
        name: name.to_string(),
        hex: hex::encode(key_material(root, name)),
    }
}

/// The names of the keys a role holds: `member`, `gateway`, `controller`, `admin`,
/// `predictor`, or `node-NAME`.
pub fn role_key_names(role: &str) -> Vec<String> {
    let names: &[&str] = match role {
        "member" => &["meta"],
        "gateway" => &["meta.gateway", "storage"],
        "controller" => &["meta.controller", "storage", "controller", "predictor"],
        "admin" => &["meta.admin", "controller"],
        "predictor" => &["predictor"],
        node if node.starts_with("node-") => return vec![node.to_string()],
        other => panic!("no role {other:?} in the contract"),
    };
    names.iter().map(|name| name.to_string()).collect()
}

/// The key file of `role` (see [`role_key_names`]) in the cluster of `root`.
pub fn role_key_file(root: &str, role: &str) -> String {
    let mut text = format!("# keys of role {role}, written by the test kit\n");
    for name in role_key_names(role) {
        text.push_str(&format!("{name}={}\n", derive(root, &name).hex));
    }
    text
}

/// The role a `shardlet` subcommand runs as, if it is a server that gets role keys.
pub fn role_of_subcommand(subcommand: &str) -> Option<&'static str> {
    match subcommand {
        "meta" => Some("member"),
        "gateway" => Some("gateway"),
        "controller" => Some("controller"),
        _ => None,
    }
}

/// A fresh nonce: 128 random bits as 32 lowercase hex digits.
pub fn nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The SHA-256 of `body` in lowercase hex (what `x-amz-content-sha256` carries when the
/// payload is signed).
pub fn payload_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Returns the headers to add to a request (`x-amz-date`, `x-amz-content-sha256`,
/// `authorization`, `x-shardlet-nonce`) so that it is signed with `key` at `time`, with
/// a fresh nonce; `payload_sha256` `None` signs `UNSIGNED-PAYLOAD`.
///
/// `host` is the `Host` header the request will carry (`127.0.0.1:PORT`); `target` is
/// the request target exactly as it goes on the wire (path and query).
pub fn signature_headers(
    key: &ContractKey,
    time: SystemTime,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(String, String)],
    payload_sha256: Option<&str>,
) -> Vec<(String, String)> {
    signature_headers_with_nonce(
        key,
        time,
        method,
        host,
        target,
        headers,
        payload_sha256,
        &nonce(),
    )
}

/// [`signature_headers`] with a given nonce (to build a replay on purpose).
#[allow(clippy::too_many_arguments)]
pub fn signature_headers_with_nonce(
    key: &ContractKey,
    time: SystemTime,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(String, String)],
    payload_sha256: Option<&str>,
    nonce: &str,
) -> Vec<(String, String)> {
    let identity = Credentials::new(&key.name, &key.hex, None, None, "integration-tests").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name(SERVICE)
        .time(time)
        .settings(settings)
        .build()
        .expect("complete signing parameters")
        .into();
    let mut signed: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(name, _)| SIGNED_WHEN_PRESENT.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    signed.push((NONCE_HEADER, nonce));
    let uri = format!("http://{host}{target}");
    let body = match payload_sha256 {
        Some(hash) => SignableBody::Precomputed(hash.to_string()),
        None => SignableBody::UnsignedPayload,
    };
    let request =
        SignableRequest::new(method, &uri, signed.into_iter(), body).expect("a signable request");
    let (instructions, _signature) = sign(request, &params)
        .expect("signing succeeds")
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    let mut added: Vec<(String, String)> = headers
        .into_iter()
        .map(|header| (header.name().to_string(), header.value().to_string()))
        .collect();
    added.push((NONCE_HEADER.to_string(), nonce.to_string()));
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_derivation() {
        // HMAC-SHA256(key = "0123456789abcdef", message = "shardlet-key-v1 storage"),
        // computed with Python's hmac module from the contract's text.
        let storage = derive(" 0123456789abcdef\n", "storage");
        assert_eq!(
            storage.hex,
            "dcf797d2b1ff9109cca5fa9e5fe340e2c0e2d1fc8fbe991ed7f21d16c869a5f0"
        );
        let node = derive("0123456789abcdef", "node-3");
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&hex::decode(&storage.hex).unwrap()).unwrap();
        mac.update(b"shardlet-key-v1 node-3");
        assert_eq!(node.hex, hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            role_key_file("0123456789abcdef", "gateway").lines().count(),
            3
        );
    }
}
