//! Background work with a face (after Garage's `Worker`): scrub, repair, transitions
//! and heat aggregation each implement [`Worker`]; the shell runs them, waits when
//! they say so, and exports [`WorkerStatus`] as metrics and in `shardlet admin`.
//!
//! Synchronous and clock-free like the rest of the controller: `work` does one bounded
//! unit and returns; the shell owns the waiting. Errors are retried with [`Backoff`].

/// Progress numbers shared by every status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    /// `None` when the amount of work is not known up front (a scrub of a growing store).
    pub total: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerStatus {
    Busy(Progress),
    /// Waiting for the I/O budget until `until_ms`.
    Throttled {
        progress: Progress,
        until_ms: u64,
    },
    Idle(Progress),
    Done(Progress),
}

/// What one call to [`Worker::work`] achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkOutcome {
    /// More to do right away.
    Continue,
    /// Nothing to do until `wait_for_work` says so.
    Idle,
    /// Finished for good.
    Done,
    /// Retry later; the shell applies the worker's backoff.
    Failed(String),
}

pub trait Worker {
    fn name(&self) -> &str;
    fn status(&self) -> WorkerStatus;
    /// One bounded unit of work at `now_ms`.
    fn work(&mut self, now_ms: u64) -> WorkOutcome;
    /// When to call `work` again after `Idle` (or `Throttled`); `None`: on new input.
    fn wait_for_work(&self, now_ms: u64) -> Option<u64>;
    /// Bytes to persist so a restarted worker resumes instead of starting over.
    fn checkpoint(&self) -> Option<Vec<u8>> {
        None
    }
}

/// Capped exponential backoff with a bound on attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: u64,
    pub max_ms: u64,
    pub attempts_max: u32,
    attempts: u32,
}

impl Backoff {
    pub fn new(base_ms: u64, max_ms: u64, attempts_max: u32) -> Self {
        Self {
            base_ms,
            max_ms,
            attempts_max,
            attempts: 0,
        }
    }

    /// Delay before the next attempt, or `None` once `attempts_max` is spent (the
    /// caller reports the failure instead of retrying forever).
    pub fn next_delay_ms(&mut self) -> Option<u64> {
        if self.attempts >= self.attempts_max {
            return None;
        }
        let delay = self
            .base_ms
            .saturating_mul(1u64 << self.attempts.min(32))
            .min(self.max_ms);
        self.attempts += 1;
        Some(delay)
    }

    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_gives_up() {
        let mut backoff = Backoff::new(100, 1_000, 6);
        let delays: Vec<Option<u64>> = (0..7).map(|_| backoff.next_delay_ms()).collect();
        assert_eq!(
            delays,
            vec![
                Some(100),
                Some(200),
                Some(400),
                Some(800),
                Some(1_000),
                Some(1_000),
                None
            ]
        );
        backoff.reset();
        assert_eq!(backoff.next_delay_ms(), Some(100));
    }
}
