//! ListObjects / ListObjectsV2 / ListMultipartUploads semantics, as a pure state
//! machine fed with keys in ascending order: prefix, delimiter (common prefixes),
//! max-keys, and where the next page starts.
//!
//! The driver scans the metadata store page by page and feeds each key to
//! [`ListingBuilder::push`]. When a key rolls up into a common prefix, the builder asks
//! the driver to jump past every key under that prefix (`Step::SkipPast`): the resume
//! point is the prefix followed by byte 0xFF, which sorts after every UTF-8 key that
//! starts with the prefix, so a directory with a million keys costs one scan, not a
//! million.

use base64::Engine as _;
use shardlet_model::schema::{keys, MultipartUploadRecord, ObjectRecord, Record};
use shardlet_model::store::SCAN_LIMIT_MAX;

use crate::object::catalog::{Catalog, CatalogError};

/// S3's default and maximum `max-keys`.
pub const MAX_KEYS_DEFAULT: usize = 1000;

/// Metadata scans one listing page may issue (each common prefix costs one).
const SCANS_PER_PAGE_MAX: usize = 2 * MAX_KEYS_DEFAULT + 16;

/// Sorts after every continuation of a UTF-8 string (0xFF never occurs in UTF-8).
const AFTER_EVERY_CONTINUATION: u8 = 0xFF;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<T> {
    Item(String, T),
    CommonPrefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Continue,
    /// Resume the scan strictly after these key bytes.
    SkipPast(Vec<u8>),
    /// The page is full (and one more key exists: the listing is truncated).
    Done,
}

#[derive(Debug)]
pub struct ListingBuilder<T> {
    prefix: String,
    delimiter: Option<String>,
    max_keys: usize,
    entries: Vec<Entry<T>>,
    truncated: bool,
    /// Where the next page starts (strictly after).
    resume_after: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Listing<T> {
    pub entries: Vec<Entry<T>>,
    pub is_truncated: bool,
    /// Scan position for the next page when truncated.
    pub next_start_after: Option<Vec<u8>>,
}

impl<T> ListingBuilder<T> {
    pub fn new(prefix: &str, delimiter: Option<&str>, max_keys: usize) -> Self {
        Self {
            prefix: prefix.to_string(),
            delimiter: delimiter.filter(|d| !d.is_empty()).map(str::to_string),
            max_keys: max_keys.min(MAX_KEYS_DEFAULT),
            entries: Vec::new(),
            truncated: false,
            resume_after: None,
        }
    }

    /// Where the scan starts for a client-given marker / start-after / token: a marker
    /// naming a common prefix (it ends with the delimiter) skips that whole prefix, so
    /// a V1 client that pages with `NextMarker` never sees a common prefix twice.
    pub fn start_after_for_marker(&self, marker: &str) -> Vec<u8> {
        let mut bytes = marker.as_bytes().to_vec();
        if let Some(delimiter) = &self.delimiter {
            if marker.len() > self.prefix.len()
                && marker.starts_with(&self.prefix)
                && marker.ends_with(delimiter.as_str())
            {
                bytes.push(AFTER_EVERY_CONTINUATION);
            }
        }
        bytes
    }

    /// Offers the next key (ascending, and starting with the prefix).
    pub fn push(&mut self, key: &str, item: T) -> Step {
        if self.max_keys == 0 {
            return Step::Done;
        }
        if self.entries.len() == self.max_keys {
            self.truncated = true;
            return Step::Done;
        }
        let rest = key.get(self.prefix.len()..).unwrap_or("");
        if let Some(delimiter) = &self.delimiter {
            if let Some(position) = rest.find(delimiter.as_str()) {
                let common = key[..self.prefix.len() + position + delimiter.len()].to_string();
                let mut skip = common.as_bytes().to_vec();
                skip.push(AFTER_EVERY_CONTINUATION);
                self.entries.push(Entry::CommonPrefix(common));
                self.resume_after = Some(skip.clone());
                return Step::SkipPast(skip);
            }
        }
        self.entries.push(Entry::Item(key.to_string(), item));
        self.resume_after = Some(key.as_bytes().to_vec());
        Step::Continue
    }

    pub fn finish(self) -> Listing<T> {
        Listing {
            next_start_after: if self.truncated {
                self.resume_after
            } else {
                None
            },
            is_truncated: self.truncated,
            entries: self.entries,
        }
    }
}

/// V2 continuation tokens are opaque to clients: base64url of the resume position.
pub fn encode_token(start_after: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(start_after)
}

pub fn decode_token(token: &str) -> Option<Vec<u8>> {
    if token.len() > 4096 {
        return None;
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
}

/// For V1's `NextMarker`: the resume position as a key (without the skip byte).
pub fn marker_text(start_after: &[u8]) -> String {
    let trimmed = start_after
        .strip_suffix(&[AFTER_EVERY_CONTINUATION])
        .unwrap_or(start_after);
    String::from_utf8_lossy(trimmed).into_owned()
}

/// Fills `builder` with a bucket's objects (keys strictly after `start_after`, an S3
/// key or token position).
pub async fn list_objects(
    catalog: &Catalog,
    bucket: &str,
    builder: &mut ListingBuilder<ObjectRecord>,
    start_after: Option<Vec<u8>>,
) -> Result<(), CatalogError> {
    let scope = keys::objects_of_bucket(bucket);
    let scope_len = scope.len();
    run(catalog, &scope, builder, start_after, move |key| {
        std::str::from_utf8(key.get(scope_len..)?)
            .ok()
            .map(str::to_string)
    })
    .await
}

/// Fills `builder` with a bucket's multipart uploads, by object key then upload id
/// (positions are `{key}\0{upload id}`).
pub async fn list_uploads(
    catalog: &Catalog,
    bucket: &str,
    builder: &mut ListingBuilder<MultipartUploadRecord>,
    start_after: Option<Vec<u8>>,
) -> Result<(), CatalogError> {
    let scope = keys::uploads_of_bucket(bucket);
    let scope_len = scope.len();
    run(catalog, &scope, builder, start_after, move |key| {
        let rest = key.get(scope_len..)?;
        let end = rest.iter().position(|byte| *byte == 0)?;
        std::str::from_utf8(&rest[..end]).ok().map(str::to_string)
    })
    .await
}

/// Runs a listing over the records under `scope` (a bucket's object or upload keys),
/// with `name_of` giving the S3 key of a record's metadata key.
async fn run<R: Record>(
    catalog: &Catalog,
    scope: &[u8],
    builder: &mut ListingBuilder<R>,
    start_after: Option<Vec<u8>>,
    name_of: impl Fn(&[u8]) -> Option<String>,
) -> Result<(), CatalogError> {
    let mut scan_prefix = scope.to_vec();
    scan_prefix.extend_from_slice(builder.prefix.as_bytes());
    let mut position: Option<Vec<u8>> = start_after.map(|after| {
        let mut key = scope.to_vec();
        key.extend_from_slice(&after);
        key
    });
    for _ in 0..SCANS_PER_PAGE_MAX {
        let (page, next) = catalog
            .scan::<R>(
                &scan_prefix,
                position.as_deref(),
                SCAN_LIMIT_MAX.min(MAX_KEYS_DEFAULT + 1),
            )
            .await?;
        let mut jumped = false;
        for (key, stored) in page {
            let name = name_of(&key);
            position = Some(key);
            // Keys that are not UTF-8 cannot be S3 keys; step over them.
            let Some(name) = name else { continue };
            match builder.push(&name, stored.record) {
                Step::Continue => {}
                Step::SkipPast(skip) => {
                    let mut resume = scope.to_vec();
                    resume.extend_from_slice(&skip);
                    position = Some(resume);
                    jumped = true;
                    break;
                }
                Step::Done => return Ok(()),
            }
        }
        if !jumped && next.is_none() {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Drives a builder over a sorted key list the way the S3 layer drives it over the
    /// metadata store, honouring skips and the start position.
    fn list(
        keys: &[&str],
        prefix: &str,
        delimiter: Option<&str>,
        max_keys: usize,
        start_after: Option<Vec<u8>>,
    ) -> Listing<()> {
        let mut builder = ListingBuilder::new(prefix, delimiter, max_keys);
        let mut position = start_after;
        let mut sorted: Vec<&str> = keys.to_vec();
        sorted.sort();
        'scan: loop {
            for key in sorted.iter().filter(|k| k.starts_with(prefix)) {
                if position.as_deref().is_some_and(|p| key.as_bytes() <= p) {
                    continue;
                }
                match builder.push(key, ()) {
                    Step::Continue => position = Some(key.as_bytes().to_vec()),
                    Step::SkipPast(skip) => {
                        position = Some(skip);
                        continue 'scan;
                    }
                    Step::Done => break 'scan,
                }
            }
            break;
        }
        builder.finish()
    }

    fn names(listing: &Listing<()>) -> Vec<String> {
        listing
            .entries
            .iter()
            .map(|entry| match entry {
                Entry::Item(key, ()) => key.clone(),
                Entry::CommonPrefix(prefix) => format!("[{prefix}]"),
            })
            .collect()
    }

    const KEYS: &[&str] = &["a/1", "a/2", "a/b/3", "b", "c/x", "c/y", "d"];

    #[test]
    fn without_delimiter_every_key_under_the_prefix_is_listed() {
        let listing = list(KEYS, "a/", None, 1000, None);
        assert_eq!(names(&listing), ["a/1", "a/2", "a/b/3"]);
        assert!(!listing.is_truncated);
    }

    #[test]
    fn delimiter_rolls_up_common_prefixes_once() {
        let listing = list(KEYS, "", Some("/"), 1000, None);
        assert_eq!(names(&listing), ["[a/]", "b", "[c/]", "d"]);
        let listing = list(KEYS, "a/", Some("/"), 1000, None);
        assert_eq!(names(&listing), ["a/1", "a/2", "[a/b/]"]);
    }

    #[test]
    fn pages_join_to_the_full_listing_without_repeats_or_gaps() {
        for max_keys in 1..=5 {
            let mut all = Vec::new();
            let mut start = None;
            for _ in 0..20 {
                let page = list(KEYS, "", Some("/"), max_keys, start.clone());
                all.extend(names(&page));
                assert!(page.entries.len() <= max_keys);
                if !page.is_truncated {
                    break;
                }
                let token = encode_token(page.next_start_after.as_ref().unwrap());
                start = Some(decode_token(&token).unwrap());
            }
            assert_eq!(all, ["[a/]", "b", "[c/]", "d"], "max_keys {max_keys}");
        }
    }

    #[test]
    fn exactly_full_page_is_not_truncated() {
        let listing = list(&["x", "y"], "", None, 2, None);
        assert!(!listing.is_truncated);
        assert_eq!(listing.next_start_after, None);
    }

    #[test]
    fn a_v1_marker_naming_a_common_prefix_skips_it() {
        let builder = ListingBuilder::<()>::new("", Some("/"), 1000);
        let start = builder.start_after_for_marker("a/");
        let listing = list(KEYS, "", Some("/"), 1000, Some(start));
        assert_eq!(names(&listing), ["b", "[c/]", "d"]);
        assert_eq!(marker_text(b"c/\xff"), "c/");
    }

    #[test]
    fn max_keys_zero_lists_nothing() {
        let listing = list(KEYS, "", None, 0, None);
        assert!(listing.entries.is_empty());
    }

    #[test]
    fn bad_tokens_are_rejected_not_panicked_on() {
        assert_eq!(decode_token("%%%"), None);
        assert_eq!(decode_token(&"A".repeat(5000)), None);
    }

    #[test]
    fn multi_character_delimiters_work() {
        let listing = list(&["x--1", "x--2", "y"], "", Some("--"), 1000, None);
        assert_eq!(names(&listing), ["[x--]", "y"]);
    }
}
