//! The erasure codec: a shardlet in, fragments out, and back.
//!
//! Replicated schemes write `copies` identical fragments. Erasure-coded schemes pad
//! the shardlet with zeros to a multiple of `data`, cut it into `data` shards of
//! `ceil(len / data)` bytes and add `parity` Reed-Solomon shards (GF(2^8),
//! `reed-solomon-erasure` with its SIMD C kernels). The original length is not stored
//! in the fragments: it lives in metadata, and every decode is told it.
//!
//! Every fragment carries its CRC32C, computed as it is produced. Decoding from
//! untrusted storage goes through [`decode_checked`], which drops fragments whose
//! checksum does not match before any of them reaches the decoder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::checksum::Crc32c;
use crate::ids::FragmentIndex;
use crate::scheme::{Scheme, SchemeError};

/// One fragment as produced by the codec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFragment {
    pub index: FragmentIndex,
    pub bytes: Vec<u8>,
    pub crc32c: Crc32c,
}

impl AsRef<[u8]> for EncodedFragment {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl AsMut<[u8]> for EncodedFragment {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

/// A decoded shardlet and the fragments whose checksum failed on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub bytes: Vec<u8>,
    /// Fragments that were present but corrupt: scrub and repair must replace them.
    pub corrupt: Vec<FragmentIndex>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    InvalidScheme(#[from] SchemeError),
    #[error("{scheme} has {expected} fragments, but {given} slots were given")]
    WrongFragmentCount {
        scheme: Scheme,
        expected: usize,
        given: usize,
    },
    #[error(
        "fragment {index} is {actual} bytes; a {original_len}-byte shardlet in {scheme} has {expected}-byte fragments"
    )]
    WrongFragmentLength {
        scheme: Scheme,
        index: usize,
        original_len: usize,
        expected: usize,
        actual: usize,
    },
    #[error("{scheme} needs {needed} intact fragments to decode, only {available} available")]
    TooFewFragments {
        scheme: Scheme,
        needed: usize,
        available: usize,
    },
    #[error("fragment {index} failed its checksum: expected {expected}, computed {actual}")]
    ChecksumMismatch {
        index: usize,
        expected: Crc32c,
        actual: Crc32c,
    },
    #[error("fragment index {index} is out of range for {scheme}")]
    IndexOutOfRange { scheme: Scheme, index: usize },
    #[error("reed-solomon: {0}")]
    ReedSolomon(String),
}

/// Encoding works on stripes of this many bytes of every shard at once: 12 shards ×
/// 32 KiB = 384 KiB, which stays in a core's L2 cache between encoding and checksum.
const STRIPE_BYTES: usize = 32 << 10;

/// The widest scheme `Scheme::validate` allows.
const MAX_WIDTH: usize = Scheme::DATA_MAX as usize + Scheme::PARITY_MAX as usize;

/// Bytes per fragment for a shardlet of `original_len` bytes.
pub fn fragment_len(scheme: Scheme, original_len: usize) -> usize {
    match scheme {
        Scheme::Replicated { .. } => original_len,
        Scheme::ErasureCoded { data, .. } => original_len.div_ceil(usize::from(data.max(1))),
    }
}

/// Encodes a shardlet into `scheme.width()` fragments.
pub fn encode(scheme: Scheme, shardlet: &[u8]) -> Result<Vec<EncodedFragment>, CodecError> {
    let mut fragments = Vec::new();
    encode_into(scheme, shardlet, &mut fragments)?;
    Ok(fragments)
}

/// [`encode`] into reused buffers: `fragments`' existing vectors keep their capacity,
/// so a steady stream of same-size shardlets encodes without allocating.
pub fn encode_into(
    scheme: Scheme,
    shardlet: &[u8],
    fragments: &mut Vec<EncodedFragment>,
) -> Result<(), CodecError> {
    scheme.validate()?;
    let width = scheme.width();
    let shard_len = fragment_len(scheme, shardlet.len());
    fragments.truncate(width);
    while fragments.len() < width {
        fragments.push(EncodedFragment {
            index: FragmentIndex(0),
            bytes: Vec::new(),
            crc32c: Crc32c(0),
        });
    }
    let data = match scheme {
        Scheme::Replicated { .. } => {
            let crc32c = Crc32c::of(shardlet);
            for (index, fragment) in fragments.iter_mut().enumerate() {
                fill(fragment, index, shardlet, 0);
                fragment.crc32c = crc32c;
            }
            return Ok(());
        }
        Scheme::ErasureCoded { data, .. } => usize::from(data),
    };
    for (index, fragment) in fragments.iter_mut().enumerate() {
        fragment.index = FragmentIndex(index as u8);
        // A no-op when the buffer is reused for a same-size shardlet; the bytes are
        // all overwritten below (data copied in, parity computed), stripe by stripe.
        fragment.bytes.resize(shard_len, 0);
    }
    let codec = reed_solomon(scheme)?;
    let (data_shards, parity_shards) = fragments.split_at_mut(data);
    let parity = parity_shards.len();
    let mut crc_states = [0u32; MAX_WIDTH];
    // Stripe by stripe, so one stripe of every shard stays in cache while it is
    // copied in, encoded and checksummed: whole-shard passes over 12 MiB would stream
    // everything through memory three times.
    let mut start = 0;
    while start < shard_len {
        let end = (start + STRIPE_BYTES).min(shard_len);
        for (index, shard) in data_shards.iter_mut().enumerate() {
            copy_padded(
                &mut shard.bytes[start..end],
                shardlet,
                index * shard_len + start,
            );
        }
        let mut inputs: [&[u8]; Scheme::DATA_MAX as usize] = [&[]; Scheme::DATA_MAX as usize];
        for (input, shard) in inputs.iter_mut().zip(data_shards.iter()) {
            *input = &shard.bytes[start..end];
        }
        let mut outputs: [&mut [u8]; Scheme::PARITY_MAX as usize] = Default::default();
        for (output, shard) in outputs.iter_mut().zip(parity_shards.iter_mut()) {
            *output = &mut shard.bytes[start..end];
        }
        codec
            .encode_sep(&inputs[..data], &mut outputs[..parity])
            .map_err(|error| CodecError::ReedSolomon(format!("{error:?}")))?;
        for (state, input) in crc_states.iter_mut().zip(&inputs[..data]) {
            *state = crc32c::crc32c_append(*state, input);
        }
        for (state, output) in crc_states[data..].iter_mut().zip(&outputs[..parity]) {
            *state = crc32c::crc32c_append(*state, output);
        }
        start = end;
    }
    for (fragment, state) in fragments.iter_mut().zip(crc_states) {
        fragment.crc32c = Crc32c(state);
    }
    Ok(())
}

/// Fills `target` with `source[from..]`, zero-padding past the end of `source`.
fn copy_padded(target: &mut [u8], source: &[u8], from: usize) {
    let available = source.len().saturating_sub(from).min(target.len());
    if available > 0 {
        target[..available].copy_from_slice(&source[from..from + available]);
    }
    target[available..].fill(0);
}

/// Sets a reused fragment buffer to `bytes` followed by `zeros` zero bytes.
fn fill(fragment: &mut EncodedFragment, index: usize, bytes: &[u8], zeros: usize) {
    fragment.index = FragmentIndex(index as u8);
    fragment.bytes.clear();
    fragment.bytes.extend_from_slice(bytes);
    fragment.bytes.resize(bytes.len() + zeros, 0);
}

/// Decodes a shardlet from fragments already known to be intact (slot `i` holds
/// fragment `i` or `None`). Any `required_fragments()` of them suffice; fewer is an
/// error, never garbage. Missing data shards are rebuilt into their slots.
pub fn decode(
    scheme: Scheme,
    fragments: &mut [Option<Vec<u8>>],
    original_len: usize,
) -> Result<Vec<u8>, CodecError> {
    check_slots(scheme, fragments, original_len)?;
    let present = fragments.iter().filter(|f| f.is_some()).count();
    if present < scheme.required_fragments() {
        return Err(CodecError::TooFewFragments {
            scheme,
            needed: scheme.required_fragments(),
            available: present,
        });
    }
    let data = match scheme {
        Scheme::Replicated { .. } => {
            let first = fragments.iter().flatten().next();
            return Ok(first.cloned().unwrap_or_default());
        }
        Scheme::ErasureCoded { data, .. } => usize::from(data),
    };
    if original_len == 0 {
        return Ok(Vec::new());
    }
    if fragments[..data].iter().any(Option::is_none) {
        reed_solomon(scheme)?
            .reconstruct_data(fragments)
            .map_err(|error| CodecError::ReedSolomon(format!("{error:?}")))?;
    }
    let mut bytes = Vec::with_capacity(original_len);
    for shard in fragments[..data].iter().flatten() {
        let wanted = (original_len - bytes.len()).min(shard.len());
        bytes.extend_from_slice(&shard[..wanted]);
    }
    Ok(bytes)
}

/// Decodes from fragments read back from storage, each with the CRC32C recorded when
/// it was written. A fragment whose checksum does not match is treated as missing
/// (and reported in [`Decoded::corrupt`]) before the decoder sees it.
pub fn decode_checked(
    scheme: Scheme,
    fragments: Vec<Option<(Vec<u8>, Crc32c)>>,
    original_len: usize,
) -> Result<Decoded, CodecError> {
    let mut corrupt = Vec::new();
    let mut slots: Vec<Option<Vec<u8>>> = Vec::with_capacity(fragments.len());
    for (index, fragment) in fragments.into_iter().enumerate() {
        slots.push(match fragment {
            Some((bytes, expected)) if Crc32c::of(&bytes) == expected => Some(bytes),
            Some(_) => {
                corrupt.push(FragmentIndex(index.min(255) as u8));
                None
            }
            None => None,
        });
    }
    let bytes = decode(scheme, &mut slots, original_len)?;
    Ok(Decoded { bytes, corrupt })
}

/// Checks one fragment against its recorded checksum.
pub fn check_fragment(index: usize, bytes: &[u8], expected: Crc32c) -> Result<(), CodecError> {
    let actual = Crc32c::of(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(CodecError::ChecksumMismatch {
            index,
            expected,
            actual,
        })
    }
}

/// Rebuilds the fragments listed in `wanted` (repair: "reconstruct fragment i only").
/// `fragments` must hold at least `required_fragments()` intact fragments. When every
/// wanted fragment is a data shard only data shards are recomputed; a wanted parity
/// shard needs all data shards first. Rebuilt fragments are moved out of their slots
/// (no copy) and returned with fresh CRCs; other missing slots may be left filled in.
pub fn rebuild(
    scheme: Scheme,
    fragments: &mut [Option<Vec<u8>>],
    original_len: usize,
    wanted: &[usize],
) -> Result<Vec<EncodedFragment>, CodecError> {
    check_slots(scheme, fragments, original_len)?;
    if let Some(index) = wanted.iter().find(|i| **i >= scheme.width()) {
        return Err(CodecError::IndexOutOfRange {
            scheme,
            index: *index,
        });
    }
    let present = fragments.iter().filter(|f| f.is_some()).count();
    let needed = scheme.required_fragments();
    if present < needed {
        return Err(CodecError::TooFewFragments {
            scheme,
            needed,
            available: present,
        });
    }
    match scheme {
        Scheme::Replicated { .. } => {
            let source = fragments
                .iter()
                .flatten()
                .next()
                .cloned()
                .unwrap_or_default();
            for index in wanted {
                fragments[*index] = Some(source.clone());
            }
        }
        Scheme::ErasureCoded { .. } if original_len == 0 => {
            for index in wanted {
                fragments[*index] = Some(Vec::new());
            }
        }
        Scheme::ErasureCoded { data, .. } => {
            let data_only = wanted.iter().all(|i| *i < usize::from(data));
            let crcs = reconstruct_striped(scheme, fragments, original_len, data_only)?;
            let mut rebuilt = Vec::with_capacity(wanted.len());
            for index in wanted {
                rebuilt.push(EncodedFragment {
                    index: FragmentIndex(*index as u8),
                    crc32c: Crc32c(crcs[*index]),
                    bytes: fragments[*index].take().unwrap_or_default(),
                });
            }
            return Ok(rebuilt);
        }
    }
    let mut rebuilt = Vec::with_capacity(wanted.len());
    for index in wanted {
        let bytes = fragments[*index].take().unwrap_or_default();
        rebuilt.push(EncodedFragment {
            index: FragmentIndex(*index as u8),
            crc32c: Crc32c::of(&bytes),
            bytes,
        });
    }
    Ok(rebuilt)
}

/// Fills the missing slots (only data shards when `data_only`) stripe by stripe and
/// returns the CRC32C state of every slot it filled, computed while the stripe is hot.
/// The caller has checked the slot count, lengths and that enough are present.
fn reconstruct_striped(
    scheme: Scheme,
    fragments: &mut [Option<Vec<u8>>],
    original_len: usize,
    data_only: bool,
) -> Result<[u32; MAX_WIDTH], CodecError> {
    let codec = reed_solomon(scheme)?;
    let data = scheme.required_fragments();
    let shard_len = fragment_len(scheme, original_len);
    let mut filled = [false; MAX_WIDTH];
    for (index, slot) in fragments.iter_mut().enumerate() {
        if slot.is_none() && (index < data || !data_only) {
            *slot = Some(vec![0; shard_len]);
            filled[index] = true;
        }
    }
    let mut crcs = [0u32; MAX_WIDTH];
    let mut start = 0;
    while start < shard_len {
        let end = (start + STRIPE_BYTES).min(shard_len);
        let mut shards: Vec<(&mut [u8], bool)> = fragments
            .iter_mut()
            .enumerate()
            .map(|(index, slot)| match slot {
                Some(bytes) => (&mut bytes[start..end], !filled[index]),
                None => (&mut [][..], false),
            })
            .collect();
        let result = if data_only {
            codec.reconstruct_data(&mut shards)
        } else {
            codec.reconstruct(&mut shards)
        };
        result.map_err(|error| CodecError::ReedSolomon(format!("{error:?}")))?;
        for (index, (bytes, _)) in shards.iter().enumerate() {
            if filled[index] {
                crcs[index] = crc32c::crc32c_append(crcs[index], bytes);
            }
        }
        start = end;
    }
    Ok(crcs)
}

/// Whether a full set of fragments is consistent: identical replicas, or parity that
/// matches the data shards.
pub fn verify(scheme: Scheme, fragments: &[Vec<u8>]) -> Result<bool, CodecError> {
    scheme.validate()?;
    if fragments.len() != scheme.width() {
        return Err(CodecError::WrongFragmentCount {
            scheme,
            expected: scheme.width(),
            given: fragments.len(),
        });
    }
    let first_len = fragments.first().map_or(0, Vec::len);
    if fragments.iter().any(|f| f.len() != first_len) {
        return Ok(false);
    }
    match scheme {
        Scheme::Replicated { .. } => Ok(fragments.windows(2).all(|pair| pair[0] == pair[1])),
        Scheme::ErasureCoded { .. } if first_len == 0 => Ok(true),
        Scheme::ErasureCoded { .. } => reed_solomon(scheme)?
            .verify(fragments)
            .map_err(|error| CodecError::ReedSolomon(format!("{error:?}"))),
    }
}

/// Validates the scheme, the slot count and every present fragment's length, so the
/// library never sees inconsistent input (it would return an error, but ours names
/// the fragment).
fn check_slots(
    scheme: Scheme,
    fragments: &[Option<Vec<u8>>],
    original_len: usize,
) -> Result<(), CodecError> {
    scheme.validate()?;
    if fragments.len() != scheme.width() {
        return Err(CodecError::WrongFragmentCount {
            scheme,
            expected: scheme.width(),
            given: fragments.len(),
        });
    }
    let expected = fragment_len(scheme, original_len);
    for (index, fragment) in fragments.iter().enumerate() {
        if let Some(bytes) = fragment {
            if bytes.len() != expected {
                return Err(CodecError::WrongFragmentLength {
                    scheme,
                    index,
                    original_len,
                    expected,
                    actual: bytes.len(),
                });
            }
        }
    }
    Ok(())
}

/// Building a `ReedSolomon` inverts and multiplies matrices; do it once per shape.
/// The table holds at most one entry per valid (data, parity), so it is bounded.
fn reed_solomon(scheme: Scheme) -> Result<Arc<ReedSolomon>, CodecError> {
    type Table = Mutex<HashMap<(u8, u8), Arc<ReedSolomon>>>;
    static TABLE: OnceLock<Table> = OnceLock::new();
    let Scheme::ErasureCoded { data, parity } = scheme else {
        return Err(CodecError::ReedSolomon(format!(
            "{scheme} is not erasure-coded"
        )));
    };
    let table = TABLE.get_or_init(|| Mutex::new(HashMap::new()));
    // A poisoned lock only means another thread panicked while inserting; the map is
    // still a valid cache.
    let mut table = table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(codec) = table.get(&(data, parity)) {
        return Ok(Arc::clone(codec));
    }
    let codec = ReedSolomon::new(usize::from(data), usize::from(parity))
        .map_err(|error| CodecError::ReedSolomon(format!("{error:?}")))?;
    let codec = Arc::new(codec);
    table.insert((data, parity), Arc::clone(&codec));
    Ok(codec)
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
