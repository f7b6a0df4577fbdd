//! Identifiers, with one stable binary form (fixed-size, big-endian, so byte order is
//! sort order) and one stable text form (fixed-width lowercase hex, so text order is
//! sort order too). Text forms are parsed strictly: exact length, lowercase hex only.
//! That strictness is what lets a storage node use a fragment id as a file name without
//! any possibility of path traversal.

use std::fmt;
use std::str::FromStr;

/// Why a piece of text or bytes is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {input:?}: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub input: String,
    pub reason: &'static str,
}

impl IdError {
    pub(crate) fn new(kind: &'static str, input: &str, reason: &'static str) -> Self {
        // Never echo an unbounded input back into an error message or a log line.
        let input: String = input.chars().take(80).collect();
        Self {
            kind,
            input,
            reason,
        }
    }
}

/// An error naming `kind` and `reason` unless `bytes` is exactly `length` long.
fn check_length(
    kind: &'static str,
    bytes: &[u8],
    length: usize,
    reason: &'static str,
) -> Result<(), IdError> {
    if bytes.len() == length {
        Ok(())
    } else {
        Err(IdError::new(kind, &hex::encode(bytes), reason))
    }
}

/// Parses exactly `digits` lowercase hex digits.
fn parse_hex_u64(kind: &'static str, text: &str, digits: usize) -> Result<u64, IdError> {
    if text.len() != digits {
        return Err(IdError::new(kind, text, "wrong length"));
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(IdError::new(kind, text, "expected lowercase hex digits"));
    }
    u64::from_str_radix(text, 16).map_err(|_| IdError::new(kind, text, "expected hex digits"))
}

macro_rules! serde_via_text {
    ($type:ty) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// One stored object version. 128 random bits: never reused, even when a key is
/// overwritten, so fragments of an old version can never be mistaken for a new one's.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub [u8; 16]);

impl ObjectId {
    pub const BINARY_LEN: usize = 16;
    pub const TEXT_LEN: usize = 32;

    pub fn random() -> Self {
        Self(rand::random())
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        let array: [u8; 16] = bytes
            .try_into()
            .map_err(|_| IdError::new("object id", &hex::encode(bytes), "expected 16 bytes"))?;
        Ok(Self(array))
    }

    /// A 64-bit key for hashing (placement). The id is random, so its first 8 bytes are
    /// already uniformly distributed.
    pub fn hash_key(self) -> u64 {
        u64::from_be_bytes([
            self.0[0], self.0[1], self.0[2], self.0[3], self.0[4], self.0[5], self.0[6], self.0[7],
        ])
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl FromStr for ObjectId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != Self::TEXT_LEN {
            return Err(IdError::new("object id", text, "expected 32 hex digits"));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(IdError::new(
                "object id",
                text,
                "expected lowercase hex digits",
            ));
        }
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(text, &mut bytes)
            .map_err(|_| IdError::new("object id", text, "expected hex digits"))?;
        Ok(Self(bytes))
    }
}

serde_via_text!(ObjectId);

/// The `index`-th shardlet of an object (0-based, in byte order).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardletId {
    pub object: ObjectId,
    pub index: u32,
}

impl ShardletId {
    pub const BINARY_LEN: usize = 20;
    pub const TEXT_LEN: usize = 32 + 1 + 8;

    pub fn new(object: ObjectId, index: u32) -> Self {
        Self { object, index }
    }

    pub fn to_bytes(self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out[..16].copy_from_slice(&self.object.0);
        out[16..].copy_from_slice(&self.index.to_be_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        check_length("shardlet id", bytes, Self::BINARY_LEN, "expected 20 bytes")?;
        let object = ObjectId::from_bytes(&bytes[..16])?;
        let index = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        Ok(Self { object, index })
    }

    /// A 64-bit placement key: stable for the shardlet, well mixed across indices.
    pub fn hash_key(self) -> u64 {
        mix64(self.object.hash_key() ^ mix64(u64::from(self.index).wrapping_add(1)))
    }
}

/// SplitMix64's finaliser: a cheap, well-distributed 64-bit mixer.
pub fn mix64(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

impl fmt::Display for ShardletId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:08x}", self.object, self.index)
    }
}

impl fmt::Debug for ShardletId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShardletId({self})")
    }
}

impl FromStr for ShardletId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != Self::TEXT_LEN || text.as_bytes()[32] != b'-' {
            return Err(IdError::new(
                "shardlet id",
                text,
                "expected <object:32 hex>-<index:8 hex>",
            ));
        }
        let object: ObjectId = text[..32].parse()?;
        let index = parse_hex_u64("shardlet id", &text[33..], 8)? as u32;
        Ok(Self { object, index })
    }
}

serde_via_text!(ShardletId);

/// The position of a fragment within its shardlet's scheme: replica number for a
/// replicated shardlet, shard number (data first, then parity) for an erasure-coded one.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct FragmentIndex(pub u8);

impl fmt::Display for FragmentIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A shardlet's layout generation. It increases every time the shardlet's fragments are
/// rewritten (repair, replication ↔ erasure-coding transition), so a fragment left over
/// from an older layout is recognisably stale and never collides with a current one.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Generation(pub u32);

impl Generation {
    pub fn next(self) -> Self {
        Self(
            self.0
                .checked_add(1)
                .expect("generation counter overflowed u32"),
        )
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One stored piece of a shardlet: the unit a storage node keeps on disk.
///
/// Text form: `<object:32 hex>-<shardlet:8 hex>-<generation:8 hex>-<fragment:2 hex>`,
/// 53 characters of `[0-9a-f-]`, which is also the fragment's file name on a node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragmentId {
    pub shardlet: ShardletId,
    pub generation: Generation,
    pub index: FragmentIndex,
}

impl FragmentId {
    pub const BINARY_LEN: usize = 25;
    pub const TEXT_LEN: usize = 32 + 1 + 8 + 1 + 8 + 1 + 2;

    pub fn new(shardlet: ShardletId, generation: Generation, index: FragmentIndex) -> Self {
        Self {
            shardlet,
            generation,
            index,
        }
    }

    pub fn to_bytes(self) -> [u8; 25] {
        let mut out = [0u8; 25];
        out[..20].copy_from_slice(&self.shardlet.to_bytes());
        out[20..24].copy_from_slice(&self.generation.0.to_be_bytes());
        out[24] = self.index.0;
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        check_length("fragment id", bytes, Self::BINARY_LEN, "expected 25 bytes")?;
        let shardlet = ShardletId::from_bytes(&bytes[..20])?;
        let generation = Generation(u32::from_be_bytes([
            bytes[20], bytes[21], bytes[22], bytes[23],
        ]));
        Ok(Self {
            shardlet,
            generation,
            index: FragmentIndex(bytes[24]),
        })
    }
}

impl fmt::Display for FragmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{:08x}-{:02x}",
            self.shardlet, self.generation.0, self.index.0
        )
    }
}

impl fmt::Debug for FragmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FragmentId({self})")
    }
}

impl FromStr for FragmentId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const SHAPE: &str =
            "expected <object:32 hex>-<shardlet:8 hex>-<generation:8 hex>-<fragment:2 hex>";
        if text.len() != Self::TEXT_LEN || !text.is_ascii() {
            return Err(IdError::new("fragment id", text, SHAPE));
        }
        let bytes = text.as_bytes();
        if bytes[41] != b'-' || bytes[50] != b'-' {
            return Err(IdError::new("fragment id", text, SHAPE));
        }
        let shardlet: ShardletId = text[..41].parse()?;
        let generation = Generation(parse_hex_u64("fragment id", &text[42..50], 8)? as u32);
        let index = FragmentIndex(parse_hex_u64("fragment id", &text[51..], 2)? as u8);
        Ok(Self {
            shardlet,
            generation,
            index,
        })
    }
}

serde_via_text!(FragmentId);

/// A storage node. Allocated in increasing order as nodes join (placement relies on
/// that: new nodes go at the end of the jump-hash bucket list). Text form: decimal.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct NodeId(pub u32);

impl NodeId {
    pub const BINARY_LEN: usize = 4;

    pub fn to_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        let array: [u8; 4] = bytes
            .try_into()
            .map_err(|_| IdError::new("node id", &hex::encode(bytes), "expected 4 bytes"))?;
        Ok(Self(u32::from_be_bytes(array)))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

impl FromStr for NodeId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::new("node id", text, "expected a decimal number"));
        }
        text.parse::<u32>()
            .map(Self)
            .map_err(|_| IdError::new("node id", text, "out of range for u32"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fragment(object: [u8; 16], shardlet: u32, generation: u32, index: u8) -> FragmentId {
        FragmentId::new(
            ShardletId::new(ObjectId(object), shardlet),
            Generation(generation),
            FragmentIndex(index),
        )
    }

    #[test]
    fn fragment_text_form_is_fixed_and_documented() {
        let id = fragment([0xab; 16], 7, 2, 11);
        assert_eq!(
            id.to_string(),
            "abababababababababababababababab-00000007-00000002-0b"
        );
        assert_eq!(id.to_string().len(), FragmentId::TEXT_LEN);
    }

    #[test]
    fn malformed_fragment_ids_are_rejected() {
        let good = fragment([0xa0; 16], 1, 1, 1).to_string();
        assert!(good.parse::<FragmentId>().is_ok());
        for bad in [
            "",
            "../../etc/passwd",
            "..%2f..%2fetc",
            &good.to_uppercase(),
            &good[..good.len() - 1],
            &format!("{good}0"),
            &good.replace('-', "/"),
            &good.replacen('0', "/", 1),
            &format!("{}.{}", &good[..41], &good[42..]),
        ] {
            assert!(bad.parse::<FragmentId>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn node_id_text_is_decimal() {
        assert_eq!("42".parse::<NodeId>(), Ok(NodeId(42)));
        assert!("-1".parse::<NodeId>().is_err());
        assert!("4294967296".parse::<NodeId>().is_err());
        assert!("".parse::<NodeId>().is_err());
        assert!("+1".parse::<NodeId>().is_err());
    }

    proptest! {
        #[test]
        fn fragment_id_round_trips(object: [u8; 16], shardlet: u32, generation: u32, index: u8) {
            let id = fragment(object, shardlet, generation, index);
            prop_assert_eq!(id.to_string().parse::<FragmentId>(), Ok(id));
            prop_assert_eq!(FragmentId::from_bytes(&id.to_bytes()), Ok(id));
        }

        #[test]
        fn binary_and_text_orders_agree(a: ([u8; 16], u32, u32, u8), b: ([u8; 16], u32, u32, u8)) {
            let (x, y) = (fragment(a.0, a.1, a.2, a.3), fragment(b.0, b.1, b.2, b.3));
            prop_assert_eq!(x.cmp(&y), x.to_bytes().cmp(&y.to_bytes()));
            prop_assert_eq!(x.cmp(&y), x.to_string().cmp(&y.to_string()));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,80}") {
            let _ = text.parse::<FragmentId>();
            let _ = text.parse::<ShardletId>();
            let _ = text.parse::<ObjectId>();
            let _ = text.parse::<NodeId>();
        }
    }
}
