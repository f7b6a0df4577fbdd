//! The properties the fuzz targets of this crate's parsers check, in one place: the
//! cargo-fuzz targets in `fuzz/` call these functions, and `tests/fuzz_corpus.rs`
//! replays every committed corpus and crash input through the same functions on the
//! stable toolchain (`make test`). docs/testing.md describes both.
//!
//! A check returns normally for any input, accepted or rightly refused, and panics when
//! a property fails: that is how libFuzzer learns of a finding. Properties, not only
//! "no panic": what a parser accepts satisfies its documented limits, and where a
//! writer exists, parse → write → parse gives the same value back.
//!
//! [`Input`] is the byte reader the structured targets of every crate share.

use std::cmp::Ordering;
use std::fmt::Display;
use std::str::FromStr;

use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::Deserialize;

use crate::checksum::Crc32c;
use crate::ids::{FragmentId, IdError, NodeId, ObjectId, ShardletId};
use crate::topology::{Node, NodeState, Topology, WEIGHT_MAX};

/// A fuzz target: its name in `fuzz/` (and its corpus directory), and its check.
pub type Target = (&'static str, fn(&[u8]));

/// The fuzz targets whose checks live here.
pub const TARGETS: &[Target] = &[("ids", ids), ("topology", topology)];

/// Reads structured values off the front of a fuzz input. Past the end every read gives
/// zeros or an empty slice, so every input means something (libFuzzer explores better
/// when short inputs are not simply refused).
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    /// Up to 8 bytes, big-endian, as a number.
    pub fn number(&mut self, bytes: usize) -> u64 {
        self.take(bytes.min(8))
            .iter()
            .fold(0, |value, byte| (value << 8) | u64::from(*byte))
    }

    /// The next `length` bytes, or what is left if fewer.
    pub fn take(&mut self, length: usize) -> &'a [u8] {
        let (taken, rest) = self.bytes.split_at(length.min(self.bytes.len()));
        self.bytes = rest;
        taken
    }

    pub fn rest(self) -> &'a [u8] {
        self.bytes
    }
}

/// Text and binary forms of every id, and the CRC32C text form.
///
/// - Binary: `from_bytes` accepts exactly `BINARY_LEN` bytes and `to_bytes` gives them
///   back; binary, text and id order agree.
/// - Text: whatever parses is the canonical text of its value (fixed width, lowercase
///   hex: one text per id, which is what makes a fragment id safe as a file name),
///   also through serde. A node id is decimal, so leading zeros are the one alias.
/// - Errors quote at most 80 characters of the input.
pub fn ids(data: &[u8]) {
    binary_round_trip(data, ObjectId::from_bytes, ObjectId::to_bytes);
    binary_round_trip(data, ShardletId::from_bytes, ShardletId::to_bytes);
    binary_round_trip(data, FragmentId::from_bytes, FragmentId::to_bytes);
    binary_round_trip(data, NodeId::from_bytes, NodeId::to_bytes);
    if let (Some(first), Some(second)) = (data.get(..25), data.get(25..50)) {
        let first = binary_prefix(first, FragmentId::from_bytes);
        let second = binary_prefix(second, FragmentId::from_bytes);
        let order = first.cmp(&second);
        assert_eq!(
            order,
            first.to_bytes().cmp(&second.to_bytes()),
            "binary order"
        );
        assert_eq!(
            order,
            first.to_string().cmp(&second.to_string()),
            "text order"
        );
        let shardlets = first.shardlet.cmp(&second.shardlet);
        assert!(order == shardlets || shardlets == Ordering::Equal);
    }
    for length in [16, 20, 25] {
        if let Some(prefix) = data.get(..length) {
            // Every string of the right length is some id; its text parses back.
            match length {
                16 => text_of_binary(binary_prefix(prefix, ObjectId::from_bytes)),
                20 => text_of_binary(binary_prefix(prefix, ShardletId::from_bytes)),
                _ => text_of_binary(binary_prefix(prefix, FragmentId::from_bytes)),
            }
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    canonical_text::<ObjectId>(text, ObjectId::TEXT_LEN);
    canonical_text::<ShardletId>(text, ShardletId::TEXT_LEN);
    canonical_text::<FragmentId>(text, FragmentId::TEXT_LEN);
    canonical_text::<Crc32c>(text, 8);
    match text.parse::<NodeId>() {
        Ok(id) => {
            assert!(text.len() <= 10 && text.bytes().all(|b| b.is_ascii_digit()));
            let shown = id.to_string();
            let without_zeros = text.trim_start_matches('0');
            assert!(shown == without_zeros || (shown == "0" && without_zeros.is_empty()));
            assert_eq!(shown.parse::<NodeId>(), Ok(id));
        }
        Err(error) => check_error(&error),
    }
}

fn check_error(error: &IdError) {
    assert!(
        error.input.chars().count() <= 80,
        "an id error quotes {} characters of its input",
        error.input.chars().count()
    );
}

fn binary_round_trip<T: Copy, const N: usize>(
    data: &[u8],
    from_bytes: fn(&[u8]) -> Result<T, IdError>,
    to_bytes: fn(T) -> [u8; N],
) {
    match from_bytes(data) {
        Ok(id) => {
            assert_eq!(
                data.len(),
                N,
                "accepted {} bytes for a {N}-byte id",
                data.len()
            );
            assert_eq!(to_bytes(id), data);
        }
        Err(error) => {
            assert_ne!(data.len(), N, "refused a {N}-byte id: {error}");
            check_error(&error);
        }
    }
}

/// The id of exactly `BINARY_LEN` bytes: every such string is one.
fn binary_prefix<T>(bytes: &[u8], from_bytes: fn(&[u8]) -> Result<T, IdError>) -> T {
    from_bytes(bytes).unwrap_or_else(|error| panic!("a binary id of the right length: {error}"))
}

fn text_of_binary<T>(id: T)
where
    T: Display + FromStr<Err = IdError> + PartialEq + std::fmt::Debug,
{
    let text = id.to_string();
    assert_eq!(text.parse::<T>(), Ok(id), "{text}");
}

fn canonical_text<T>(text: &str, length: usize)
where
    T: Display + FromStr<Err = IdError> + PartialEq + std::fmt::Debug + for<'de> Deserialize<'de>,
{
    match text.parse::<T>() {
        Ok(id) => {
            assert_eq!(text.len(), length);
            assert_eq!(id.to_string(), text, "not the canonical text of its value");
            let through_serde = T::deserialize(StrDeserializer::<ValueError>::new(text));
            assert_eq!(through_serde.ok(), Some(id), "serde disagrees with FromStr");
        }
        Err(error) => {
            check_error(&error);
            assert!(T::deserialize(StrDeserializer::<ValueError>::new(text)).is_err());
        }
    }
}

/// A topology file: what is accepted satisfies every rule of [`Topology::new`] (the
/// checks are restated here, not called), writes back to TOML and parses to the same
/// topology; what is refused names a line and column inside the text.
pub fn topology(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let topology = match Topology::from_toml_str(text, "fuzz.toml") {
        Ok(topology) => topology,
        Err(error) => {
            let lines = text.split('\n').collect::<Vec<_>>();
            assert!(error.line >= 1 && error.line <= lines.len(), "{error}");
            let line_chars = lines[error.line - 1].chars().count();
            assert!(
                error.column >= 1 && error.column <= line_chars + 1,
                "{error}"
            );
            assert!(!error.reason.is_empty());
            return;
        }
    };
    check_topology_rules(&topology);
    let written = write_topology(&topology);
    let reread = Topology::from_toml_str(&written, "written.toml")
        .unwrap_or_else(|error| panic!("a written topology does not parse: {error}\n{written}"));
    assert_eq!(reread, topology, "{written}");
    let rebuilt = Topology::new(topology.epoch(), topology.nodes().to_vec());
    assert_eq!(rebuilt.as_ref(), Ok(&topology));
    let listed: usize = topology
        .regions()
        .iter()
        .flat_map(|region| &region.zones)
        .map(|zone| zone.nodes.len())
        .sum();
    assert_eq!(listed, topology.nodes().len(), "every node in one zone");
}

fn check_topology_rules(topology: &Topology) {
    let nodes = topology.nodes();
    assert!(!nodes.is_empty());
    assert!(
        nodes.windows(2).all(|pair| pair[0].id < pair[1].id),
        "sorted by id, ids unique"
    );
    let mut names = std::collections::HashSet::new();
    let mut zone_regions = std::collections::HashMap::new();
    for node in nodes {
        assert!(
            names.insert(node.name.as_str()),
            "duplicate name {}",
            node.name
        );
        for text in [&node.name, &node.region, &node.zone] {
            assert!(!text.trim().is_empty());
        }
        let region = zone_regions
            .entry(node.zone.as_str())
            .or_insert(&node.region);
        assert_eq!(*region, &node.region, "zone {} in two regions", node.zone);
        let (host, port) = node
            .address
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("address {:?} is not host:port", node.address));
        assert!(!host.is_empty() && !host.chars().any(char::is_whitespace));
        assert!(port.parse::<u16>().is_ok_and(|port| port > 0));
        assert!(node.capacity_bytes > 0 && node.free_bytes <= node.capacity_bytes);
        assert!(node.weight > 0.0 && node.weight <= WEIGHT_MAX);
    }
}

/// The topology as a file [`Topology::from_toml_str`] reads (every field written out).
fn write_topology(topology: &Topology) -> String {
    #[derive(serde::Serialize)]
    struct File<'a> {
        epoch: u64,
        node: Vec<NodeEntry<'a>>,
    }
    #[derive(serde::Serialize)]
    struct NodeEntry<'a> {
        id: u32,
        name: &'a str,
        address: &'a str,
        region: &'a str,
        zone: &'a str,
        capacity_bytes: u64,
        free_bytes: u64,
        weight: f64,
        state: NodeState,
        #[serde(skip_serializing_if = "Option::is_none")]
        latency_us: Option<u64>,
    }
    fn entry(node: &Node) -> NodeEntry<'_> {
        NodeEntry {
            id: node.id.0,
            name: &node.name,
            address: &node.address,
            region: &node.region,
            zone: &node.zone,
            capacity_bytes: node.capacity_bytes,
            free_bytes: node.free_bytes,
            weight: node.weight,
            state: node.state,
            latency_us: node.latency_us,
        }
    }
    let file = File {
        epoch: topology.epoch(),
        node: topology.nodes().iter().map(entry).collect(),
    };
    toml::to_string(&file).unwrap_or_else(|error| panic!("cannot write a topology: {error}"))
}
