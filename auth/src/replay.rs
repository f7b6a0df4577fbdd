//! The nonces a receiver accepted, remembered for as long as their request could still
//! be accepted, so a captured request is refused the second time.
//!
//! A request dated `d` is accepted while the receiver's clock reads at most
//! `d + MAX_CLOCK_SKEW`; after that the date check refuses it anyway. So nonces are kept
//! in one set per signed date second and a whole second's set is dropped once it is
//! older than the window: a replay carries the same signed date, so it is looked up in
//! exactly one set, and nothing is ever forgotten early.
//!
//! Memory is capped by [`ReplayCache::entries_max`]: one entry is a 128-bit nonce in a
//! hash set, 16 bytes plus one control byte at a load factor between 7/16 and 7/8, so
//! 20–40 bytes; [`REPLAY_CACHE_ENTRIES_MAX_DEFAULT`] (2 Mi) is at most 80 MiB and
//! covers ~35,000 requests/s for the 60-s window. When full (after dropping expired
//! seconds) a new request is refused with 503 (`ReplayCacheFull`), never remembered
//! partially or evicted early: forgetting a live nonce would re-open the replay.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use crate::error::AuthError;

/// Default cap of remembered nonces per receiver (see the module docs for memory).
pub const REPLAY_CACHE_ENTRIES_MAX_DEFAULT: usize = 1 << 21;

pub struct ReplayCache {
    entries_max: usize,
    window_seconds: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Signed date (unix seconds) → nonces of requests dated that second.
    by_date: BTreeMap<u64, HashSet<u128>>,
    entries: usize,
}

impl ReplayCache {
    /// Remembers up to `entries_max` nonces, each until `window_seconds` after its
    /// request's date.
    pub fn new(entries_max: usize, window_seconds: u64) -> Self {
        ReplayCache {
            entries_max: entries_max.max(1),
            window_seconds,
            state: Mutex::new(State::default()),
        }
    }

    pub fn entries_max(&self) -> usize {
        self.entries_max
    }

    /// Nonces remembered now.
    pub fn entries(&self) -> usize {
        self.lock().entries
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a set and a counter updated together under the lock; a panic
        // cannot leave them half-updated (no user code runs inside).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records `nonce` of a request dated `date_unix_seconds`, or refuses it: seen
    /// before (`Replayed`), or no room (`ReplayCacheFull`).
    pub fn check_and_remember(
        &self,
        nonce: u128,
        date_unix_seconds: u64,
        now_unix_seconds: u64,
    ) -> Result<(), AuthError> {
        let mut state = self.lock();
        // Dates before this are refused by the clock-skew check: their nonces can go.
        let oldest_live = now_unix_seconds.saturating_sub(self.window_seconds);
        while let Some(entry) = state.by_date.first_entry() {
            if *entry.key() >= oldest_live {
                break;
            }
            let dropped = entry.remove().len();
            state.entries -= dropped;
        }
        if state
            .by_date
            .get(&date_unix_seconds)
            .is_some_and(|seen| seen.contains(&nonce))
        {
            return Err(AuthError::Replayed);
        }
        if state.entries >= self.entries_max {
            return Err(AuthError::ReplayCacheFull {
                entries_max: self.entries_max,
            });
        }
        state
            .by_date
            .entry(date_unix_seconds)
            .or_default()
            .insert(nonce);
        state.entries += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_per_window() {
        let cache = ReplayCache::new(10, 60);
        cache.check_and_remember(1, 1000, 1000).unwrap();
        assert_eq!(
            cache.check_and_remember(1, 1000, 1030),
            Err(AuthError::Replayed)
        );
        assert_eq!(
            cache.check_and_remember(1, 1000, 1060),
            Err(AuthError::Replayed)
        );
        // The same nonce under another date is another request (its signature differs).
        cache.check_and_remember(1, 1001, 1030).unwrap();
        assert_eq!(cache.entries(), 2);
    }

    #[test]
    fn expired_dates_are_dropped_and_only_they() {
        let cache = ReplayCache::new(10, 60);
        cache.check_and_remember(1, 1000, 1000).unwrap();
        cache.check_and_remember(2, 1050, 1050).unwrap();
        // At 1061 the request dated 1000 is outside the window: its nonce goes.
        cache.check_and_remember(3, 1061, 1061).unwrap();
        assert_eq!(cache.entries(), 2);
        assert_eq!(
            cache.check_and_remember(2, 1050, 1061),
            Err(AuthError::Replayed)
        );
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets() {
        let cache = ReplayCache::new(3, 60);
        for nonce in 0..3 {
            cache.check_and_remember(nonce, 1000, 1000).unwrap();
        }
        assert_eq!(
            cache.check_and_remember(9, 1000, 1010),
            Err(AuthError::ReplayCacheFull { entries_max: 3 })
        );
        // Still remembered: a replay is still a replay, not a "full".
        assert_eq!(
            cache.check_and_remember(0, 1000, 1010),
            Err(AuthError::Replayed)
        );
        // Room again once the window passed.
        cache.check_and_remember(9, 1061, 1061).unwrap();
        assert_eq!(cache.entries(), 1);
    }
}
