//! Body integrity checks: Content-MD5 and the `x-amz-checksum-*` family (CRC32, CRC32C,
//! CRC64NVME, SHA-1, SHA-256), sent as headers or — what current boto3 and the aws CLI
//! do by default — as aws-chunked trailers announced by `x-amz-trailer`.
//!
//! Only the algorithms the client announced are computed, in the same pass that feeds
//! the write path. The verified values are stored and returned on GET/HEAD when the
//! client asks with `x-amz-checksum-mode: ENABLED`.

use base64::Engine as _;
use http::HeaderMap;
use s3s::checksum::ChecksumHasher;
use s3s::dto::Checksum;

use shardlet_model::schema::StoredChecksums;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    /// InvalidDigest (400): the value is not a digest of the right shape.
    #[error("the {0} you specified is not valid")]
    Invalid(&'static str),
    /// BadDigest (400): the body does not match.
    #[error("the {0} you specified did not match the calculated checksum")]
    Mismatch(&'static str),
    /// InvalidRequest: an announced trailer never arrived.
    #[error("the announced trailing checksum {0} was not sent")]
    MissingTrailer(&'static str),
}

const NAMES: [(&str, &str); 5] = [
    ("crc32", "x-amz-checksum-crc32"),
    ("crc32c", "x-amz-checksum-crc32c"),
    ("crc64nvme", "x-amz-checksum-crc64nvme"),
    ("sha1", "x-amz-checksum-sha1"),
    ("sha256", "x-amz-checksum-sha256"),
];

/// What the request promises about its body, known before the body is read.
#[derive(Debug, Default, Clone)]
pub struct Expected {
    pub content_md5: Option<[u8; 16]>,
    /// Values sent as headers.
    pub header_values: Checksum,
    /// Algorithms whose value arrives as a trailer (lower-case names from `NAMES`).
    pub trailer_algorithms: Vec<&'static str>,
    /// Algorithm announced without a value (`x-amz-sdk-checksum-algorithm`): computed
    /// and stored, nothing to compare with unless a trailer brings it.
    pub announced_algorithm: Option<&'static str>,
}

fn canonical(name: &str) -> Option<&'static str> {
    let lower = name.trim().to_ascii_lowercase();
    NAMES
        .iter()
        .find(|(short, header)| lower == *short || lower == *header)
        .map(|(short, _)| *short)
}

fn value_of<'a>(checksum: &'a Checksum, algorithm: &str) -> Option<&'a String> {
    match algorithm {
        "crc32" => checksum.checksum_crc32.as_ref(),
        "crc32c" => checksum.checksum_crc32c.as_ref(),
        "crc64nvme" => checksum.checksum_crc64nvme.as_ref(),
        "sha1" => checksum.checksum_sha1.as_ref(),
        "sha256" => checksum.checksum_sha256.as_ref(),
        _ => None,
    }
}

fn digest_length(algorithm: &str) -> usize {
    match algorithm {
        "crc32" | "crc32c" => 4,
        "crc64nvme" => 8,
        "sha1" => 20,
        _ => 32,
    }
}

fn check_shape(algorithm: &'static str, value: &str) -> Result<(), ChecksumError> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| ChecksumError::Invalid(algorithm))?;
    if decoded.len() != digest_length(algorithm) {
        return Err(ChecksumError::Invalid(algorithm));
    }
    Ok(())
}

/// The [`Expected`] checksums of a PutObject or UploadPart request (`$input`, moved
/// from): both inputs have these fields, of the same types, so one macro reads either.
macro_rules! expected_of {
    ($headers:expr, $input:expr) => {
        $crate::s3::checksums::Expected::from_request(
            $headers,
            $input.content_md5.as_deref(),
            s3s::dto::Checksum {
                checksum_crc32: $input.checksum_crc32,
                checksum_crc32c: $input.checksum_crc32c,
                checksum_crc64nvme: $input.checksum_crc64nvme,
                checksum_sha1: $input.checksum_sha1,
                checksum_sha256: $input.checksum_sha256,
                ..Default::default()
            },
            $input
                .checksum_algorithm
                .as_ref()
                .map(s3s::dto::ChecksumAlgorithm::as_str),
        )
    };
}
pub(crate) use expected_of;

impl Expected {
    /// Reads the promises from the request (`content_md5` and the header values come
    /// from the parsed S3 input; the trailer announcement from the raw headers).
    pub fn from_request(
        headers: &HeaderMap,
        content_md5: Option<&str>,
        header_values: Checksum,
        algorithm: Option<&str>,
    ) -> Result<Self, ChecksumError> {
        let content_md5 = match content_md5 {
            None => None,
            Some(text) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|_| ChecksumError::Invalid("Content-MD5"))?;
                Some(
                    <[u8; 16]>::try_from(bytes.as_slice())
                        .map_err(|_| ChecksumError::Invalid("Content-MD5"))?,
                )
            }
        };
        for (short, _) in NAMES {
            if let Some(value) = value_of(&header_values, short) {
                check_shape(short, value)?;
            }
        }
        let mut trailer_algorithms = Vec::new();
        for value in headers.get_all("x-amz-trailer") {
            let text = value
                .to_str()
                .map_err(|_| ChecksumError::Invalid("x-amz-trailer"))?;
            for name in text.split(',') {
                match canonical(name) {
                    Some(algorithm) => trailer_algorithms.push(algorithm),
                    // Trailers other than checksums are not ours to judge.
                    None => continue,
                }
            }
        }
        let announced_algorithm = match algorithm {
            None => None,
            Some(name) => {
                Some(canonical(name).ok_or(ChecksumError::Invalid("checksum algorithm"))?)
            }
        };
        Ok(Self {
            content_md5,
            header_values,
            trailer_algorithms,
            announced_algorithm,
        })
    }

    /// A hasher computing every algorithm that has (or will have) a value or was asked for.
    pub fn hasher(&self) -> ChecksumHasher {
        let mut hasher = ChecksumHasher::default();
        let wanted = |name: &str| {
            value_of(&self.header_values, name).is_some()
                || self.trailer_algorithms.contains(&name)
                || self.announced_algorithm == Some(name)
        };
        if wanted("crc32") {
            hasher.crc32 = Some(Default::default());
        }
        if wanted("crc32c") {
            hasher.crc32c = Some(Default::default());
        }
        if wanted("crc64nvme") {
            hasher.crc64nvme = Some(Default::default());
        }
        if wanted("sha1") {
            hasher.sha1 = Some(Default::default());
        }
        if wanted("sha256") {
            hasher.sha256 = Some(Default::default());
        }
        hasher
    }

    /// Compares what was computed with what was promised (headers, then trailers) and
    /// returns what to store.
    pub fn verify(
        &self,
        md5: [u8; 16],
        computed: Checksum,
        trailers: Option<&HeaderMap>,
    ) -> Result<StoredChecksums, ChecksumError> {
        if let Some(expected) = self.content_md5 {
            if expected != md5 {
                return Err(ChecksumError::Mismatch("Content-MD5"));
            }
        }
        for (short, header) in NAMES {
            let from_trailer = trailers
                .and_then(|map| map.get(header))
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            if self.trailer_algorithms.contains(&short) && from_trailer.is_none() {
                return Err(ChecksumError::MissingTrailer(short));
            }
            let expected = value_of(&self.header_values, short)
                .cloned()
                .or(from_trailer);
            if let Some(expected) = expected {
                check_shape(short, &expected)?;
                if value_of(&computed, short).map(|v| v.trim()) != Some(expected.trim()) {
                    return Err(ChecksumError::Mismatch(short));
                }
            }
        }
        Ok(StoredChecksums {
            crc32: computed.checksum_crc32,
            crc32c: computed.checksum_crc32c,
            crc64nvme: computed.checksum_crc64nvme,
            sha1: computed.checksum_sha1,
            sha256: computed.checksum_sha256,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const BODY: &[u8] = b"hello world";
    // Reference values computed with Python's zlib / crcmod / hashlib for "hello world".
    const CRC32: &str = "DUoRhQ==";
    const SHA256: &str = "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=";
    const MD5_BASE64: &str = "XrY7u+Ae7tCTyyK7j1rNww==";

    fn computed(expected: &Expected) -> ([u8; 16], Checksum) {
        let mut hasher = expected.hasher();
        hasher.update(BODY);
        let mut md5 = crate::object::etag::EtagHasher::default();
        md5.update(BODY);
        (md5.finish(), hasher.finalize())
    }

    #[test]
    fn header_checksums_and_content_md5_are_verified() {
        let values = Checksum {
            checksum_crc32: Some(CRC32.into()),
            checksum_sha256: Some(SHA256.into()),
            ..Default::default()
        };
        let expected =
            Expected::from_request(&HeaderMap::new(), Some(MD5_BASE64), values, None).unwrap();
        let (md5, sums) = computed(&expected);
        let stored = expected.verify(md5, sums, None).unwrap();
        assert_eq!(stored.crc32.as_deref(), Some(CRC32));
        assert_eq!(stored.sha256.as_deref(), Some(SHA256));
        assert_eq!(stored.crc32c, None);
    }

    #[test]
    fn a_wrong_header_checksum_is_a_bad_digest() {
        let values = Checksum {
            checksum_crc32: Some("AAAAAA==".into()),
            ..Default::default()
        };
        let expected = Expected::from_request(&HeaderMap::new(), None, values, None).unwrap();
        let (md5, sums) = computed(&expected);
        assert_eq!(
            expected.verify(md5, sums, None),
            Err(ChecksumError::Mismatch("crc32"))
        );
    }

    #[test]
    fn a_wrong_content_md5_is_a_bad_digest_and_a_malformed_one_invalid() {
        let expected = Expected::from_request(
            &HeaderMap::new(),
            Some("AAAAAAAAAAAAAAAAAAAAAA=="),
            Checksum::default(),
            None,
        )
        .unwrap();
        let (md5, sums) = computed(&expected);
        assert_eq!(
            expected.verify(md5, sums, None),
            Err(ChecksumError::Mismatch("Content-MD5"))
        );
        for bad in ["nope!", "AAAA"] {
            assert_eq!(
                Expected::from_request(&HeaderMap::new(), Some(bad), Checksum::default(), None)
                    .unwrap_err(),
                ChecksumError::Invalid("Content-MD5")
            );
        }
    }

    #[test]
    fn trailing_checksums_are_verified_and_must_arrive() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-trailer", "x-amz-checksum-crc32".parse().unwrap());
        let expected =
            Expected::from_request(&headers, None, Checksum::default(), Some("CRC32")).unwrap();
        let (md5, sums) = computed(&expected);
        let mut trailers = HeaderMap::new();
        trailers.insert("x-amz-checksum-crc32", CRC32.parse().unwrap());
        let stored = expected.verify(md5, sums.clone(), Some(&trailers)).unwrap();
        assert_eq!(stored.crc32.as_deref(), Some(CRC32));

        assert_eq!(
            expected.verify(md5, sums.clone(), None),
            Err(ChecksumError::MissingTrailer("crc32"))
        );
        let mut wrong = HeaderMap::new();
        wrong.insert("x-amz-checksum-crc32", "AAAAAA==".parse().unwrap());
        assert_eq!(
            expected.verify(md5, sums, Some(&wrong)),
            Err(ChecksumError::Mismatch("crc32"))
        );
    }

    #[test]
    fn malformed_checksum_values_and_algorithms_are_invalid() {
        let values = Checksum {
            checksum_sha256: Some("c2hvcnQ=".into()),
            ..Default::default()
        };
        assert_eq!(
            Expected::from_request(&HeaderMap::new(), None, values, None).unwrap_err(),
            ChecksumError::Invalid("sha256")
        );
        assert_eq!(
            Expected::from_request(&HeaderMap::new(), None, Checksum::default(), Some("MD4"))
                .unwrap_err(),
            ChecksumError::Invalid("checksum algorithm")
        );
    }
}
