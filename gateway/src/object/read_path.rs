//! The read path: an object's bytes (or a range of them) as a stream of shardlet
//! pieces, fetched with at most [`READ_AHEAD_SHARDLETS`] in flight.
//!
//! - A range reads only the shardlets it covers, and from a replicated shardlet only
//!   the bytes it needs (the node verifies them block by block).
//! - Degraded reads: a missing fragment, a node that is down or slow, or a checksum
//!   failure moves on to the next replica, or — erasure-coded — to any `k` good
//!   fragments, and is counted in `shardlet_gateway_degraded_reads_total{reason}`.
//! - An error no fallback can absorb ends the stream with an error, which makes the
//!   HTTP layer abort the response: a client never gets a silently short body.
//! - A layout that moved under the read (a transition re-coded the shardlet, or a
//!   repair rewrote its fragments, and the old fragments are gone): when no fallback
//!   can read the record the read started from, the record is read again and, if it
//!   changed, the read starts over from the new one (at most
//!   [`LAYOUT_RE_READS_MAX`] times, counted as `reason="layout_changed"`). Only an
//!   unchanged record that cannot be read is an error.
//! - Every shardlet read is reported to the heat tracker (never blocking).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use shardlet_core::{codec, Crc32c, FragmentIndex, Scheme};

use crate::metrics::Metrics;
use crate::object::catalog::Catalog;
use crate::object::fragments::{FragmentError, FragmentStore};
use crate::object::heat::HeatReporter;
use crate::object::object_range::{pieces, Piece};
use shardlet_model::schema::{keys, ShardletRecord};
use shardlet_model::Stored;

/// Shardlets fetched ahead of the one being sent. Memory per GET is at most this many
/// shardlets (2 MiB each by default).
pub const READ_AHEAD_SHARDLETS: usize = 4;
/// How often one shardlet's read starts over from a re-read record whose layout moved
/// under it; a layout that keeps moving faster than reads is an error, not a loop.
pub const LAYOUT_RE_READS_MAX: usize = 2;
/// One fragment read, connect to last byte; then the next replica is tried.
pub const FRAGMENT_READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("shardlet {0} has no metadata record")]
    MissingRecord(String),
    #[error("metadata: {0}")]
    Metadata(String),
    #[error("shardlet {shardlet} is unreadable: {reason}")]
    Unreadable { shardlet: String, reason: String },
}

#[derive(Clone)]
pub struct ReadPath {
    pub catalog: Catalog,
    pub fragments: Arc<dyn FragmentStore>,
    pub metrics: Arc<Metrics>,
    pub heat: HeatReporter,
}

impl ReadPath {
    /// The bytes of `range` of an object with these shardlets, in order.
    pub fn stream(
        &self,
        shardlets: &[shardlet_model::schema::ShardletReference],
        range: Range<u64>,
    ) -> impl Stream<Item = Result<Bytes, ReadError>> + Send + 'static {
        let this = self.clone();
        futures::stream::iter(pieces(shardlets, range))
            .map(move |piece| {
                let this = this.clone();
                async move { this.read_piece(piece).await }
            })
            .buffered(READ_AHEAD_SHARDLETS)
            .inspect(|chunk| {
                if let Err(error) = chunk {
                    tracing::error!(%error, "read failed mid-stream; aborting the response");
                }
            })
    }

    async fn read_piece(&self, piece: Piece) -> Result<Bytes, ReadError> {
        let id = piece.reference.id;
        let mut stored = self.shardlet_record(id).await?;
        self.heat.report(id);
        let mut re_reads = 0;
        let bytes = loop {
            match self.read_record(&stored.record, &piece).await {
                Ok(bytes) => break bytes,
                Err(error @ ReadError::Unreadable { .. }) if re_reads < LAYOUT_RE_READS_MAX => {
                    let fresh = self.shardlet_record(id).await?;
                    if fresh.version == stored.version {
                        return Err(error);
                    }
                    tracing::info!(shardlet = %id, %error, "the shardlet's layout changed during the read; reading the new one");
                    self.metrics
                        .degraded_reads_total
                        .with_label_values(&["layout_changed"])
                        .inc();
                    stored = fresh;
                    re_reads += 1;
                }
                Err(error) => return Err(error),
            }
        };
        self.metrics.read_bytes_total.inc_by(bytes.len() as u64);
        Ok(bytes)
    }

    async fn shardlet_record(
        &self,
        id: shardlet_core::ShardletId,
    ) -> Result<Stored<ShardletRecord>, ReadError> {
        self.catalog
            .read::<ShardletRecord>(&keys::shardlet(id))
            .await
            .map_err(|error| ReadError::Metadata(error.to_string()))?
            .ok_or_else(|| ReadError::MissingRecord(id.to_string()))
    }

    /// The piece's bytes as laid out in `record`.
    async fn read_record(
        &self,
        record: &ShardletRecord,
        piece: &Piece,
    ) -> Result<Bytes, ReadError> {
        match record.scheme {
            Scheme::Replicated { .. } => self.read_replicated(record, piece.within.clone()).await,
            Scheme::ErasureCoded { .. } => {
                let whole = self.read_erasure_coded(record).await?;
                Ok(whole.slice(piece.within.start as usize..piece.within.end as usize))
            }
        }
    }

    fn degraded(
        &self,
        record: &ShardletRecord,
        node: impl std::fmt::Display,
        error: &FragmentError,
    ) {
        self.metrics
            .degraded_reads_total
            .with_label_values(&[error.reason()])
            .inc();
        tracing::warn!(shardlet = %record.id, %node, %error, "degraded read: trying another fragment");
    }

    async fn fetch(
        &self,
        record: &ShardletRecord,
        position: usize,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, FragmentError> {
        let location = &record.fragments[position];
        let id = record.fragment_id(location);
        match tokio::time::timeout(
            FRAGMENT_READ_TIMEOUT,
            self.fragments.get(location.node, id, range),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(FragmentError::Timeout),
        }
    }

    /// Any one replica serves; ranged reads fetch only the needed bytes.
    async fn read_replicated(
        &self,
        record: &ShardletRecord,
        within: Range<u64>,
    ) -> Result<Bytes, ReadError> {
        let whole = within.start == 0 && within.end == record.size_bytes;
        let expected_len = within.end - within.start;
        // Start at a replica chosen by the shardlet id so reads spread over copies.
        let count = record.fragments.len();
        let first = crate::object::fragments::first_replica(&record.id, count);
        let mut last_error = String::from("no replicas recorded");
        for step in 0..count {
            let position = (first + step) % count;
            let node = record.fragments[position].node;
            let range = (!whole).then(|| within.clone());
            let result = self.fetch(record, position, range).await.and_then(|bytes| {
                if bytes.len() as u64 != expected_len {
                    return Err(FragmentError::Corrupt(format!(
                        "got {} bytes, expected {expected_len}",
                        bytes.len()
                    )));
                }
                if whole && Crc32c::of(&bytes) != record.checksum {
                    return Err(FragmentError::Corrupt("shardlet checksum mismatch".into()));
                }
                Ok(bytes)
            });
            match result {
                Ok(bytes) => return Ok(bytes),
                Err(error) => {
                    self.degraded(record, node, &error);
                    last_error = error.to_string();
                }
            }
        }
        Err(ReadError::Unreadable {
            shardlet: record.id.to_string(),
            reason: format!("every replica failed; last: {last_error}"),
        })
    }

    /// Data fragments first (no decoding work when they are all good); on any failure,
    /// the parity fragments too, then Reed-Solomon reconstruction from any `k`.
    async fn read_erasure_coded(&self, record: &ShardletRecord) -> Result<Bytes, ReadError> {
        let required = record.scheme.required_fragments();
        let width = record.fragments.len();
        let mut slots: Vec<Option<(Vec<u8>, Crc32c)>> = vec![None; width];
        let mut good = 0;
        let mut next = 0;
        while good < required && next < width {
            let wanted = (required - good).min(width - next);
            let batch: Vec<usize> = (next..next + wanted).collect();
            next += wanted;
            let reads = batch.iter().map(|&position| async move {
                (position, self.fetch(record, position, None).await)
            });
            for (position, result) in futures::future::join_all(reads).await {
                let location = &record.fragments[position];
                match result {
                    Ok(bytes) if Crc32c::of(&bytes) == location.checksum => {
                        slots[location.index.0 as usize % width] =
                            Some((bytes.to_vec(), location.checksum));
                        good += 1;
                    }
                    Ok(_) => self.degraded(
                        record,
                        location.node,
                        &FragmentError::Corrupt("fragment checksum".into()),
                    ),
                    Err(error) => self.degraded(record, location.node, &error),
                }
            }
        }
        let decoded = codec::decode_checked(record.scheme, slots, record.size_bytes as usize)
            .map_err(|error| ReadError::Unreadable {
                shardlet: record.id.to_string(),
                reason: error.to_string(),
            })?;
        if Crc32c::of(&decoded.bytes) != record.checksum {
            return Err(ReadError::Unreadable {
                shardlet: record.id.to_string(),
                reason: "reconstructed shardlet fails its checksum".into(),
            });
        }
        if !decoded.corrupt.is_empty() {
            let corrupt: Vec<FragmentIndex> = decoded.corrupt;
            tracing::warn!(shardlet = %record.id, ?corrupt, "corrupt fragments found while reading");
        }
        Ok(Bytes::from(decoded.bytes))
    }
}
