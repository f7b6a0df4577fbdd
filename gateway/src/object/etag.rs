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

/// Bodies at least this long (or of unknown length) have their MD5 computed on a blocking
/// thread; shorter ones inline, where a thread hop would cost more than the hash.
pub const THREADED_MD5_BYTES_MIN: u64 = 1024 * 1024;
/// Body chunks queued for the MD5 thread: bounded memory, and back-pressure on the
/// upload if MD5 falls behind.
const MD5_QUEUE_CHUNKS_MAX: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("the MD5 thread stopped: {0}")]
pub struct EtagThreadStopped(String);

/// The ETag's MD5 of a streamed body. MD5 runs well under 1 GB/s and was half of the
/// gateway's CPU on large PUTs (perf): on a blocking thread it overlaps with receiving
/// the body and writing fragments instead of stalling the async workers that do that.
pub enum EtagPipeline {
    Inline(EtagHasher),
    Threaded {
        sender: tokio::sync::mpsc::Sender<bytes::Bytes>,
        worker: tokio::task::JoinHandle<[u8; 16]>,
    },
}

impl EtagPipeline {
    /// Must be called on a tokio runtime (the thread comes from its blocking pool).
    pub fn for_length(declared_length: Option<u64>) -> Self {
        if declared_length.is_some_and(|length| length < THREADED_MD5_BYTES_MIN) {
            return Self::Inline(EtagHasher::default());
        }
        let (sender, mut receiver) =
            tokio::sync::mpsc::channel::<bytes::Bytes>(MD5_QUEUE_CHUNKS_MAX);
        // Ends when the sender is dropped: after `finish`, or when the upload fails.
        let worker = tokio::task::spawn_blocking(move || {
            let mut hasher = EtagHasher::default();
            while let Some(chunk) = receiver.blocking_recv() {
                hasher.update(&chunk);
            }
            hasher.finish()
        });
        Self::Threaded { sender, worker }
    }

    /// Hashes `chunk` (threaded: queues it, a reference-count increment, not a copy).
    pub async fn update(&mut self, chunk: &bytes::Bytes) -> Result<(), EtagThreadStopped> {
        match self {
            Self::Inline(hasher) => {
                hasher.update(chunk);
                Ok(())
            }
            Self::Threaded { sender, .. } => sender
                .send(chunk.clone())
                .await
                .map_err(|_| EtagThreadStopped("it no longer takes chunks".into())),
        }
    }

    /// The digest of every chunk given to `update`, in order.
    pub async fn finish(self) -> Result<[u8; 16], EtagThreadStopped> {
        match self {
            Self::Inline(hasher) => Ok(hasher.finish()),
            Self::Threaded { sender, worker } => {
                drop(sender);
                worker
                    .await
                    .map_err(|error| EtagThreadStopped(error.to_string()))
            }
        }
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

    #[tokio::test]
    async fn threaded_and_inline_md5_agree_with_one_shot_md5() {
        let body: Vec<u8> = (0..3 * THREADED_MD5_BYTES_MIN as usize + 5)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut one_shot = EtagHasher::default();
        one_shot.update(&body);
        let expected = one_shot.finish();
        for declared in [None, Some(body.len() as u64), Some(10)] {
            let mut pipeline = EtagPipeline::for_length(declared);
            assert_eq!(
                matches!(pipeline, EtagPipeline::Threaded { .. }),
                declared != Some(10)
            );
            for chunk in body.chunks(70_001) {
                pipeline
                    .update(&bytes::Bytes::copy_from_slice(chunk))
                    .await
                    .unwrap();
            }
            assert_eq!(pipeline.finish().await.unwrap(), expected, "{declared:?}");
        }
    }

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
