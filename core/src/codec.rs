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

/// Encodes a shardlet into `scheme.width()` owned fragments. Convenient and simple;
/// the write path uses [`encode_erasure_into`], which does not copy the data shards.
pub fn encode(scheme: Scheme, shardlet: &[u8]) -> Result<Vec<EncodedFragment>, CodecError> {
    let mut fragments = Vec::new();
    encode_into(scheme, shardlet, &mut fragments)?;
    Ok(fragments)
}

/// [`encode`] into reused buffers: `fragments`' existing vectors keep their capacity.
pub fn encode_into(
    scheme: Scheme,
    shardlet: &[u8],
    fragments: &mut Vec<EncodedFragment>,
) -> Result<(), CodecError> {
    scheme.validate()?;
    let width = scheme.width();
    fragments.truncate(width);
    while fragments.len() < width {
        fragments.push(EncodedFragment {
            index: FragmentIndex(0),
            bytes: Vec::new(),
            crc32c: Crc32c(0),
        });
    }
    if let Scheme::Replicated { .. } = scheme {
        let crc32c = Crc32c::of(shardlet);
        for (index, fragment) in fragments.iter_mut().enumerate() {
            fill(fragment, index, shardlet, 0);
            fragment.crc32c = crc32c;
        }
        return Ok(());
    }
    let mut encoding = ErasureEncoding::default();
    encode_erasure_into(scheme, shardlet, &mut encoding)?;
    for (index, fragment) in fragments.iter_mut().enumerate() {
        fill(fragment, index, encoding.fragment(shardlet, index), 0);
        fragment.crc32c = encoding.crcs[index];
    }
    Ok(())
}

/// An erasure-coded shardlet without copies of its data: data fragment `i` is the
/// input's bytes `i * shard_len .. (i + 1) * shard_len` wherever that range lies inside
/// the input; only a data fragment that runs past the end (the input is not a multiple
/// of `data`) is a padded copy. Parity fragments are computed into reused buffers.
/// Writers send data fragments as slices of the buffer they already hold.
#[derive(Clone, Debug, Default)]
pub struct ErasureEncoding {
    pub shard_len: usize,
    /// CRC32C of every fragment, data then parity, padded data shards as stored.
    pub crcs: Vec<Crc32c>,
    /// Per data index: `Some` padded copy when the shard runs past the input's end.
    padded: Vec<Option<Vec<u8>>>,
    parity: Vec<Vec<u8>>,
}

/// Where a fragment's bytes are: a range of the encoded input, or a buffer of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FragmentSource<'a> {
    Input(std::ops::Range<usize>),
    Owned(&'a [u8]),
}

/// [`FragmentSource`] taken out of a consumed encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FragmentBytes {
    Input(std::ops::Range<usize>),
    Owned(Vec<u8>),
}

impl ErasureEncoding {
    pub fn width(&self) -> usize {
        self.crcs.len()
    }

    /// Fragment `index`'s bytes given the input the encoding was made from.
    pub fn fragment<'a>(&'a self, input: &'a [u8], index: usize) -> &'a [u8] {
        match self.source(index) {
            FragmentSource::Input(range) => &input[range],
            FragmentSource::Owned(bytes) => bytes,
        }
    }

    /// Every fragment in index order with its CRC32C, moving the owned buffers out.
    pub fn into_fragments(self) -> Vec<(FragmentBytes, Crc32c)> {
        let shard_len = self.shard_len;
        let data = self
            .padded
            .into_iter()
            .enumerate()
            .map(|(index, padded)| match padded {
                Some(bytes) => FragmentBytes::Owned(bytes),
                None => FragmentBytes::Input(index * shard_len..(index + 1) * shard_len),
            });
        data.chain(self.parity.into_iter().map(FragmentBytes::Owned))
            .zip(self.crcs)
            .collect()
    }

    /// Where fragment `index` lives (data in the input when it can, else owned).
    pub fn source(&self, index: usize) -> FragmentSource<'_> {
        let data = self.padded.len();
        if index >= data {
            return FragmentSource::Owned(self.parity.get(index - data).map_or(&[], Vec::as_slice));
        }
        match &self.padded[index] {
            Some(bytes) => FragmentSource::Owned(bytes),
            None => FragmentSource::Input(index * self.shard_len..(index + 1) * self.shard_len),
        }
    }
}

/// Erasure-codes `shardlet` into `encoding` (see [`ErasureEncoding`]). Works stripe by
/// stripe (`STRIPE_BYTES` of every shard at once) so each stripe is still in cache when
/// it is checksummed: the parity is computed and every fragment's CRC32C taken in one
/// pass over memory. Replicated schemes are not erasure-coded: an error.
pub fn encode_erasure_into(
    scheme: Scheme,
    shardlet: &[u8],
    encoding: &mut ErasureEncoding,
) -> Result<(), CodecError> {
    scheme.validate()?;
    let codec = reed_solomon(scheme)?;
    let data = scheme.required_fragments();
    let parity = scheme.width() - data;
    let shard_len = fragment_len(scheme, shardlet.len());
    encoding.shard_len = shard_len;
    encoding.crcs.clear();
    encoding.crcs.resize(scheme.width(), Crc32c(0));
    encoding.padded.resize(data, None);
    for (index, slot) in encoding.padded.iter_mut().enumerate() {
        if (index + 1) * shard_len > shardlet.len() {
            let buffer = slot.get_or_insert_with(Vec::new);
            buffer.resize(shard_len, 0);
            copy_padded(buffer, shardlet, index * shard_len);
        } else {
            *slot = None;
        }
    }
    encoding.parity.resize(parity, Vec::new());
    for shard in &mut encoding.parity {
        // Every byte is overwritten by the encoder below.
        shard.resize(shard_len, 0);
    }
    let mut start = 0;
    while start < shard_len {
        let end = (start + STRIPE_BYTES).min(shard_len);
        let mut inputs: [&[u8]; Scheme::DATA_MAX as usize] = [&[]; Scheme::DATA_MAX as usize];
        for (index, input) in inputs[..data].iter_mut().enumerate() {
            *input = match &encoding.padded[index] {
                Some(bytes) => &bytes[start..end],
                None => &shardlet[index * shard_len + start..index * shard_len + end],
            };
        }
        let mut outputs: [&mut [u8]; Scheme::PARITY_MAX as usize] = Default::default();
        for (output, shard) in outputs.iter_mut().zip(encoding.parity.iter_mut()) {
            *output = &mut shard[start..end];
        }
        codec
            .encode_sep(&inputs[..data], &mut outputs[..parity])
            .map_err(|error| CodecError::ReedSolomon(format!("{error:?}")))?;
        for (crc, input) in encoding.crcs.iter_mut().zip(&inputs[..data]) {
            *crc = crc.append(input);
        }
        for (crc, output) in encoding.crcs[data..].iter_mut().zip(&outputs[..parity]) {
            *crc = crc.append(output);
        }
        start = end;
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
                crcs[index] = Crc32c(crcs[index]).append(bytes).0;
            }
        }
        start = end;
    }
    Ok(crcs)
}

/// Whether a full set of fragments is consistent: identical replicas, or parity that
/// matches the data shards.
pub fn verify(scheme: Scheme, fragments: &[Vec<u8>]) -> Result<bool, CodecError> {
    check_width(scheme, fragments.len())?;
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

/// Validates the scheme and that `given` fragments (or slots) are one per position.
fn check_width(scheme: Scheme, given: usize) -> Result<(), CodecError> {
    scheme.validate()?;
    if given != scheme.width() {
        return Err(CodecError::WrongFragmentCount {
            scheme,
            expected: scheme.width(),
            given,
        });
    }
    Ok(())
}

/// Validates the scheme, the slot count and every present fragment's length, so the
/// library never sees inconsistent input (it would return an error, but ours names
/// the fragment).
fn check_slots(
    scheme: Scheme,
    fragments: &[Option<Vec<u8>>],
    original_len: usize,
) -> Result<(), CodecError> {
    check_width(scheme, fragments.len())?;
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
mod tests;
