//! ETags as S3 computes them: the hex MD5 of the body for a single PUT, and for a
//! multipart object the hex MD5 of the concatenated binary part MD5s, then `-N`.
//! MD5 is slow (see docs/gateway.md): it is computed once, while the body streams.

use s3s::crypto::{Checksum, Md5};

/// An incremental MD5 over a streamed body.
pub struct EtagHasher {
    md5: Md5,
}

impl Default for EtagHasher {
    fn default() -> Self {
        Self { md5: Md5::new() }
    }
}

impl EtagHasher {
    pub fn update(&mut self, chunk: &[u8]) {
        self.md5.update(chunk);
    }

    /// The raw digest (also what Content-MD5 is compared with).
    pub fn finish(self) -> [u8; 16] {
        self.md5.finalize()
    }
}

/// The quoted ETag of a single-part object.
pub fn single_part(md5: [u8; 16]) -> String {
    format!("\"{}\"", hex::encode(md5))
}

/// The quoted ETag of a multipart object from its parts' ETags (quoted or not).
/// `None` if a part ETag is not 32 hex digits (only our own ETags are passed here).
pub fn multipart<'a>(part_etags: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut md5 = Md5::new();
    let mut count = 0usize;
    for etag in part_etags {
        let digest = hex::decode(etag.trim_matches('"')).ok()?;
        if digest.len() != 16 {
            return None;
        }
        md5.update(&digest);
        count += 1;
    }
    Some(format!("\"{}-{count}\"", hex::encode(md5.finalize())))
}

/// The bare value (no quotes) for comparisons with client-sent ETags.
pub fn bare(etag: &str) -> &str {
    etag.trim_matches('"')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn single_part_etag_is_the_md5_of_the_body_streamed_in_any_chunks() {
        let mut hasher = EtagHasher::default();
        for chunk in [&b"hello "[..], b"", b"world"] {
            hasher.update(chunk);
        }
        // md5("hello world")
        assert_eq!(
            single_part(hasher.finish()),
            "\"5eb63bbbe01eeed093cb22bb8f5acdc3\""
        );
        assert_eq!(
            single_part(EtagHasher::default().finish()),
            "\"d41d8cd98f00b204e9800998ecf8427e\""
        );
    }

    #[test]
    fn multipart_etag_is_md5_of_binary_part_md5s_with_count() {
        // Reference values: two parts "a" and "b" as S3 computes the final ETag.
        let part_a = "0cc175b9c0f1b6a831c399e269772661"; // md5("a")
        let part_b = "\"92eb5ffee6ae2fec3ad71c777531578f\""; // md5("b"), quoted
        let mut joined = hex::decode(part_a).unwrap();
        joined.extend(hex::decode(bare(part_b)).unwrap());
        let mut md5 = Md5::new();
        md5.update(&joined);
        let expected = format!("\"{}-2\"", hex::encode(md5.finalize()));
        assert_eq!(multipart([part_a, part_b]).unwrap(), expected);
    }

    #[test]
    fn a_malformed_part_etag_is_refused() {
        assert_eq!(multipart(["zz"]), None);
        assert_eq!(multipart(["abcd"]), None);
    }
}
