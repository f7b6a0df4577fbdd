//! A storage node's name: its identity in the cluster and in its key (`node-NAME`).
//!
//! Why a name and not the numeric id: a node must hold its key before it has an id
//! (ids are allocated by the layout when the operator, or auto-apply, assigns the node),
//! and a machine that Kubernetes or an operator starts knows its name (a pod or host
//! name), never an id. The name is an RFC 1123 DNS label, the form Kubernetes gives pod
//! and node names: 1 to 63 characters of `a-z`, `0-9` and `-`, starting and ending with a
//! letter or digit. Lowercase only, so one machine never has two spellings (and two
//! keys).
//!
//! The type is `Copy` (the bytes live inline) because [`crate::KeyName`] is: key names
//! are passed around by value everywhere.

use std::fmt;
use std::str::FromStr;

/// Longest name: a DNS label.
pub const NODE_NAME_BYTES_MAX: usize = 63;

/// A validated node name. Only [`NodeName::parse`] (or `FromStr`) makes one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeName {
    length: u8,
    bytes: [u8; NODE_NAME_BYTES_MAX],
}

/// Why a text is not a node name. The message quotes at most 64 characters of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node name {shown:?} is not a DNS label: {reason} (1 to 63 of a-z, 0-9 and '-', starting and ending with a letter or digit)")]
pub struct InvalidNodeName {
    shown: String,
    reason: &'static str,
}

impl NodeName {
    pub fn parse(text: &str) -> Result<Self, InvalidNodeName> {
        let invalid = |reason| InvalidNodeName {
            shown: text.chars().take(64).collect(),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        if text.len() > NODE_NAME_BYTES_MAX {
            return Err(invalid("it is longer than 63 characters"));
        }
        let allowed = |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-';
        if !text.bytes().all(allowed) {
            return Err(invalid("it has a character other than a-z, 0-9 and '-'"));
        }
        if text.starts_with('-') || text.ends_with('-') {
            return Err(invalid("it starts or ends with '-'"));
        }
        let mut bytes = [0u8; NODE_NAME_BYTES_MAX];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(Self {
            length: text.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes were ever copied in (checked by `parse`).
        std::str::from_utf8(&self.bytes[..usize::from(self.length)]).unwrap_or_default()
    }
}

/// By text (the unused tail of the buffer is always zero, so the derived equality agrees).
impl Ord for NodeName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for NodeName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for NodeName {
    type Err = InvalidNodeName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeName({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dns_labels_are_names_and_nothing_else_is() {
        for good in [
            "a",
            "n1",
            "eu-west-a-1",
            "7",
            "shardlet-node-0",
            &"a".repeat(63),
        ] {
            assert_eq!(NodeName::parse(good).unwrap().as_str(), good);
        }
        let cases = [
            ("", "empty"),
            (&"a".repeat(64) as &str, "longer than 63"),
            ("Node1", "character other than"),
            ("node_1", "character other than"),
            ("node.1", "character other than"),
            ("nöde", "character other than"),
            ("node 1", "character other than"),
            ("-node", "starts or ends"),
            ("node-", "starts or ends"),
            ("../x", "character other than"),
        ];
        for (bad, why) in cases {
            let error = NodeName::parse(bad).unwrap_err().to_string();
            assert!(error.contains(why), "{bad:?}: {error}");
            assert!(error.contains("DNS label"), "{error}");
        }
    }

    #[test]
    fn names_order_and_compare_by_their_text() {
        let a = NodeName::parse("a-1").unwrap();
        let b = NodeName::parse("b").unwrap();
        assert!(a < b);
        assert_eq!(a, "a-1".parse().unwrap());
        assert_eq!(format!("{a} {a:?}"), "a-1 NodeName(a-1)");
    }
}
