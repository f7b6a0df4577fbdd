//! How long the scrub keeps a fragment nothing references before deleting it: derived
//! from the cluster's upload deadline (meta-raft's settings, the same value every
//! gateway enforces), never set on its own. Pure.
//!
//! Why a grace at all: a gateway writes an upload's fragments before the record that
//! references them, so a fragment of an upload in flight looks exactly like an orphan.
//!
//! Why `deadline + max(deadline, 60 s)` is safe. Follow one fragment F of an upload
//! whose intent was written at I:
//! - F reaches its node after I, so the scrub first lists it, and first records it as
//!   an orphan at the start of a record scan S₁, after I. The scrub deletes F only at a
//!   later scan Sₙ with Sₙ − S₁ ≥ grace that still finds no record placing F (the
//!   ledger measures an orphan's age up to the start of the scan that confirmed it).
//! - The upload's gateway refuses to commit once its clock, started before I, reaches
//!   the deadline, and checks it before every commit batch: a commit that lands at all
//!   was sent before I + deadline and lands within one metadata request later (5 s by
//!   default, a few attempts).
//! - So a record that is ever committed exists before I + deadline + (commit latency),
//!   and Sₙ ≥ S₁ + grace > I + deadline + margin. The margin must cover that commit
//!   latency, a wall-clock step on the controller (its durations are wall-clock
//!   differences), and the gateways' refresh lag after the deadline changes (below);
//!   at least a minute, and never less than the deadline itself, covers all three.
//! - Clock skew between processes does not enter: every duration above is measured on
//!   one process's clock. A gateway whose clock runs ahead collects `Uploading` intents
//!   early; the upload's commit then fails its intent condition: a refusal, not a loss.
//! - The sweep interval of the gateways' collectors does not enter either: an expired
//!   intent a collector has not reached yet still exists, and the scrub keeps every
//!   fragment whose object has an intent (its point read right before deleting).
//!
//! When an operator **lowers** the deadline, a gateway may still enforce the old, longer
//! one until its next refresh (every 5 s): for [`DEADLINE_LOWERING_HOLD`] after it
//! first sees a lower value, the controller keeps deriving its grace from the higher
//! one. A **raised** deadline applies at once (a longer grace is always safe).

use std::time::Duration;

/// The smallest margin of the grace over the deadline.
pub const ORPHAN_GRACE_MARGIN_MIN: Duration = Duration::from_secs(60);
/// How long a lowered deadline waits before it shortens the grace: six refreshes of
/// the gateways' settings copy (`SETTINGS_REFRESH_INTERVAL`, 5 s).
pub const DEADLINE_LOWERING_HOLD: Duration = Duration::from_secs(30);

/// The orphan grace for an upload deadline.
pub fn orphan_grace(upload_deadline: Duration) -> Duration {
    upload_deadline.saturating_add(upload_deadline.max(ORPHAN_GRACE_MARGIN_MIN))
}

/// The deadline the grace is derived from: the current one, except that a lowered one
/// takes effect only after it has been seen for [`DEADLINE_LOWERING_HOLD`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadlineHold {
    effective: Duration,
    /// A lower deadline seen, and since when (unix ms).
    lowered: Option<(Duration, u64)>,
}

impl DeadlineHold {
    pub fn new(deadline: Duration) -> Self {
        Self {
            effective: deadline,
            lowered: None,
        }
    }

    /// Takes the deadline read at `now_ms` into account; returns the one in force.
    pub fn observe(&mut self, deadline: Duration, now_ms: u64) -> Duration {
        if deadline >= self.effective {
            self.effective = deadline;
            self.lowered = None;
            return self.effective;
        }
        match self.lowered {
            Some((lowered, since_ms)) if lowered == deadline => {
                if now_ms.saturating_sub(since_ms) >= DEADLINE_LOWERING_HOLD.as_millis() as u64 {
                    self.effective = deadline;
                    self.lowered = None;
                }
            }
            // First seen now (or lowered again): the hold starts over.
            _ => self.lowered = Some((deadline, now_ms)),
        }
        self.effective
    }

    /// The deadline the grace is derived from now.
    pub fn effective(&self) -> Duration {
        self.effective
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_grace_exceeds_the_deadline_by_at_least_a_minute_and_at_least_the_deadline() {
        assert_eq!(orphan_grace(HOUR), 2 * HOUR);
        assert_eq!(
            orphan_grace(Duration::from_secs(5)),
            Duration::from_secs(65)
        );
        assert_eq!(orphan_grace(MINUTE), 2 * MINUTE);
        for seconds in [1, 59, 60, 61, 3600, 7 * 24 * 3600] {
            let deadline = Duration::from_secs(seconds);
            let grace = orphan_grace(deadline);
            assert!(grace >= deadline + ORPHAN_GRACE_MARGIN_MIN, "{seconds}");
            assert!(grace >= 2 * deadline, "{seconds}");
        }
        assert_eq!(orphan_grace(Duration::MAX), Duration::MAX, "saturates");
    }

    #[test]
    fn a_raised_deadline_applies_at_once_a_lowered_one_after_the_hold() {
        let hold_ms = DEADLINE_LOWERING_HOLD.as_millis() as u64;
        let mut hold = DeadlineHold::new(HOUR);
        assert_eq!(hold.observe(2 * HOUR, 1_000), 2 * HOUR, "raised: at once");
        assert_eq!(hold.observe(MINUTE, 2_000), 2 * HOUR, "lowered: held");
        assert_eq!(hold.observe(MINUTE, 2_000 + hold_ms - 1), 2 * HOUR);
        assert_eq!(
            hold.observe(MINUTE, 2_000 + hold_ms),
            MINUTE,
            "after the hold"
        );
        // Lowered again during a hold: the hold starts over from the newest value.
        let mut hold = DeadlineHold::new(HOUR);
        hold.observe(30 * MINUTE, 0);
        hold.observe(MINUTE, hold_ms / 2);
        assert_eq!(hold.observe(MINUTE, hold_ms), HOUR);
        assert_eq!(hold.observe(MINUTE, hold_ms / 2 + hold_ms), MINUTE);
        // Raised back during a hold: the hold is forgotten.
        let mut hold = DeadlineHold::new(HOUR);
        hold.observe(MINUTE, 0);
        assert_eq!(hold.observe(HOUR, 1), HOUR);
        assert_eq!(hold.observe(HOUR, hold_ms * 10), HOUR);
        assert_eq!(hold.effective(), HOUR);
    }
}
