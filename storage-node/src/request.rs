//! What a request's headers and query say, checked before any body byte is read or any
//! file is opened: a PUT's length, CRC and cache hint, a GET's `Range`, a listing's
//! `after` and `limit`. Pure functions of the request's text, so the fuzz targets
//! (`crate::fuzzing`) call exactly what the handlers call.

use axum::http::{header, HeaderMap, StatusCode};
use shardlet_core::{Crc32c, FragmentId};

use crate::error::ApiError;
use crate::range::ByteRange;
use crate::wire::{CACHE_HEADER, CACHE_KEEP, CRC_HEADER};

/// What a PUT's headers promise about its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutHeaders {
    /// `Content-Length`: the body is exactly this long, at most the node's limit.
    pub length: u64,
    /// `x-shardlet-crc32c`: the body's CRC32C, checked once it has arrived.
    pub claimed_crc: Crc32c,
    /// `x-shardlet-cache: keep`.
    pub keep_cached: bool,
}

/// The headers of a PUT: `Content-Length` required (411, and chunked bodies refused) and
/// at most `max_fragment_bytes` (413); `x-shardlet-crc32c` required, 8 lowercase hex digits;
/// `x-shardlet-cache` absent or `keep` (400 otherwise).
pub fn put_headers(headers: &HeaderMap, max_fragment_bytes: u64) -> Result<PutHeaders, ApiError> {
    let length = content_length(headers, max_fragment_bytes)?;
    let claimed_crc: Crc32c = parsed_header(
        headers,
        CRC_HEADER,
        || ApiError::bad_request("invalid_crc32c", "missing x-shardlet-crc32c header"),
        || {
            ApiError::bad_request(
                "invalid_crc32c",
                "x-shardlet-crc32c must be 8 lowercase hex digits",
            )
        },
    )?;
    let keep_cached = match headers.get(CACHE_HEADER) {
        None => false,
        Some(value) if value == CACHE_KEEP => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_cache_hint",
                "x-shardlet-cache must be `keep` when present",
            ))
        }
    };
    Ok(PutHeaders {
        length,
        claimed_crc,
        keep_cached,
    })
}

/// Header `name` parsed as a `T`: `missing()` when it is absent, `invalid()` when it is
/// not text or not a `T`.
fn parsed_header<T: std::str::FromStr>(
    headers: &HeaderMap,
    name: impl header::AsHeaderName,
    missing: impl FnOnce() -> ApiError,
    invalid: impl FnOnce() -> ApiError,
) -> Result<T, ApiError> {
    headers
        .get(name)
        .ok_or_else(missing)?
        .to_str()
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(invalid)
}

/// `Content-Length`, required (411) and bounded (413).
fn content_length(headers: &HeaderMap, max_fragment_bytes: u64) -> Result<u64, ApiError> {
    let length_required = || {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "a Content-Length header is required (chunked uploads are not accepted)",
        )
    };
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(length_required());
    }
    let length: u64 = parsed_header(headers, header::CONTENT_LENGTH, length_required, || {
        ApiError::bad_request("invalid_content_length", "Content-Length is not a number")
    })?;
    if length > max_fragment_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "fragment_too_large",
            format!("fragment of {length} bytes exceeds the limit of {max_fragment_bytes} bytes"),
        ));
    }
    Ok(length)
}

/// A GET's `Range` header, if any (400 when it is not one byte range we understand).
pub fn range(headers: &HeaderMap) -> Result<Option<ByteRange>, ApiError> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("invalid_range", "Range header is not text"))?;
    ByteRange::parse(text)
        .map(Some)
        .map_err(|error| ApiError::bad_request("invalid_range", error.to_string()))
}

/// A fragment id from the path (400 when it is not one).
pub fn fragment_id(text: &str) -> Result<FragmentId, ApiError> {
    text.parse().map_err(|error: shardlet_core::IdError| {
        ApiError::bad_request("invalid_fragment_id", error.to_string())
    })
}

/// A listing's query, `after=<fragment id>&limit=<n>`: the last of each wins, other
/// parameters are ignored; a bad id or a limit outside `1..=limit_max` is a 400.
/// Without `limit`, `limit_default`.
pub fn list_query(
    query: &str,
    limit_default: usize,
    limit_max: usize,
) -> Result<(Option<FragmentId>, usize), ApiError> {
    let mut after = None;
    let mut limit = limit_default;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "after" => after = Some(fragment_id(value)?),
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|limit| (1..=limit_max).contains(limit))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_limit",
                            format!("limit must be a number from 1 to {limit_max}"),
                        )
                    })?;
            }
            _ => {}
        }
    }
    Ok((after, limit))
}
