//! The key hierarchy: every key is derived from the cluster (root) secret, or from a key
//! derived from it, with HMAC-SHA256 over a versioned label that names the key.
//!
//! ```text
//! root (operator only)
//! ├── meta              held by meta-raft members; verifies every request to them
//! │   ├── meta.member   members sign raft RPC and forwarded requests with it
//! │   ├── meta.gateway  gateways sign their metadata requests with it
//! │   ├── meta.controller
//! │   └── meta.admin    `shardlet admin` (membership, cluster routes)
//! ├── storage           held by gateways and controllers, which sign to every node
//! │   └── node-NAME     held by the storage node named NAME only; verifies requests to it
//! ├── controller        held by the controller (verifies /v1/status), and the admin
//! └── predictor         held by the predictor (verifies /v1/score), and the controller
//! ```
//!
//! A receiver holds the key it verifies with and nothing above it; a compromised
//! process can forge only what its own keys sign (docs/internal-auth.md has the
//! reasoning and what each role holds).

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::AuthError;
use crate::node_name::NodeName;

/// A secret shorter than this is refused: it would be guessable.
pub const SECRET_BYTES_MIN: usize = 16;
/// Bytes of a derived key (one HMAC-SHA256 output).
pub const KEY_BYTES: usize = 32;
/// Prefix of every derivation label. The version changes if the derivation ever does,
/// so keys of two schemes can never be confused.
pub const DERIVATION_LABEL_PREFIX: &str = "shardlet-key-v1 ";

/// Who may call the metadata service, each with its own key derived from `meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetaCaller {
    /// Another member: raft RPC, and requests a follower forwards to the leader.
    Member,
    Gateway,
    Controller,
    /// The operator's `shardlet admin`: membership and every other route.
    Admin,
}

impl MetaCaller {
    pub const ALL: [MetaCaller; 4] = [
        MetaCaller::Member,
        MetaCaller::Gateway,
        MetaCaller::Controller,
        MetaCaller::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MetaCaller::Member => "member",
            MetaCaller::Gateway => "gateway",
            MetaCaller::Controller => "controller",
            MetaCaller::Admin => "admin",
        }
    }
}

/// The name of a key: its place in the hierarchy, its derivation label, the SigV4
/// access key id of requests signed with it, and its name in key files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyName {
    Root,
    Meta,
    MetaCaller(MetaCaller),
    Storage,
    /// A storage node's key, by the node's name (it holds its key before it has an id).
    Node(NodeName),
    Controller,
    Predictor,
}

impl KeyName {
    /// The key this one is derived from (`None` for the root).
    pub fn parent(self) -> Option<KeyName> {
        match self {
            KeyName::Root => None,
            KeyName::Meta | KeyName::Storage | KeyName::Controller | KeyName::Predictor => {
                Some(KeyName::Root)
            }
            KeyName::MetaCaller(_) => Some(KeyName::Meta),
            KeyName::Node(_) => Some(KeyName::Storage),
        }
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyName::Root => f.write_str("root"),
            KeyName::Meta => f.write_str("meta"),
            KeyName::MetaCaller(caller) => write!(f, "meta.{}", caller.as_str()),
            KeyName::Storage => f.write_str("storage"),
            KeyName::Node(name) => write!(f, "node-{name}"),
            KeyName::Controller => f.write_str("controller"),
            KeyName::Predictor => f.write_str("predictor"),
        }
    }
}

impl FromStr for KeyName {
    type Err = AuthError;

    /// Exactly the [`fmt::Display`] forms: one spelling per key (node names are lowercase
    /// DNS labels), so a name read back is the name that was written.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || AuthError::UnknownKeyName(text.chars().take(64).collect());
        let name = match text {
            "root" => KeyName::Root,
            "meta" => KeyName::Meta,
            "storage" => KeyName::Storage,
            "controller" => KeyName::Controller,
            "predictor" => KeyName::Predictor,
            _ => {
                if let Some(caller) = text.strip_prefix("meta.") {
                    let caller = MetaCaller::ALL
                        .into_iter()
                        .find(|known| known.as_str() == caller)
                        .ok_or_else(unknown)?;
                    KeyName::MetaCaller(caller)
                } else if let Some(name) = text.strip_prefix("node-") {
                    KeyName::Node(NodeName::parse(name).map_err(|_| unknown())?)
                } else {
                    return Err(unknown());
                }
            }
        };
        Ok(name)
    }
}

/// Key material. Its `Debug` never shows it; it is wiped from memory when dropped.
#[derive(Clone)]
pub struct Key(Zeroizing<Vec<u8>>);

impl Key {
    /// A derived key from its 64 hex digits (as key files hold it).
    pub fn from_hex(text: &str) -> Result<Self, AuthError> {
        let text = text.trim();
        let valid = text.len() == 2 * KEY_BYTES
            && text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        if !valid {
            return Err(AuthError::BadSecret(format!(
                "a key is {} lowercase hex digits",
                2 * KEY_BYTES
            )));
        }
        let bytes = hex::decode(text).map_err(|_| AuthError::BadSecret("invalid hex".into()))?;
        Ok(Key(Zeroizing::new(bytes)))
    }

    /// The 64 hex digits of a derived key (what key files hold, and the SigV4 secret).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_slice()))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Compares in constant time.
    pub fn same_as(&self, other: &Key) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// `name`'s key from its parent's key material: HMAC-SHA256(parent, label), label =
/// [`DERIVATION_LABEL_PREFIX`] + the name. HMAC is a PRF: a child key tells nothing
/// about its parent or its siblings.
pub fn derive(parent: &Key, name: KeyName) -> Key {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(parent.bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(DERIVATION_LABEL_PREFIX.as_bytes());
    mac.update(name.to_string().as_bytes());
    Key(Zeroizing::new(mac.finalize().into_bytes().to_vec()))
}

/// The cluster (root) secret: text of at least [`SECRET_BYTES_MIN`] bytes. Its `Debug`
/// form never shows the value.
#[derive(Clone)]
pub struct ClusterSecret(Key);

impl ClusterSecret {
    /// Accepts a secret of at least [`SECRET_BYTES_MIN`] bytes, surrounding whitespace
    /// (a trailing newline in a secret file) removed.
    pub fn new(text: &str) -> Result<Self, AuthError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(AuthError::BadSecret("the cluster secret is empty".into()));
        }
        if trimmed.len() < SECRET_BYTES_MIN {
            return Err(AuthError::BadSecret(format!(
                "the cluster secret is {} bytes; at least {SECRET_BYTES_MIN} are required",
                trimmed.len()
            )));
        }
        Ok(Self(Key(Zeroizing::new(trimmed.as_bytes().to_vec()))))
    }

    /// The root as key material (derivation input).
    pub fn key(&self) -> &Key {
        &self.0
    }

    /// `name`'s key, derived down from the root.
    pub fn derive(&self, name: KeyName) -> Key {
        derive_from(KeyName::Root, &self.0, name).unwrap_or_else(|| self.0.clone())
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

/// `target`'s key from `held` (whose key is `held_key`), when `held` is `target` or one
/// of its ancestors; `None` otherwise.
pub fn derive_from(held: KeyName, held_key: &Key, target: KeyName) -> Option<Key> {
    if held == target {
        return Some(held_key.clone());
    }
    let parent = target.parent()?;
    let parent_key = derive_from(held, held_key, parent)?;
    Some(derive(&parent_key, target))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ROOT: &str = "0123456789abcdef0123456789abcdef";

    fn node(name: &str) -> KeyName {
        KeyName::Node(NodeName::parse(name).unwrap())
    }

    #[test]
    fn names_round_trip_with_one_spelling_each() {
        let names = [
            KeyName::Root,
            KeyName::Meta,
            KeyName::MetaCaller(MetaCaller::Member),
            KeyName::MetaCaller(MetaCaller::Gateway),
            KeyName::MetaCaller(MetaCaller::Controller),
            KeyName::MetaCaller(MetaCaller::Admin),
            KeyName::Storage,
            node("a"),
            node("7"),
            node("eu-west-a-1"),
            node(&"z".repeat(63)),
            KeyName::Controller,
            KeyName::Predictor,
        ];
        for name in names {
            assert_eq!(name.to_string().parse::<KeyName>().unwrap(), name);
        }
        for bad in [
            "",
            "Root",
            "node-",
            "node-A",
            "node-+7",
            "node--a",
            "node-a-",
            "node-a_b",
            "meta.",
            "meta.root",
            "meta.node",
            "storage ",
            "node-1/x",
            "shardlet-cluster",
        ] {
            assert!(bad.parse::<KeyName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn derivation_matches_hmac_sha256_over_the_versioned_label() {
        // Computed independently: HMAC-SHA256(key = ROOT bytes,
        // message = "shardlet-key-v1 storage"), then of "shardlet-key-v1 node-n3".
        let root = ClusterSecret::new(ROOT).unwrap();
        let storage = root.derive(KeyName::Storage);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(ROOT.as_bytes()).unwrap();
        mac.update(b"shardlet-key-v1 storage");
        assert_eq!(storage.bytes(), mac.finalize().into_bytes().as_slice());
        let node = root.derive(self::node("n3"));
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(storage.bytes()).unwrap();
        mac.update(b"shardlet-key-v1 node-n3");
        assert_eq!(node.bytes(), mac.finalize().into_bytes().as_slice());
        assert!(node.same_as(&derive(&storage, self::node("n3"))));
        assert!(node.same_as(&derive_from(KeyName::Storage, &storage, self::node("n3")).unwrap()));
    }

    #[test]
    fn every_key_differs_and_children_come_only_from_ancestors() {
        let root = ClusterSecret::new(ROOT).unwrap();
        let names = [
            KeyName::Meta,
            KeyName::MetaCaller(MetaCaller::Member),
            KeyName::MetaCaller(MetaCaller::Admin),
            KeyName::Storage,
            node("n1"),
            node("n2"),
            KeyName::Controller,
            KeyName::Predictor,
        ];
        let keys: Vec<Key> = names.iter().map(|name| root.derive(*name)).collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert!(!a.same_as(b));
            }
        }
        let key = root.derive(node("n1"));
        assert!(derive_from(node("n1"), &key, node("n2")).is_none());
        assert!(derive_from(node("n1"), &key, KeyName::Storage).is_none());
        let meta = root.derive(KeyName::Meta);
        assert!(derive_from(KeyName::Meta, &meta, KeyName::Storage).is_none());
        assert!(
            derive_from(KeyName::Meta, &meta, KeyName::MetaCaller(MetaCaller::Admin)).is_some()
        );
    }

    #[test]
    fn keys_parse_from_hex_only_in_canonical_form_and_never_print() {
        let root = ClusterSecret::new(ROOT).unwrap();
        let key = root.derive(KeyName::Predictor);
        let text = key.to_hex();
        assert!(Key::from_hex(&text).unwrap().same_as(&key));
        assert!(Key::from_hex(&text.to_uppercase()).is_err());
        assert!(Key::from_hex(&text[1..]).is_err());
        assert!(!format!("{key:?}").contains(&text[..8]));
        assert!(!format!("{root:?}").contains("0123"));
    }

    #[test]
    fn secrets_must_be_long_enough() {
        assert!(ClusterSecret::new("").is_err());
        assert!(ClusterSecret::new("  \n").is_err());
        assert!(ClusterSecret::new("short").is_err());
        let secret = ClusterSecret::new("0123456789abcdef0123\n").unwrap();
        assert_eq!(secret.key().bytes(), b"0123456789abcdef0123");
    }
}
