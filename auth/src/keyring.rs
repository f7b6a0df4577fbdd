//! The keys one process holds ([`Keyring`]), what each role needs ([`Role`]), and the
//! key file format.
//!
//! A key file (or `SHARDLET_KEYS`) is a list of `name=hex` entries separated by
//! whitespace (one per line in files), `#` starting a comment to the end of the line:
//!
//! ```text
//! # shardlet keys for role gateway (shardlet admin key derive). Keep it 0600.
//! meta.gateway=3f1c…(64 hex digits)
//! storage=9a0e…
//! ```
//!
//! A keyring answers for any key it holds or can derive (a held ancestor), so a process
//! given the root secret derives what it needs, and one given `storage` derives `node-NAME`.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::AuthError;
use crate::keys::{derive_from, ClusterSecret, Key, KeyName, MetaCaller};
use crate::node_name::NodeName;
use crate::signature::SigningKey;

/// Most entries a key file may hold (a role needs at most four).
pub const KEY_FILE_ENTRIES_MAX: usize = 64;

/// What a process runs as, and so which keys it is handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A meta-raft member: verifies every caller, signs raft RPC.
    Member,
    Gateway,
    Controller,
    /// `shardlet admin`: metadata administration and the controller's `/v1/status`.
    Admin,
    Predictor,
    /// The storage node of this name: verifies requests to itself, signs its
    /// announcements to the controller.
    Node(NodeName),
}

impl Role {
    /// The keys this role holds, and nothing more.
    pub fn keys(self) -> Vec<KeyName> {
        match self {
            Role::Member => vec![KeyName::Meta],
            Role::Gateway => vec![KeyName::MetaCaller(MetaCaller::Gateway), KeyName::Storage],
            Role::Controller => vec![
                KeyName::MetaCaller(MetaCaller::Controller),
                KeyName::Storage,
                KeyName::Controller,
                KeyName::Predictor,
            ],
            Role::Admin => vec![KeyName::MetaCaller(MetaCaller::Admin), KeyName::Controller],
            Role::Predictor => vec![KeyName::Predictor],
            Role::Node(name) => vec![KeyName::Node(name)],
        }
    }

    /// Parses `member`, `gateway`, `controller`, `admin`, `predictor`, or `node` with the
    /// node's name.
    pub fn parse(text: &str, node: Option<&str>) -> Result<Role, String> {
        let role = match (text, node) {
            ("member", None) => Role::Member,
            ("gateway", None) => Role::Gateway,
            ("controller", None) => Role::Controller,
            ("admin", None) => Role::Admin,
            ("predictor", None) => Role::Predictor,
            ("node", Some(name)) => {
                Role::Node(NodeName::parse(name).map_err(|error| format!("--node: {error}"))?)
            }
            ("node", None) => return Err("role node needs the node's name (--node NAME)".into()),
            (_, Some(_)) if Role::parse(text, None).is_ok() => {
                return Err(format!("--node only goes with role node, not {text}"))
            }
            _ => {
                return Err(format!(
                "unknown role {text:?}; one of member, gateway, controller, admin, predictor, node"
            ))
            }
        };
        Ok(role)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Member => f.write_str("member"),
            Role::Gateway => f.write_str("gateway"),
            Role::Controller => f.write_str("controller"),
            Role::Admin => f.write_str("admin"),
            Role::Predictor => f.write_str("predictor"),
            Role::Node(name) => write!(f, "node {name}"),
        }
    }
}

/// The keys one process holds. `Debug` shows their names only.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<KeyName, Key>,
}

impl Keyring {
    /// Holds the root: every key can be derived.
    pub fn from_root(secret: &ClusterSecret) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(KeyName::Root, secret.key().clone());
        Keyring { keys }
    }

    pub fn insert(&mut self, name: KeyName, key: Key) {
        self.keys.insert(name, key);
    }

    pub fn holds_root(&self) -> bool {
        self.keys.contains_key(&KeyName::Root)
    }

    /// The names of the keys held (not those derivable).
    pub fn names(&self) -> impl Iterator<Item = KeyName> + '_ {
        self.keys.keys().copied()
    }

    /// `name`'s key, held or derived from a held ancestor.
    pub fn key(&self, name: KeyName) -> Option<Key> {
        let mut ancestor = Some(name);
        while let Some(held) = ancestor {
            if let Some(held_key) = self.keys.get(&held) {
                return derive_from(held, held_key, name);
            }
            ancestor = held.parent();
        }
        None
    }

    /// `name`'s key, or an error naming it and what the keyring holds.
    pub fn require(&self, name: KeyName) -> Result<Key, AuthError> {
        self.key(name).ok_or_else(|| {
            AuthError::BadSecret(format!(
                "no key {name} (nor a key it derives from) among the keys given ({})",
                self.describe()
            ))
        })
    }

    /// The key to sign with as `name`.
    pub fn signing_key(&self, name: KeyName) -> Result<SigningKey, AuthError> {
        Ok(SigningKey::new(name, self.require(name)?))
    }

    /// Exactly the keys `role` holds, derived from this keyring.
    pub fn for_role(&self, role: Role) -> Result<Keyring, AuthError> {
        let mut keys = BTreeMap::new();
        for name in role.keys() {
            keys.insert(name, self.require(name)?);
        }
        Ok(Keyring { keys })
    }

    /// The names held, for messages (`meta.gateway, storage`).
    pub fn describe(&self) -> String {
        if self.keys.is_empty() {
            return "none".into();
        }
        self.keys
            .keys()
            .map(|name| name.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parses the key file format (module docs). `source` names the file or variable
    /// in errors, which give the line but never the key material.
    pub fn parse(text: &str, source: &str) -> Result<Keyring, AuthError> {
        let bad = |line: usize, what: String| {
            AuthError::BadSecret(format!("{source} line {line}: {what}"))
        };
        let mut keys = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let content = line.split('#').next().unwrap_or_default();
            for entry in content.split_whitespace() {
                let Some((name, hex)) = entry.split_once('=') else {
                    return Err(bad(number, "expected name=hex".into()));
                };
                let name: KeyName = name
                    .parse()
                    .map_err(|error| bad(number, format!("{error}")))?;
                if name == KeyName::Root {
                    return Err(bad(
                        number,
                        "the root secret does not go in a key file (use --secret-file)".into(),
                    ));
                }
                let key =
                    Key::from_hex(hex).map_err(|error| bad(number, format!("{name}: {error}")))?;
                if keys.insert(name, key).is_some() {
                    return Err(bad(number, format!("{name} is given twice")));
                }
                if keys.len() > KEY_FILE_ENTRIES_MAX {
                    return Err(bad(
                        number,
                        format!("more than {KEY_FILE_ENTRIES_MAX} keys (KEY_FILE_ENTRIES_MAX)"),
                    ));
                }
            }
        }
        if keys.is_empty() {
            return Err(AuthError::BadSecret(format!("{source} holds no key")));
        }
        Ok(Keyring { keys })
    }

    /// The key file text of this keyring, with a comment line saying what it is for.
    /// Refuses a keyring holding the root (never written to a key file).
    pub fn render(&self, comment: &str) -> Result<zeroize::Zeroizing<String>, AuthError> {
        if self.holds_root() {
            return Err(AuthError::BadSecret(
                "the root secret does not go in a key file".into(),
            ));
        }
        let mut text = zeroize::Zeroizing::new(format!("# {comment}\n"));
        for (name, key) in &self.keys {
            text.push_str(&format!("{name}={}\n", key.to_hex().as_str()));
        }
        Ok(text)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring({})", self.describe())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn node(name: &str) -> NodeName {
        NodeName::parse(name).unwrap()
    }

    fn root() -> Keyring {
        Keyring::from_root(&ClusterSecret::new("0123456789abcdef0123456789abcdef").unwrap())
    }

    #[test]
    fn a_role_keyring_holds_exactly_its_keys_and_derives_only_below_them() {
        let gateway = root().for_role(Role::Gateway).unwrap();
        assert_eq!(gateway.describe(), "meta.gateway, storage");
        assert!(gateway.key(KeyName::Node(node("n9"))).is_some());
        for refused in [
            KeyName::Root,
            KeyName::Meta,
            KeyName::MetaCaller(MetaCaller::Admin),
            KeyName::MetaCaller(MetaCaller::Member),
            KeyName::Controller,
            KeyName::Predictor,
        ] {
            assert!(gateway.key(refused).is_none(), "{refused}");
        }
        let four = root().for_role(Role::Node(node("n4"))).unwrap();
        assert!(four.key(KeyName::Node(node("n4"))).is_some());
        assert!(four.key(KeyName::Node(node("n5"))).is_none());
        assert!(four.key(KeyName::Storage).is_none());
        let member = root().for_role(Role::Member).unwrap();
        assert!(member.key(KeyName::MetaCaller(MetaCaller::Admin)).is_some());
        assert!(member.key(KeyName::Storage).is_none());
        assert!(member.key(KeyName::Node(node("n1"))).is_none());
        let derived = four.key(KeyName::Node(node("n4"))).unwrap();
        assert!(derived.same_as(&root().key(KeyName::Node(node("n4"))).unwrap()));
    }

    #[test]
    fn key_files_round_trip() {
        let controller = root().for_role(Role::Controller).unwrap();
        let text = controller
            .render("shardlet keys for role controller")
            .unwrap();
        let read = Keyring::parse(&text, "controller.keys").unwrap();
        assert_eq!(read.describe(), controller.describe());
        for name in Role::Controller.keys() {
            assert!(read
                .key(name)
                .unwrap()
                .same_as(&controller.key(name).unwrap()));
        }
        // One line, as an environment variable carries it.
        let one_line = text.lines().skip(1).collect::<Vec<_>>().join(" ");
        assert_eq!(
            Keyring::parse(&one_line, "SHARDLET_KEYS")
                .unwrap()
                .describe(),
            controller.describe()
        );
        assert!(root().render("no").is_err());
    }

    #[test]
    fn bad_key_files_are_refused_naming_the_line_and_never_the_key() {
        let storage = root().key(KeyName::Storage).unwrap().to_hex();
        let storage = storage.as_str();
        let cases = [
            ("", "holds no key"),
            ("# only a comment\n", "holds no key"),
            ("storage\n", "line 1: expected name=hex"),
            (
                &format!("\nstorage={}\n", &storage[2..]) as &str,
                "line 2: storage: a key is 64",
            ),
            (&format!("nodes-1={storage}"), "line 1: no key is named"),
            (&format!("root={storage}"), "line 1: the root secret"),
            (
                &format!("storage={storage}\nstorage={storage}"),
                "line 2: storage is given twice",
            ),
        ];
        for (text, expected) in cases {
            let error = Keyring::parse(text, "k.keys").unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains(&storage[4..20]), "{error}");
        }
    }

    #[test]
    fn roles_parse_with_their_node_name_only() {
        assert_eq!(Role::parse("node", Some("n3")), Ok(Role::Node(node("n3"))));
        assert_eq!(Role::parse("gateway", None), Ok(Role::Gateway));
        assert!(Role::parse("node", None).unwrap_err().contains("--node"));
        assert!(Role::parse("node", Some("N3"))
            .unwrap_err()
            .contains("DNS label"));
        assert!(Role::parse("gateway", Some("n1"))
            .unwrap_err()
            .contains("only goes with"));
        assert!(Role::parse("root", None)
            .unwrap_err()
            .contains("unknown role"));
    }
}
