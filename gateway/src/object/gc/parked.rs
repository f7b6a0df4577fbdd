//! Intents whose collection keeps failing (a node that cannot be reached, metadata that
//! times out): parked with a capped exponential backoff, so one stuck intent costs one
//! attempt per backoff instead of one per sweep, and never stops the others. Pure: the
//! caller passes the time.

use std::collections::BTreeMap;
use std::time::Duration;

use shardlet_core::ObjectId;
use tokio::time::Instant;

/// Intents parked at most; beyond it a failing intent is simply retried by the next
/// sweep that reaches it (bounded anyway by `INTENTS_PER_SWEEP_MAX`).
pub const PARKED_INTENTS_MAX: usize = 10_000;
/// Wait after the first failure; doubled after each further one.
pub const PARK_BACKOFF_INITIAL: Duration = Duration::from_secs(60);
/// Longest wait between two attempts at one intent.
pub const PARK_BACKOFF_MAX: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
struct Parked {
    failures: u32,
    retry_at: Instant,
}

#[derive(Debug, Default)]
pub struct ParkedIntents {
    parked: BTreeMap<ObjectId, Parked>,
}

impl ParkedIntents {
    /// Whether `id` waits for its backoff at `now` (and must be skipped).
    pub fn is_waiting(&self, id: &ObjectId, now: Instant) -> bool {
        self.parked
            .get(id)
            .is_some_and(|parked| parked.retry_at > now)
    }

    /// Records a failed attempt at `now`; returns how long the intent now waits
    /// (`None` when the table is full and it could not be parked).
    pub fn failed(&mut self, id: ObjectId, now: Instant) -> Option<Duration> {
        if !self.parked.contains_key(&id) && self.parked.len() >= PARKED_INTENTS_MAX {
            return None;
        }
        let parked = self.parked.entry(id).or_insert(Parked {
            failures: 0,
            retry_at: now,
        });
        parked.failures = parked.failures.saturating_add(1);
        let doublings = parked.failures.saturating_sub(1).min(16);
        let backoff = PARK_BACKOFF_INITIAL
            .saturating_mul(1 << doublings)
            .min(PARK_BACKOFF_MAX);
        parked.retry_at = now + backoff;
        Some(backoff)
    }

    /// The intent was collected, or is gone: forget it.
    pub fn succeeded(&mut self, id: &ObjectId) {
        self.parked.remove(id);
    }

    /// Failed attempts recorded for `id` so far.
    pub fn failures(&self, id: &ObjectId) -> u32 {
        self.parked.get(id).map_or(0, |parked| parked.failures)
    }

    pub fn len(&self) -> usize {
        self.parked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_success_forgets() {
        let mut parked = ParkedIntents::default();
        let id = ObjectId([1; 16]);
        let now = Instant::now();
        let waits: Vec<Duration> = (0..10)
            .map(|_| parked.failed(id, now).unwrap_or_default())
            .collect();
        assert_eq!(waits[0], PARK_BACKOFF_INITIAL);
        assert_eq!(waits[1], PARK_BACKOFF_INITIAL * 2);
        assert_eq!(waits[5], PARK_BACKOFF_INITIAL * 32);
        assert_eq!(waits[9], PARK_BACKOFF_MAX, "capped");
        assert!(parked.is_waiting(&id, now));
        assert!(!parked.is_waiting(&id, now + PARK_BACKOFF_MAX));
        assert_eq!(parked.failures(&id), 10);
        parked.succeeded(&id);
        assert!(parked.is_empty());
        assert!(!parked.is_waiting(&id, now));
    }

    #[test]
    fn a_full_table_parks_no_more() {
        let mut parked = ParkedIntents::default();
        let now = Instant::now();
        for index in 0..PARKED_INTENTS_MAX as u32 {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&index.to_be_bytes());
            assert!(parked.failed(ObjectId(bytes), now).is_some());
        }
        assert_eq!(parked.failed(ObjectId([0xff; 16]), now), None);
        assert_eq!(parked.len(), PARKED_INTENTS_MAX);
    }
}
