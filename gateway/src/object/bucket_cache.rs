//! A short-lived, bounded cache of live bucket records, for the reads whose result a
//! later metadata batch is conditioned on (PutObject's first commit attempt).
//!
//! Only live buckets are cached: absence and buckets marked `deleting` are always read
//! fresh. Stale entries are safe where this cache is used, because the commit batch
//! requires the bucket's version to be the one the cache served: if the bucket changed
//! or went away since, the condition fails and the write path re-reads it through the
//! fresh path (which refreshes or drops the entry here).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shardlet_model::schema::BucketRecord;

use shardlet_model::Stored;

/// How long a bucket read from metadata may be served again without a read.
///
/// Safe at any value for the callers that use the cache, since their commit is
/// conditioned on the cached version (a stale entry costs one failed batch and a fresh
/// re-read, never a wrong answer). It is short so that a change made through another
/// gateway (a new default redundancy, a delete) reaches new uploads here within a
/// second instead of first failing their commit once.
pub const BUCKET_CACHE_TTL: Duration = Duration::from_secs(1);
/// Cached buckets. When full, expired entries are dropped first and, if that frees
/// nothing, the whole cache is cleared: simple, bounded, and only a gateway writing to
/// more than this many buckets within one TTL ever sees it.
pub const BUCKET_CACHE_ENTRIES_MAX: usize = 4096;

struct Entry {
    fetched: Instant,
    bucket: Stored<BucketRecord>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Bumped by every [`BucketCache::forget`]: a read that started before an
    /// invalidation may have seen the old record, so it must not be cached after it
    /// (see [`BucketCache::remember`]).
    invalidations: u64,
}

/// A ticket taken before a fresh read; caching its result is refused if any entry was
/// invalidated since (the read may predate the change that caused it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadTicket(u64);

#[derive(Default)]
pub struct BucketCache {
    // A std mutex: it is never held across an await, only for a map operation.
    state: Mutex<State>,
}

impl BucketCache {
    /// The cached bucket if it is younger than [`BUCKET_CACHE_TTL`].
    pub fn recent(&self, name: &str) -> Option<Stored<BucketRecord>> {
        self.recent_at(name, Instant::now())
    }

    fn recent_at(&self, name: &str, now: Instant) -> Option<Stored<BucketRecord>> {
        let state = self.state.lock().ok()?;
        let entry = state.entries.get(name)?;
        (now.saturating_duration_since(entry.fetched) < BUCKET_CACHE_TTL)
            .then(|| entry.bucket.clone())
    }

    /// Take before reading a bucket fresh, and hand to [`Self::remember`] afterwards.
    pub fn ticket(&self) -> ReadTicket {
        // A poisoned lock only means another thread panicked mid-operation on a plain
        // map: the ticket then never matches and nothing more is cached.
        ReadTicket(
            self.state
                .lock()
                .map_or(u64::MAX, |state| state.invalidations),
        )
    }

    /// Caches `bucket` as read fresh under `name`, unless it is marked `deleting`, the
    /// entry was invalidated since `ticket` was taken, or a newer version is cached.
    pub fn remember(&self, name: &str, bucket: &Stored<BucketRecord>, ticket: ReadTicket) {
        self.remember_at(name, bucket, ticket, Instant::now());
    }

    fn remember_at(
        &self,
        name: &str,
        bucket: &Stored<BucketRecord>,
        ticket: ReadTicket,
        now: Instant,
    ) {
        if bucket.record.deleting {
            self.forget(name);
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.invalidations != ticket.0 {
            return;
        }
        if let Some(cached) = state.entries.get(name) {
            // Versions only grow: an older one is a slower concurrent read.
            if cached.bucket.version > bucket.version {
                return;
            }
        } else if state.entries.len() >= BUCKET_CACHE_ENTRIES_MAX {
            state
                .entries
                .retain(|_, entry| now.saturating_duration_since(entry.fetched) < BUCKET_CACHE_TTL);
            if state.entries.len() >= BUCKET_CACHE_ENTRIES_MAX {
                state.entries.clear();
            }
        }
        state.entries.insert(
            name.to_string(),
            Entry {
                fetched: now,
                bucket: bucket.clone(),
            },
        );
    }

    /// Drops `name` and refuses to cache any read already in flight: the bucket was
    /// changed by this gateway, or a fresh read found it absent or being deleted.
    pub fn forget(&self, name: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.entries.remove(name);
            state.invalidations = state.invalidations.wrapping_add(1);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().map_or(0, |state| state.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardlet_core::RedundancyLevel;

    fn live(name: &str, version: u64) -> Stored<BucketRecord> {
        Stored {
            record: BucketRecord {
                name: name.to_string(),
                owner: "alice".into(),
                default_redundancy: RedundancyLevel::Medium,
                created_unix_ms: 0,
                deleting: false,
                grants: Vec::new(),
                tags: Vec::new(),
            },
            version,
        }
    }

    fn cached_version(cache: &BucketCache, name: &str, now: Instant) -> Option<u64> {
        cache.recent_at(name, now).map(|bucket| bucket.version)
    }

    #[test]
    fn an_entry_is_served_until_the_ttl_and_not_after() {
        let cache = BucketCache::default();
        let start = Instant::now();
        cache.remember_at("b", &live("b", 3), cache.ticket(), start);
        let almost = start + BUCKET_CACHE_TTL - Duration::from_millis(1);
        assert_eq!(cached_version(&cache, "b", almost), Some(3));
        assert_eq!(cached_version(&cache, "b", start + BUCKET_CACHE_TTL), None);
        assert_eq!(cached_version(&cache, "other", start), None);
    }

    #[test]
    fn a_bucket_marked_deleting_is_not_cached_and_drops_the_live_entry() {
        let cache = BucketCache::default();
        let now = Instant::now();
        cache.remember_at("b", &live("b", 3), cache.ticket(), now);
        let mut marked = live("b", 4);
        marked.record.deleting = true;
        cache.remember_at("b", &marked, cache.ticket(), now);
        assert_eq!(cached_version(&cache, "b", now), None);
    }

    #[test]
    fn a_read_that_started_before_an_invalidation_is_not_cached() {
        let cache = BucketCache::default();
        let now = Instant::now();
        let before = cache.ticket();
        cache.forget("b");
        cache.remember_at("b", &live("b", 3), before, now);
        assert_eq!(cached_version(&cache, "b", now), None);
        cache.remember_at("b", &live("b", 5), cache.ticket(), now);
        assert_eq!(cached_version(&cache, "b", now), Some(5));
    }

    #[test]
    fn a_slower_read_of_an_older_version_does_not_replace_a_newer_one() {
        let cache = BucketCache::default();
        let now = Instant::now();
        let ticket = cache.ticket();
        cache.remember_at("b", &live("b", 7), ticket, now);
        cache.remember_at("b", &live("b", 5), ticket, now);
        assert_eq!(cached_version(&cache, "b", now), Some(7));
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound_and_drops_expired_entries_first() {
        let cache = BucketCache::default();
        let start = Instant::now();
        for index in 0..BUCKET_CACHE_ENTRIES_MAX {
            let name = format!("old-{index}");
            cache.remember_at(&name, &live(&name, 1), cache.ticket(), start);
        }
        assert_eq!(cache.len(), BUCKET_CACHE_ENTRIES_MAX);
        // All expired: making room drops them, not the cache's newest entries.
        let later = start + BUCKET_CACHE_TTL;
        cache.remember_at("new", &live("new", 2), cache.ticket(), later);
        assert_eq!(cache.len(), 1);
        // All young: making room clears everything.
        for index in 1..BUCKET_CACHE_ENTRIES_MAX {
            let name = format!("young-{index}");
            cache.remember_at(&name, &live(&name, 1), cache.ticket(), later);
        }
        assert_eq!(cache.len(), BUCKET_CACHE_ENTRIES_MAX);
        cache.remember_at("last", &live("last", 2), cache.ticket(), later);
        assert_eq!(cache.len(), 1);
        assert_eq!(cached_version(&cache, "last", later), Some(2));
    }
}
