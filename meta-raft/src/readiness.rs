//! When a member is ready (`GET /ready`): it knows a leader and has caught up.
//!
//! - The leader: it confirms its leadership with a quorum and has applied everything
//!   committed (`ensure_linearizable`, what a linearizable read waits for), bounded by
//!   [`LEADER_CHECK_TIMEOUT`] and cached for [`LEADER_CHECK_CACHED_FOR`]: `/ready` is
//!   unauthenticated, and a stranger polling it must not make the leader send a round
//!   of heartbeats per request.
//! - A follower or learner: the leader's heartbeats carry its commit index; the member
//!   is ready when it has applied up to the commit index of a heartbeat received within
//!   [`CAUGHT_UP_WITHIN`], and heard from the leader within the same time
//!   ([`CatchUp`]). A member catching up from far behind, or cut off from the leader,
//!   is not ready; nor is one that belongs to no cluster yet.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use shardlet_net::Readiness;

/// Longest wait for the leader's quorum confirmation.
pub const LEADER_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one leader check answers `/ready`.
pub const LEADER_CHECK_CACHED_FOR: Duration = Duration::from_secs(1);
/// A follower is ready while it applied, within this long, a commit index the leader
/// announced within this long (20 heartbeats at the default 100 ms).
pub const CAUGHT_UP_WITHIN: Duration = Duration::from_secs(2);

/// A follower's progress against the commit indexes its leader announces. Pure: the
/// caller passes the clock.
#[derive(Debug, Default, Clone)]
pub struct CatchUp {
    /// The commit index being caught up to, and when the leader announced it.
    target: Option<(u64, Instant)>,
    caught_up_at: Option<Instant>,
    last_contact: Option<Instant>,
}

impl CatchUp {
    /// A heartbeat or append from the leader said `leader_commit`; this member has
    /// applied up to `applied`.
    pub fn observe(&mut self, now: Instant, leader_commit: Option<u64>, applied: Option<u64>) {
        self.last_contact = Some(now);
        let applied = applied.unwrap_or(0);
        let announced = leader_commit.unwrap_or(0);
        if let Some((target, since)) = self.target {
            if applied >= target && now.duration_since(since) <= CAUGHT_UP_WITHIN {
                self.caught_up_at = Some(now);
                self.target = None;
            } else if now.duration_since(since) > CAUGHT_UP_WITHIN {
                // Too old to count: catch up to what the leader says now instead.
                self.target = None;
            }
        }
        if self.target.is_none() {
            if applied >= announced {
                self.caught_up_at = Some(now);
            } else {
                self.target = Some((announced, now));
            }
        }
    }

    /// Ready, or why not, at `now`.
    pub fn readiness(&self, now: Instant) -> Readiness {
        let recent =
            |at: Option<Instant>| at.is_some_and(|at| now.duration_since(at) <= CAUGHT_UP_WITHIN);
        if !recent(self.last_contact) {
            return Readiness::not_ready(format!(
                "no heartbeat from the leader within {} s",
                CAUGHT_UP_WITHIN.as_secs()
            ));
        }
        if !recent(self.caught_up_at) {
            let target = self.target.map_or(0, |(target, _)| target);
            return Readiness::not_ready(format!(
                "catching up: has not applied the leader's commit index {target} yet"
            ));
        }
        Readiness::Ready
    }
}

/// What `/ready` consults: the follower's progress, and the leader's cached check.
#[derive(Default)]
pub struct ReadinessState {
    catch_up: Mutex<CatchUp>,
    /// The leader's last check and when it was made.
    pub leader_check: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
}

impl ReadinessState {
    pub fn observe_leader(&self, leader_commit: Option<u64>, applied: Option<u64>) {
        self.catch_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(Instant::now(), leader_commit, applied);
    }

    /// A follower's readiness now.
    pub fn follower_readiness(&self) -> Readiness {
        self.catch_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .readiness(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_is_ready_once_it_applied_what_a_recent_heartbeat_announced() {
        let start = Instant::now();
        let mut progress = CatchUp::default();
        assert!(
            !progress.readiness(start).is_ready(),
            "never heard from a leader"
        );
        progress.observe(start, Some(100), Some(40));
        assert!(!progress.readiness(start).is_ready(), "60 entries behind");
        // It applies while the leader commits more: reaching the announced index counts.
        let later = start + Duration::from_millis(500);
        progress.observe(later, Some(130), Some(100));
        assert!(progress.readiness(later).is_ready());
        // Cut off from the leader: not ready once the last heartbeat is too old.
        let silent = later + CAUGHT_UP_WITHIN + Duration::from_millis(1);
        assert!(!progress.readiness(silent).is_ready());
    }

    #[test]
    fn a_member_that_falls_behind_for_longer_than_the_window_is_not_ready() {
        let start = Instant::now();
        let mut progress = CatchUp::default();
        progress.observe(start, Some(10), Some(10));
        assert!(progress.readiness(start).is_ready());
        // From here on it always lags far behind what the leader announces.
        let mut now = start;
        for step in 1..=30_u64 {
            now = start + Duration::from_millis(100 * step);
            progress.observe(now, Some(10_000 + step * 100), Some(10 + step));
        }
        let readiness = progress.readiness(now);
        assert!(
            matches!(&readiness, Readiness::NotReady(reason) if reason.contains("catching up")),
            "{readiness:?}"
        );
    }

    #[test]
    fn a_target_older_than_the_window_does_not_count_when_finally_reached() {
        let start = Instant::now();
        let mut progress = CatchUp::default();
        progress.observe(start, Some(1_000), Some(0));
        let late = start + CAUGHT_UP_WITHIN + Duration::from_secs(1);
        // Reached 1 000 only now, while the leader is at 5 000.
        progress.observe(late, Some(5_000), Some(1_000));
        assert!(!progress.readiness(late).is_ready());
    }
}
