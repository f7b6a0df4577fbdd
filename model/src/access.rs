//! [`Metadata`]: the one typed access layer over [`MetadataStore`], shared by the gateway
//! and the controller.
//!
//! - Reads return records with the version they were read at ([`Stored`]): the version
//!   is what a later compare-and-set batch conditions on.
//! - Scans are bounded and honest: [`Metadata::scan`] says whether it stopped at its
//!   limit and which keys did not decode, so a caller that must not decide from a
//!   partial view (a garbage collector, a scrub) can tell; a caller that tolerates it
//!   (a listing page) reads [`Scan::records`].
//! - [`Metadata::update`] is a compare-and-set read-modify-write with bounded retries.

use std::sync::Arc;

use crate::schema::{decode, encode, DecodeError, Record};
use crate::store::{Batch, BatchOutcome, MetadataError, MetadataStore, SCAN_LIMIT_MAX};

/// A record with the version it was read at (for compare-and-set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored<R> {
    pub record: R,
    pub version: u64,
}

/// What a bounded scan found.
#[derive(Debug)]
pub struct Scan<R> {
    /// Decoded records with their keys, in key order.
    pub records: Vec<(Vec<u8>, Stored<R>)>,
    /// Keys whose value did not decode (corrupt, or a newer format than this build
    /// reads), with why.
    pub undecodable: Vec<(Vec<u8>, DecodeError)>,
    /// True when the scan stopped at its key limit with more keys under the prefix.
    pub truncated: bool,
}

impl<R> Scan<R> {
    /// Whether every key under the prefix was seen and decoded: only then may a caller
    /// conclude that something is absent.
    pub fn is_complete(&self) -> bool {
        !self.truncated && self.undecodable.is_empty()
    }
}

/// Why an [`Metadata::update`] did not apply.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E> {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The change function refused (its own reason).
    #[error("refused: {0}")]
    Refused(E),
    #[error("{attempts} compare-and-set attempts lost to concurrent writers")]
    Contended { attempts: usize },
}

#[derive(Clone)]
pub struct Metadata {
    store: Arc<dyn MetadataStore>,
}

impl Metadata {
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// The record under `key` now, or `None`. A value that does not decode is an error
    /// naming the key, never a silent `None`.
    pub async fn read<R: Record>(&self, key: &[u8]) -> Result<Option<Stored<R>>, MetadataError> {
        let Some(found) = self.store.get(key).await? else {
            return Ok(None);
        };
        let record = decode::<R>(found.value.as_slice())
            .map_err(|error| MetadataError::Corrupt(format!("{}: {error}", key_text(key))))?;
        Ok(Some(Stored {
            record,
            version: found.version,
        }))
    }

    /// One page of records under `prefix` strictly after `start_after` (at most `limit`,
    /// capped at [`SCAN_LIMIT_MAX`]), with the `start_after` of the next page. A value
    /// that does not decode fails the page.
    #[allow(clippy::type_complexity)]
    pub async fn page<R: Record>(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<(Vec<u8>, Stored<R>)>, Option<Vec<u8>>), MetadataError> {
        let page = self
            .store
            .scan(prefix, start_after, limit.min(SCAN_LIMIT_MAX))
            .await?;
        let mut records = Vec::with_capacity(page.entries.len());
        for (key, value) in page.entries {
            let record = decode::<R>(value.value.as_slice()).map_err(|error| {
                MetadataError::Corrupt(format!("{}: {error}", key_text(key.as_slice())))
            })?;
            records.push((
                key.0,
                Stored {
                    record,
                    version: value.version,
                },
            ));
        }
        Ok((records, page.next_start_after.map(|key| key.0)))
    }

    /// One page under `prefix` strictly after `start_after` (at most `limit`, capped at
    /// [`SCAN_LIMIT_MAX`]), with keys that do not decode reported in
    /// [`Scan::undecodable`] instead of failing the page, and the `start_after` of the
    /// next page (`None` after the last). For a walk that must get past a record it
    /// cannot read (a newer format) rather than stop at it.
    pub async fn page_scan<R: Record>(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Scan<R>, Option<Vec<u8>>), MetadataError> {
        let page = self
            .store
            .scan(prefix, start_after, limit.min(SCAN_LIMIT_MAX))
            .await?;
        let mut scan = Scan {
            records: Vec::with_capacity(page.entries.len()),
            undecodable: Vec::new(),
            truncated: page.next_start_after.is_some(),
        };
        for (key, value) in page.entries {
            match decode::<R>(value.value.as_slice()) {
                Ok(record) => scan.records.push((
                    key.0,
                    Stored {
                        record,
                        version: value.version,
                    },
                )),
                Err(error) => scan.undecodable.push((key.0, error)),
            }
        }
        Ok((scan, page.next_start_after.map(|key| key.0)))
    }

    /// Every record under `prefix`, page by page, at most `keys_max` keys. Keys that do
    /// not decode are reported in [`Scan::undecodable`], not dropped silently.
    pub async fn scan<R: Record>(
        &self,
        prefix: &[u8],
        keys_max: usize,
    ) -> Result<Scan<R>, MetadataError> {
        let mut scan = Scan {
            records: Vec::new(),
            undecodable: Vec::new(),
            truncated: false,
        };
        let mut seen = 0usize;
        let mut start_after: Option<Vec<u8>> = None;
        loop {
            let limit = SCAN_LIMIT_MAX.min(keys_max.saturating_sub(seen)).max(1);
            let page = self
                .store
                .scan(prefix, start_after.as_deref(), limit)
                .await?;
            seen += page.entries.len();
            for (key, value) in page.entries {
                match decode::<R>(value.value.as_slice()) {
                    Ok(record) => scan.records.push((
                        key.0,
                        Stored {
                            record,
                            version: value.version,
                        },
                    )),
                    Err(error) => scan.undecodable.push((key.0, error)),
                }
            }
            match page.next_start_after {
                Some(next) if seen < keys_max => start_after = Some(next.0),
                Some(_) => {
                    scan.truncated = true;
                    return Ok(scan);
                }
                None => return Ok(scan),
            }
        }
    }

    /// Keys only under `prefix` (indexes with empty values), at most `keys_max`; the
    /// flag is true when the scan stopped at the limit with more keys left.
    pub async fn scan_keys(
        &self,
        prefix: &[u8],
        keys_max: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), MetadataError> {
        let mut keys = Vec::new();
        let mut start_after: Option<Vec<u8>> = None;
        loop {
            let limit = SCAN_LIMIT_MAX
                .min(keys_max.saturating_sub(keys.len()))
                .max(1);
            let page = self
                .store
                .scan(prefix, start_after.as_deref(), limit)
                .await?;
            keys.extend(page.entries.into_iter().map(|(key, _)| key.0));
            match page.next_start_after {
                Some(next) if keys.len() < keys_max => start_after = Some(next.0),
                Some(_) => return Ok((keys, true)),
                None => return Ok((keys, false)),
            }
        }
    }

    pub async fn apply(&self, batch: Batch) -> Result<BatchOutcome, MetadataError> {
        self.store.batch(batch).await
    }

    /// Read-modify-write of one record by compare-and-set: `change` gets the current
    /// record (or `None`) and returns the new one, or refuses with its own error. Lost
    /// races are retried up to `attempts_max` times, each on a fresh read; the record
    /// is never written from a stale read.
    pub async fn update<R, E, F>(
        &self,
        key: &[u8],
        attempts_max: usize,
        mut change: F,
    ) -> Result<Stored<R>, UpdateError<E>>
    where
        R: Record,
        F: FnMut(Option<&R>) -> Result<R, E>,
    {
        for _ in 0..attempts_max {
            let current = self.read::<R>(key).await?;
            let next = change(current.as_ref().map(|stored| &stored.record))
                .map_err(UpdateError::Refused)?;
            let mut batch = Batch::default();
            batch
                .require_version(key, current.as_ref().map_or(0, |stored| stored.version))
                .put(key, encode(&next));
            if let BatchOutcome::Applied { version } = self.apply(batch).await? {
                return Ok(Stored {
                    record: next,
                    version,
                });
            }
        }
        Err(UpdateError::Contended {
            attempts: attempts_max,
        })
    }
}

/// A key for messages: lossy, bounded, with NUL made visible.
pub fn key_text(key: &[u8]) -> String {
    String::from_utf8_lossy(&key[..key.len().min(200)]).replace('\0', "\\0")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::memory::InMemoryMetadata;
    use crate::schema::{keys, LeaseFence};

    fn metadata() -> Metadata {
        Metadata::new(Arc::new(InMemoryMetadata::default()))
    }

    fn fence(term: u64) -> LeaseFence {
        LeaseFence {
            holder: format!("controller-{term}"),
            term,
        }
    }

    async fn put_fences(metadata: &Metadata, count: u64) {
        for term in 0..count {
            let mut batch = Batch::default();
            batch.put(format!("f/{term:04}").into_bytes(), encode(&fence(term)));
            metadata.apply(batch).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_read_returns_the_version_a_compare_and_set_needs() {
        let metadata = metadata();
        let key = keys::CONTROLLER_LEASE_FENCE.as_bytes();
        assert!(metadata.read::<LeaseFence>(key).await.unwrap().is_none());
        let written = metadata
            .update::<LeaseFence, String, _>(key, 3, |_| Ok(fence(1)))
            .await
            .unwrap();
        let read = metadata.read::<LeaseFence>(key).await.unwrap().unwrap();
        assert_eq!(read, written);
        let mut stale = Batch::default();
        stale
            .require_version(key, read.version - 1)
            .put(key, encode(&fence(2)));
        assert!(matches!(
            metadata.apply(stale).await.unwrap(),
            BatchOutcome::ConditionFailed { .. }
        ));
    }

    #[tokio::test]
    async fn a_scan_that_stops_at_its_limit_says_it_is_incomplete() {
        let metadata = metadata();
        put_fences(&metadata, 5).await;
        let whole = metadata.scan::<LeaseFence>(b"f/", 5).await.unwrap();
        assert_eq!(whole.records.len(), 5);
        assert!(whole.is_complete());
        let part = metadata.scan::<LeaseFence>(b"f/", 3).await.unwrap();
        assert_eq!(part.records.len(), 3);
        assert!(part.truncated);
        assert!(!part.is_complete());
        let (keys, truncated) = metadata.scan_keys(b"f/", 4).await.unwrap();
        assert_eq!((keys.len(), truncated), (4, true));
    }

    #[tokio::test]
    async fn a_scan_reports_records_it_cannot_decode_instead_of_dropping_them() {
        let metadata = metadata();
        put_fences(&metadata, 2).await;
        let mut batch = Batch::default();
        // Format version 9: written by a newer build than this one.
        batch.put(b"f/0001x".to_vec(), vec![9, b'{', b'}']);
        metadata.apply(batch).await.unwrap();
        let scan = metadata.scan::<LeaseFence>(b"f/", 100).await.unwrap();
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.undecodable.len(), 1);
        assert_eq!(scan.undecodable[0].0, b"f/0001x");
        assert!(!scan.is_complete());
        assert!(matches!(
            metadata.page::<LeaseFence>(b"f/", None, 10).await,
            Err(MetadataError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn an_update_retries_a_lost_race_on_a_fresh_read_and_can_refuse() {
        let metadata = metadata();
        let key = b"f/x".as_slice();
        metadata
            .update::<LeaseFence, String, _>(key, 1, |_| Ok(fence(1)))
            .await
            .unwrap();
        // A concurrent writer changes the record between the first read and its
        // compare-and-set: the first attempt must lose and the second see term 5.
        let mut seen = Vec::new();
        let racer = metadata.clone();
        let updated = metadata
            .update::<LeaseFence, String, _>(key, 3, |current| {
                let term = current.map_or(0, |fence| fence.term);
                seen.push(term);
                if seen.len() == 1 {
                    let mut batch = Batch::default();
                    batch.put(key, encode(&fence(5)));
                    let racer = racer.clone();
                    std::thread::scope(|scope| {
                        scope.spawn(|| {
                            tokio::runtime::Builder::new_current_thread()
                                .build()
                                .unwrap()
                                .block_on(racer.apply(batch))
                                .unwrap()
                        });
                    });
                }
                Ok(fence(term + 1))
            })
            .await
            .unwrap();
        assert_eq!(seen, [1, 5]);
        assert_eq!(updated.record.term, 6);
        let refused = metadata
            .update::<LeaseFence, String, _>(key, 3, |_| Err("no".to_string()))
            .await;
        assert!(matches!(refused, Err(UpdateError::Refused(reason)) if reason == "no"));
    }
}
