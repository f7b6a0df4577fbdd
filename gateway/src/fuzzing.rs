//! The properties the fuzz targets of the gateway's own S3 request handling check (see
//! `shardlet_core::fuzzing` for how checks, targets and the corpus replay fit
//! together). s3s parses the HTTP request; these targets start from header text, run
//! s3s's parser as the gateway receives it, then everything of ours that follows:
//! ranges over an object's shardlets, copy sources and copy ranges, checksum headers
//! and trailers, conditional headers, listing parameters and continuation tokens.

use std::collections::BTreeSet;
use std::ops::Range;

use http::{HeaderMap, HeaderName, HeaderValue};
use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, CopySource, ETagCondition, Timestamp, TimestampFormat};
use shardlet_core::fuzzing::{Input, Target};
use shardlet_core::{ObjectId, ShardletId};
use shardlet_model::schema::ShardletReference;

use crate::object::etag::{bare, EtagHasher};
use crate::object::listing::{decode_token, encode_token, Entry, ListingBuilder, Step};
use crate::object::object_range::{pieces, resolve};
use crate::s3::checksums::{ChecksumError, Expected};
use crate::s3::conditions::{evaluate, unix_seconds, Preconditions, Verdict};
use crate::s3::limits::{KEY_BYTES_MAX, PART_NUMBER_MAX};
use crate::s3::listing::max_keys;
use crate::s3::multipart::{copy_range, part_number};
use crate::s3::objects::{check_key, content_range, copy_source_location, declared_length};

/// The fuzz targets whose checks live here.
pub const TARGETS: &[Target] = &[
    ("s3_range", s3_range),
    ("s3_checksums", s3_checksums),
    ("s3_request", s3_request),
];

/// A `Range` header on an object of a size and shardlet layout from the input (sizes of
/// up to 8 shardlets, which sum to the object's size), and an
/// `x-amz-copy-source-range` on it. A resolved range lies inside the object, its
/// `Content-Range` names it, and the pieces a read fetches cover it exactly: in order,
/// contiguous, each inside its shardlet (shardlets of 0 bytes, which real layouts have
/// only at the end, may give empty pieces).
pub fn s3_range(data: &[u8]) {
    let mut input = Input::new(data);
    let shardlet_count = input.byte() % 9;
    let width = usize::from(input.byte() % 9);
    let shardlets: Vec<ShardletReference> = (0..shardlet_count)
        .map(|index| ShardletReference {
            id: ShardletId::new(ObjectId([0; 16]), u32::from(index)),
            // At most 2^60 each: eight of them still sum inside a u64.
            size_bytes: input.number(width) >> 4,
        })
        .collect();
    let size: u64 = shardlets.iter().map(|shardlet| shardlet.size_bytes).sum();
    let copy = input.byte() % 2 == 1;
    let Ok(text) = std::str::from_utf8(input.rest()) else {
        return;
    };
    if copy {
        match copy_range(Some(text), size) {
            Ok(range) => {
                assert!(
                    range.start < range.end && range.end <= size,
                    "{range:?} of {size}"
                );
                assert!(text.starts_with("bytes="));
            }
            Err(error) => assert!(
                ["InvalidArgument", "InvalidRange"].contains(&error.code().as_str()),
                "{error:?}"
            ),
        }
        assert_eq!(copy_range(None, size).ok(), Some(0..size));
        return;
    }
    let Ok(header) = s3s::dto::Range::parse(text) else {
        return;
    };
    let range = match resolve(Some(&header), size) {
        Ok(range) => range.unwrap_or_else(|| panic!("a header resolved to no range")),
        Err(_) => {
            // Refused exactly when no byte of the object is selected.
            assert!(header.check(size).map_or(true, |range| range.is_empty()));
            return;
        }
    };
    assert!(
        range.start < range.end && range.end <= size,
        "{range:?} of {size}"
    );
    let shown = content_range(&Some(range.clone()), size)
        .unwrap_or_else(|| panic!("no Content-Range for a range"));
    assert_eq!(
        shown,
        format!("bytes {}-{}/{size}", range.start, range.end - 1)
    );
    check_pieces(&shardlets, range);
}

fn check_pieces(shardlets: &[ShardletReference], range: Range<u64>) {
    let mut offset_of = Vec::with_capacity(shardlets.len());
    let mut offset = 0u64;
    for shardlet in shardlets {
        offset_of.push(offset);
        offset += shardlet.size_bytes;
    }
    let mut covered = range.start;
    let mut last_position = None;
    for piece in pieces(shardlets, range.clone()) {
        assert!(last_position < Some(piece.position), "positions ascending");
        last_position = Some(piece.position);
        let shardlet = &shardlets[piece.position];
        assert_eq!(piece.reference, *shardlet);
        // Only an empty shardlet gives an empty piece (read whole: zero bytes).
        assert!(
            piece.within.start < piece.within.end || shardlet.size_bytes == 0,
            "an empty piece of a non-empty shardlet"
        );
        assert!(
            piece.within.end <= shardlet.size_bytes,
            "a piece past its shardlet"
        );
        assert_eq!(
            offset_of[piece.position] + piece.within.start,
            covered,
            "a gap"
        );
        covered += piece.within.end - piece.within.start;
    }
    assert_eq!(
        covered, range.end,
        "pieces do not reach the end of the range"
    );
}

/// Checksum promises of a PUT or UploadPart and their verification. The input gives a
/// body, which checksums are sent as headers (correct, altered or malformed), which are
/// announced as trailers and whether they arrive, and a Content-MD5. Correct promises
/// always verify and store exactly the computed values; an altered value is always a
/// mismatch, a malformed one always invalid; a missing trailer is always reported.
pub fn s3_checksums(data: &[u8]) {
    const ALGORITHMS: [(&str, &str); 5] = [
        ("crc32", "x-amz-checksum-crc32"),
        ("crc32c", "x-amz-checksum-crc32c"),
        ("crc64nvme", "x-amz-checksum-crc64nvme"),
        ("sha1", "x-amz-checksum-sha1"),
        ("sha256", "x-amz-checksum-sha256"),
    ];
    let mut input = Input::new(data);
    let choices: Vec<u8> = (0..ALGORITHMS.len()).map(|_| input.byte()).collect();
    let md5_choice = input.byte();
    let announce = input.byte();
    let body_length = usize::from(input.byte());
    let body = input.take(body_length).to_vec();
    let garbage = String::from_utf8_lossy(input.rest()).into_owned();

    // What the body's checksums really are, computed independently of `Expected`.
    let mut all = ChecksumHasher {
        crc32: Some(Default::default()),
        crc32c: Some(Default::default()),
        crc64nvme: Some(Default::default()),
        sha1: Some(Default::default()),
        sha256: Some(Default::default()),
    };
    all.update(&body);
    let truth = all.finalize();
    let true_value = |algorithm: &str| -> String {
        match algorithm {
            "crc32" => truth.checksum_crc32.clone(),
            "crc32c" => truth.checksum_crc32c.clone(),
            "crc64nvme" => truth.checksum_crc64nvme.clone(),
            "sha1" => truth.checksum_sha1.clone(),
            _ => truth.checksum_sha256.clone(),
        }
        .unwrap_or_else(|| panic!("every algorithm was computed"))
    };
    let mut md5 = EtagHasher::default();
    md5.update(&body);
    let md5 = md5.finish();

    // Per algorithm: 0 none, 1 correct header, 2 altered header, 3 malformed header,
    // 4 announced trailer that arrives correct, 5 announced trailer that never arrives,
    // 6 announced trailer that arrives altered.
    let mut values = Checksum::default();
    let mut trailer_names = Vec::new();
    let mut trailers = HeaderMap::new();
    let (mut altered, mut malformed, mut missing) = (false, false, false);
    for ((algorithm, header), choice) in ALGORITHMS.iter().zip(&choices) {
        let choice = choice % 7;
        let value = match choice {
            1 | 4 => Some(true_value(algorithm)),
            2 | 6 => Some(altered_value(&true_value(algorithm))),
            3 => Some(garbage.clone()),
            _ => None,
        };
        altered |= choice == 2 || choice == 6;
        missing |= choice == 5;
        if choice >= 4 {
            trailer_names.push(*header);
            if let Some(value) = value.and_then(|value| HeaderValue::from_str(&value).ok()) {
                trailers.insert(HeaderName::from_static(header), value);
            }
            continue;
        }
        if choice == 3 {
            malformed |= !well_formed(algorithm, &garbage);
            altered |= well_formed(algorithm, &garbage) && garbage.trim() != true_value(algorithm);
        }
        let slot = match *algorithm {
            "crc32" => &mut values.checksum_crc32,
            "crc32c" => &mut values.checksum_crc32c,
            "crc64nvme" => &mut values.checksum_crc64nvme,
            "sha1" => &mut values.checksum_sha1,
            _ => &mut values.checksum_sha256,
        };
        *slot = value;
    }
    let content_md5 = match md5_choice % 4 {
        0 => None,
        1 => Some(base64_of(&md5)),
        2 => {
            let mut wrong = md5;
            wrong[0] ^= 1;
            Some(base64_of(&wrong))
        }
        _ => Some(garbage.clone()),
    };
    let md5_malformed = md5_choice % 4 == 3 && !md5_well_formed(&garbage);
    let md5_wrong = md5_choice % 4 == 2
        || (md5_choice % 4 == 3 && !md5_malformed && {
            let decoded = base64_decode(garbage.trim());
            decoded.as_deref() != Some(&md5[..])
        });
    let mut headers = HeaderMap::new();
    if !trailer_names.is_empty() {
        let list = trailer_names.join(",");
        if let Ok(value) = HeaderValue::from_str(&list) {
            headers.insert("x-amz-trailer", value);
        }
    }
    let announced = ALGORITHMS[usize::from(announce) % ALGORITHMS.len()].0;
    let algorithm = (announce >= 128).then_some(announced);
    let expected = match Expected::from_request(&headers, content_md5.as_deref(), values, algorithm)
    {
        Ok(expected) => expected,
        Err(error) => {
            assert!(
                malformed || md5_malformed,
                "refused well-formed promises: {error}"
            );
            assert!(matches!(error, ChecksumError::Invalid(_)), "{error}");
            return;
        }
    };
    assert!(!malformed && !md5_malformed, "accepted a malformed promise");
    let mut hasher = expected.hasher();
    hasher.update(&body);
    let computed = hasher.finalize();
    let result = expected.verify(md5, computed.clone(), Some(&trailers));
    match result {
        Ok(stored) => {
            assert!(
                !altered && !missing && !md5_wrong,
                "a broken promise verified"
            );
            assert_eq!(stored.crc32, computed.checksum_crc32);
            assert_eq!(stored.crc32c, computed.checksum_crc32c);
            assert_eq!(stored.crc64nvme, computed.checksum_crc64nvme);
            assert_eq!(stored.sha1, computed.checksum_sha1);
            assert_eq!(stored.sha256, computed.checksum_sha256);
            // What is stored is what the body really has.
            for (name, value) in [
                ("crc32", &stored.crc32),
                ("crc32c", &stored.crc32c),
                ("crc64nvme", &stored.crc64nvme),
                ("sha1", &stored.sha1),
                ("sha256", &stored.sha256),
            ] {
                if let Some(value) = value {
                    assert_eq!(value, &true_value(name), "{name}");
                }
            }
        }
        Err(error) => {
            assert!(
                altered || missing || md5_wrong,
                "a kept promise failed: {error}"
            );
        }
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// A value of the right shape for `algorithm`: standard base64 of its digest length.
fn well_formed(algorithm: &str, value: &str) -> bool {
    let length = match algorithm {
        "crc32" | "crc32c" => 4,
        "crc64nvme" => 8,
        "sha1" => 20,
        _ => 32,
    };
    base64_decode(value.trim()).is_some_and(|digest| digest.len() == length)
}

fn md5_well_formed(value: &str) -> bool {
    base64_decode(value.trim()).is_some_and(|digest| digest.len() == 16)
}

/// The same digest with its first byte changed, still well-formed.
fn altered_value(value: &str) -> String {
    let mut digest = base64_decode(value).unwrap_or_default();
    if let Some(first) = digest.first_mut() {
        *first ^= 0x55;
    }
    base64_of(&digest)
}

/// Conditional headers, copy sources and listing parameters. The first byte picks:
/// - 0: `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since` as s3s
///   parses them, against an object's ETag and modification time: the verdict follows
///   RFC 9110 §13.2.2's order (restated below, not called);
/// - 1: `x-amz-copy-source` as s3s parses it: a bucket copy source names the bucket and
///   key s3s read, inside S3's limits; anything else is NotImplemented;
/// - 2: a listing over keys from the input, paged with `max-keys` and V2 continuation
///   tokens: every key under the prefix is listed exactly once, itself or rolled into
///   its common prefix, in order, never more than `max-keys` per page;
/// - 3: a client's continuation token, `max-keys`, part number, Content-Length and key.
pub fn s3_request(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 4 {
        0 => conditions(input),
        1 => {
            let Ok(text) = std::str::from_utf8(input.rest()) else {
                return;
            };
            let Ok(source) = CopySource::parse(text) else {
                return;
            };
            match (&source, copy_source_location(&source)) {
                (
                    CopySource::Bucket {
                        bucket,
                        key,
                        version_id: None,
                    },
                    Ok(location),
                ) => {
                    assert_eq!(location, (&bucket[..], &key[..]));
                    assert!(!bucket.is_empty() && !bucket.contains('/'));
                    assert!(key.len() <= KEY_BYTES_MAX, "a {}-byte key", key.len());
                }
                (_, Ok(location)) => panic!("{source:?} located at {location:?}"),
                (_, Err(error)) => assert_eq!(error.code().as_str(), "NotImplemented"),
            }
        }
        2 => listing(input),
        _ => parameters(input),
    }
}

fn conditions(mut input: Input<'_>) {
    let etag = format!("\"{}\"", hex_of(input.take(4)));
    let modified = input.number(5) as i64;
    let mut fields = input.rest().split(|byte| *byte == b'\n');
    let mut etag_condition = || {
        fields
            .next()
            .and_then(|bytes| ETagCondition::parse_http_header(bytes).ok())
    };
    let if_match = etag_condition();
    let if_none_match = etag_condition();
    let mut date = || {
        fields
            .next()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .and_then(|text| Timestamp::parse(TimestampFormat::HttpDate, text).ok())
            .map(|timestamp| unix_seconds(&timestamp))
    };
    let if_modified_since = date();
    let if_unmodified_since = date();
    let verdict = evaluate(
        &Preconditions {
            if_match: if_match.as_ref(),
            if_none_match: if_none_match.as_ref(),
            if_modified_since_unix_seconds: if_modified_since,
            if_unmodified_since_unix_seconds: if_unmodified_since,
        },
        &etag,
        modified,
    );
    let matches = |condition: &ETagCondition| match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(given) => given.value() == bare(&etag),
    };
    let precondition_failed = match &if_match {
        Some(condition) => !matches(condition),
        None => if_unmodified_since.is_some_and(|since| modified > since),
    };
    let not_modified = match &if_none_match {
        Some(condition) => matches(condition),
        None => if_modified_since.is_some_and(|since| modified <= since),
    };
    let expected = if precondition_failed {
        Verdict::PreconditionFailed
    } else if not_modified {
        Verdict::NotModified
    } else {
        Verdict::Proceed
    };
    assert_eq!(verdict, expected);
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Characters keys, prefixes and delimiters are built from: few, so they collide.
const KEY_ALPHABET: [char; 6] = ['a', 'b', '/', '-', 'é', '\u{7f}'];

fn short_text(input: &mut Input<'_>, length_max: u8) -> String {
    let length = input.byte() % (length_max + 1);
    (0..length)
        .map(|_| KEY_ALPHABET[usize::from(input.byte()) % KEY_ALPHABET.len()])
        .collect()
}

fn listing(mut input: Input<'_>) {
    let prefix = short_text(&mut input, 2);
    let delimiter = short_text(&mut input, 2);
    let delimiter = (!delimiter.is_empty()).then_some(delimiter);
    let page_size = 1 + usize::from(input.byte() % 5);
    let key_count = input.byte() % 24;
    let keys: BTreeSet<String> = (0..key_count).map(|_| short_text(&mut input, 6)).collect();

    // What the whole listing must be: every key under the prefix, as itself or rolled
    // into the common prefix ending at the first delimiter after the prefix.
    let mut expected: Vec<String> = Vec::new();
    for key in keys.iter().filter(|key| key.starts_with(&prefix)) {
        let entry = match &delimiter {
            Some(delimiter) => match key[prefix.len()..].find(delimiter.as_str()) {
                Some(at) => format!("P{}", &key[..prefix.len() + at + delimiter.len()]),
                None => format!("K{key}"),
            },
            None => format!("K{key}"),
        };
        if expected.last() != Some(&entry) {
            expected.push(entry);
        }
    }

    let mut listed: Vec<String> = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..=keys.len() + 1 {
        let start_after = token
            .as_deref()
            .map(|token| decode_token(token).unwrap_or_else(|| panic!("our own token {token}")));
        let mut builder = ListingBuilder::new(&prefix, delimiter.as_deref(), page_size);
        scan(&keys, &prefix, start_after, &mut builder);
        let page = builder.finish();
        assert!(page.entries.len() <= page_size);
        assert_eq!(page.is_truncated, page.next_start_after.is_some());
        listed.extend(page.entries.iter().map(|entry| match entry {
            Entry::Item(key, ()) => format!("K{key}"),
            Entry::CommonPrefix(prefix) => format!("P{prefix}"),
        }));
        match page.next_start_after {
            Some(next) => token = Some(encode_token(&next)),
            None => {
                assert_eq!(
                    listed, expected,
                    "prefix {prefix:?}, delimiter {delimiter:?}"
                );
                return;
            }
        }
    }
    panic!("the listing did not end after {} pages", keys.len() + 2);
}

/// Feeds the builder the keys under `prefix` strictly after `start_after`, ascending,
/// honouring its skips: what the gateway's scan of the metadata store does.
fn scan(
    keys: &BTreeSet<String>,
    prefix: &str,
    start_after: Option<Vec<u8>>,
    builder: &mut ListingBuilder<()>,
) {
    let mut position = start_after;
    let mut sorted: Vec<&String> = keys.iter().filter(|key| key.starts_with(prefix)).collect();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for key in sorted {
        if position
            .as_deref()
            .is_some_and(|after| key.as_bytes() <= after)
        {
            continue;
        }
        match builder.push(key, ()) {
            Step::Continue => position = Some(key.as_bytes().to_vec()),
            Step::SkipPast(skip) => position = Some(skip),
            Step::Done => return,
        }
    }
}

fn parameters(mut input: Input<'_>) {
    let number = input.number(4) as u32 as i32;
    match max_keys(Some(number)) {
        Ok(keys) => assert!(number >= 0 && keys <= 1000 && keys <= number as usize),
        Err(_) => assert!(number < 0),
    }
    match part_number(number) {
        Ok(part) => assert!((1..=PART_NUMBER_MAX).contains(&number) && i32::from(part) == number),
        Err(_) => assert!(!(1..=PART_NUMBER_MAX).contains(&number)),
    }
    let length = input.number(8) as i64;
    match declared_length(Some(length)) {
        Ok(Some(declared)) => assert_eq!(declared as i64, length),
        Ok(None) => panic!("a length declared as none"),
        Err(_) => assert!(length < 0),
    }
    let Ok(text) = std::str::from_utf8(input.rest()) else {
        return;
    };
    assert_eq!(check_key(text).is_ok(), text.len() <= KEY_BYTES_MAX);
    if let Some(position) = decode_token(text) {
        assert!(text.len() <= 4096);
        assert_eq!(encode_token(&position), text, "tokens have one text");
    }
}
