//! The properties the fuzz targets of the storage node check (see
//! `shardlet_core::fuzzing` for how checks, targets and the corpus replay fit together):
//! the fragment format as read back from disk or the small-fragment store, and what a
//! request and a response body may say.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use bytes::Bytes;
use shardlet_core::fuzzing::{Input, Target};
use shardlet_core::health_report::HealthReport;
use shardlet_core::{Crc32c, FragmentId};

use crate::fragment_file::format::{FragmentHeader, BLOCK_BYTES, HEADER_BYTES, PAYLOAD_BYTES_MAX};
use crate::fragment_file::{decode_header, encode_fragment, FragmentReader};
use crate::range::ByteRange;
use crate::request;
use crate::store_error::StoreError;
use crate::wire::{ErrorBody, FragmentPage, ListedFragment, CACHE_HEADER, CRC_HEADER};

/// The fuzz targets whose checks live here.
pub const TARGETS: &[Target] = &[
    ("fragment_file", fragment_file),
    ("node_request", node_request),
];

/// Longest payload the structured modes build: three blocks and a bit, so reads cross
/// block boundaries and the last block is short.
const BUILT_PAYLOAD_BYTES_MAX: u64 = 3 * BLOCK_BYTES + 100;

/// A stored fragment (file or small-fragment value) as read back: never a panic, never
/// a wrong byte. The first byte picks how the rest is used:
/// - 0: the bytes as they are, a stored value;
/// - 1: a valid header (magic, version, block size, header CRC) with the payload length
///   and CRC from the input, followed by the rest: explores what a header can claim;
/// - 2: a real fragment of a generated payload, written in pieces, then damaged by up
///   to three bit flips or a length change. CRC32C detects every error of at most three
///   bits in a block (Hamming distance 4 at 64 KiB), so every read that succeeds must
///   return the original bytes, and any change in length must be refused on open.
pub fn fragment_file(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => stored_value(input.rest(), None),
        1 => {
            let header = FragmentHeader {
                payload_length: input.number(8),
                payload_crc: Crc32c(input.number(4) as u32),
            };
            let mut value = header.encode().to_vec();
            value.extend_from_slice(input.rest());
            stored_value(&value, None);
        }
        _ => damaged_fragment(input),
    }
}

/// Opens `value` as a stored fragment and reads it whole and in ranges. Whatever opens
/// is self-consistent; with `original`, every byte read equals the original payload's.
fn stored_value(value: &[u8], original: Option<&[u8]>) {
    let header = match decode_header(value) {
        Ok(header) => header,
        Err(error) => {
            assert!(matches!(error, StoreError::ChecksumMismatch(_)), "{error}");
            return;
        }
    };
    assert!(header.payload_length <= PAYLOAD_BYTES_MAX);
    assert_eq!(
        header.file_length(),
        value.len() as u64,
        "the length was checked"
    );
    let reader = FragmentReader::from_encoded(Bytes::copy_from_slice(value))
        .unwrap_or_else(|error| panic!("a value whose header checks out does not open: {error}"));
    let length = header.payload_length;
    let payload = &value[HEADER_BYTES as usize..][..length as usize];
    if let Some(original) = original {
        assert_eq!(
            length,
            original.len() as u64,
            "a damaged length was accepted"
        );
    }
    let expected = original.unwrap_or(payload);
    let whole_ok = reader.verify_all().is_ok();
    if whole_ok {
        assert_eq!(payload, expected, "verify_all passed a changed payload");
        assert_eq!(Crc32c::of(payload), header.payload_crc);
    }
    // Ranges from, to and just after every block edge, edge ± 1 and the payload's ends:
    // each read returns exactly its bytes, or refuses.
    let mut points: Vec<u64> = (0..=length / BLOCK_BYTES)
        .flat_map(|block| {
            let edge = block * BLOCK_BYTES;
            [edge.saturating_sub(1), edge, edge + 1]
        })
        .chain([0, 1, length.saturating_sub(1), length])
        .filter(|point| *point <= length)
        .collect();
    points.sort_unstable();
    points.dedup();
    let ranges = points.iter().flat_map(|point| {
        [
            (*point, (point + 1).min(length)),
            (*point, length),
            (0, *point),
        ]
    });
    for (start, end) in ranges {
        match reader.read_range(start, end) {
            Ok(bytes) => assert_eq!(
                &bytes[..],
                &expected[start as usize..end as usize],
                "range {start}..{end} of {length}"
            ),
            Err(error) => {
                assert!(
                    !whole_ok,
                    "range {start}..{end} refused on a verified fragment"
                );
                assert!(matches!(error, StoreError::ChecksumMismatch(_)), "{error}");
            }
        }
    }
}

/// Mode 2 of [`fragment_file`].
fn damaged_fragment(mut input: Input<'_>) {
    let length = input.number(3) % (BUILT_PAYLOAD_BYTES_MAX + 1);
    let seed = input.byte();
    let payload: Vec<u8> = (0..length)
        .map(|index| (index as u8).wrapping_mul(31) ^ seed ^ (index >> 9) as u8)
        .collect();
    // Written in up to four pieces: the encoding does not depend on the cut.
    let mut cuts: Vec<usize> = (0..input.byte() % 4)
        .map(|_| (input.number(3) % (length + 1)) as usize)
        .collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([payload.len()]) {
        pieces.push(Bytes::copy_from_slice(&payload[from..cut]));
        from = cut;
    }
    let crc = Crc32c::of(&payload);
    let (header, encoded) = encode_fragment(&pieces, length, crc)
        .unwrap_or_else(|error| panic!("encoding {length} bytes in pieces: {error}"));
    let whole = encode_fragment(&[Bytes::copy_from_slice(&payload)], length, crc)
        .unwrap_or_else(|error| panic!("encoding {length} bytes: {error}"));
    assert_eq!(
        (header, &encoded),
        (whole.0, &whole.1),
        "depends on how it was cut"
    );
    assert!(matches!(
        encode_fragment(&pieces, length + 1, crc),
        Err(StoreError::LengthMismatch { .. })
    ));
    assert!(matches!(
        encode_fragment(&pieces, length, Crc32c(crc.0 ^ 1)),
        Err(StoreError::CrcMismatch { .. })
    ));
    let mut damaged = encoded.clone();
    match input.byte() % 3 {
        0 => {
            for _ in 0..=(input.byte() % 3) {
                let position = (input.number(3) % damaged.len() as u64) as usize;
                damaged[position] ^= 1 << (input.byte() % 8);
            }
        }
        1 => damaged.truncate(damaged.len() - (input.number(2) as usize % damaged.len()).max(1)),
        _ => damaged.extend(std::iter::repeat_n(input.byte(), 1 + input.byte() as usize)),
    }
    if damaged.len() != encoded.len() {
        assert!(
            decode_header(&damaged).is_err(),
            "a torn or extended value opened"
        );
    }
    stored_value(&damaged, Some(&payload));
}

/// What a request to a node says, checked before any body byte is read, and the JSON
/// bodies a node answers. The first byte picks the part:
/// - 0: `Range` on a fragment of a length from the input (and a real read of the range
///   when the fragment is small enough to build);
/// - 1: a PUT's headers: `Content-Length`, `x-shardlet-crc32c`, `x-shardlet-cache`;
/// - 2: a listing query;
/// - 3: a listing page, a listed fragment, an error body or a `/health` report, as the
///   client reads them: what parses writes back to the same JSON value.
pub fn node_request(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 4 {
        0 => {
            let width = input.byte() % 9;
            let length = input.number(usize::from(width));
            range_header(length, input.rest());
        }
        1 => put_headers(input),
        2 => list_query(input.rest()),
        _ => bodies(input),
    }
}

fn range_header(length: u64, text: &[u8]) {
    let mut headers = HeaderMap::new();
    let Ok(value) = HeaderValue::from_bytes(text) else {
        return;
    };
    headers.insert(header::RANGE, value);
    let range = match request::range(&headers) {
        Ok(range) => range.unwrap_or_else(|| panic!("a Range header read as none")),
        Err(error) => {
            assert_eq!(
                (error.status, error.code),
                (StatusCode::BAD_REQUEST, "invalid_range")
            );
            return;
        }
    };
    let text = std::str::from_utf8(text).unwrap_or_else(|_| panic!("a range that is not text"));
    assert!(text.len() <= 128 && text.trim().starts_with("bytes=") && !text.contains(','));
    // The parsed range writes back to a header that parses to the same range.
    let written = match range {
        ByteRange::FromTo { first, last } => {
            format!(
                "bytes={first}-{}",
                last.map_or(String::new(), |last| last.to_string())
            )
        }
        ByteRange::Suffix { length } => format!("bytes=-{length}"),
    };
    assert_eq!(ByteRange::parse(&written), Ok(range), "{written}");
    match (range, range.resolve(length)) {
        (ByteRange::FromTo { first, last }, Ok((start, end))) => {
            assert_eq!(start, first);
            assert_eq!(
                end,
                last.map_or(length, |last| last.saturating_add(1).min(length))
            );
        }
        (ByteRange::Suffix { length: suffix }, Ok((start, end))) => {
            assert!(suffix > 0);
            assert_eq!((start, end), (length - suffix.min(length), length));
        }
        (ByteRange::FromTo { first, .. }, Err(error)) => {
            assert!(first >= length && error.length == length);
            return;
        }
        (ByteRange::Suffix { length: suffix }, Err(error)) => {
            assert!((suffix == 0 || length == 0) && error.length == length);
            return;
        }
    }
    let (start, end) = range.resolve(length).unwrap_or((0, 0));
    assert!(start < end && end <= length, "{start}..{end} of {length}");
    if length <= BUILT_PAYLOAD_BYTES_MAX {
        let payload: Vec<u8> = (0..length).map(|index| (index % 251) as u8).collect();
        let (_, encoded) = encode_fragment(
            &[Bytes::copy_from_slice(&payload)],
            length,
            Crc32c::of(&payload),
        )
        .unwrap_or_else(|error| panic!("{error}"));
        let reader = FragmentReader::from_encoded(Bytes::from(encoded))
            .unwrap_or_else(|error| panic!("{error}"));
        let bytes = reader
            .read_range(start, end)
            .unwrap_or_else(|error| panic!("reading {start}..{end}: {error}"));
        assert_eq!(&bytes[..], &payload[start as usize..end as usize]);
    }
}

fn put_headers(mut input: Input<'_>) {
    let max_fragment_bytes = input.number(4);
    let mut headers = HeaderMap::new();
    let names = [
        header::CONTENT_LENGTH,
        HeaderName::from_static(CRC_HEADER),
        HeaderName::from_static(CACHE_HEADER),
        header::TRANSFER_ENCODING,
    ];
    for name in names {
        let present = input.byte();
        let value = input.take(usize::from(present % 24));
        if present >= 128 {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(name, value);
            }
        }
    }
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    match request::put_headers(&headers, max_fragment_bytes) {
        Ok(put) => {
            assert!(put.length <= max_fragment_bytes);
            assert!(!headers.contains_key(header::TRANSFER_ENCODING));
            assert_eq!(
                text("content-length").and_then(|t| t.parse().ok()),
                Some(put.length)
            );
            let crc = text(CRC_HEADER).unwrap_or_default();
            assert_eq!(
                crc,
                put.claimed_crc.to_string(),
                "the CRC text is canonical"
            );
            assert_eq!(put.keep_cached, headers.contains_key(CACHE_HEADER));
        }
        Err(error) => {
            let expected = match error.code {
                "length_required" => StatusCode::LENGTH_REQUIRED,
                "fragment_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_content_length" | "invalid_crc32c" | "invalid_cache_hint" => {
                    StatusCode::BAD_REQUEST
                }
                other => panic!("unexpected refusal {other}: {}", error.message),
            };
            assert_eq!(error.status, expected);
        }
    }
}

fn list_query(text: &[u8]) {
    let Ok(query) = std::str::from_utf8(text) else {
        return;
    };
    let (limit_default, limit_max) = (1000, 10_000);
    let value_of = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .filter(|(key, _)| *key == name)
            .map(|(_, value)| value)
            .next_back()
    };
    match request::list_query(query, limit_default, limit_max) {
        Ok((after, limit)) => {
            assert!((1..=limit_max).contains(&limit));
            assert_eq!(value_of("after"), after.map(|id| id.to_string()).as_deref());
            match value_of("limit") {
                Some(text) => assert_eq!(text.parse::<usize>().ok(), Some(limit)),
                None => assert_eq!(limit, limit_default),
            }
        }
        Err(error) => {
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert!(["invalid_fragment_id", "invalid_limit"].contains(&error.code));
        }
    }
}

fn bodies(mut input: Input<'_>) {
    let body = {
        let kind = input.byte();
        (kind, input.rest())
    };
    match body.0 % 4 {
        0 => json_round_trip::<FragmentPage>(body.1),
        1 => json_round_trip::<ListedFragment>(body.1),
        2 => json_round_trip::<ErrorBody>(body.1),
        _ => json_round_trip::<HealthReport>(body.1),
    }
    if let Ok(page) = serde_json::from_slice::<FragmentPage>(body.1) {
        // Ids in a page are ids: their text is canonical, so a page written back names
        // the same fragments (a listing page drives scrub and repair).
        let ids: Vec<FragmentId> = page.fragments.iter().map(|fragment| fragment.id).collect();
        for id in ids.iter().chain(page.next_after.iter()) {
            assert_eq!(id.to_string().parse::<FragmentId>().ok(), Some(*id));
        }
    }
}

/// `T` parsed from `bytes` writes back to JSON that parses to the same `T` and the same
/// JSON value.
fn json_round_trip<T>(bytes: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(value) = serde_json::from_slice::<T>(bytes) else {
        return;
    };
    let written = serde_json::to_vec(&value).unwrap_or_else(|error| panic!("{error}"));
    let reread: T = serde_json::from_slice(&written)
        .unwrap_or_else(|error| panic!("written JSON does not parse: {error}"));
    assert_eq!(reread, value);
    let rewritten = serde_json::to_vec(&reread).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(rewritten, written);
}
