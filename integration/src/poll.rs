//! Waiting for a condition: checked at an interval until it holds or a deadline passes.
//! Processes are watched from outside (a port, a log line, an exit status), so there is
//! nothing to be woken by; a bounded poll is the honest wait, a bare sleep never is.
//!
//! Production layer: a deadline is reported as [`TimedOut`], never a panic.

use std::future::Future;
use std::time::Duration;

/// Interval between two checks, unless the caller picks one: short against start-up
/// times of tens of milliseconds, long enough that polling costs nothing measurable.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What a polled condition returns: `bool` (it holds or not) or `Option<T>` (the value
/// it produced once it holds).
pub trait Condition {
    type Value;
    fn into_value(self) -> Option<Self::Value>;
}

impl Condition for bool {
    type Value = ();
    fn into_value(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Condition for Option<T> {
    type Value = T;
    fn into_value(self) -> Option<T> {
        self
    }
}

/// The deadline passed before the condition held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the deadline passed before the condition held")]
pub struct TimedOut;

/// Checks `condition` every `interval` until it holds (its value is returned) or
/// `give_up` passes. It is always checked at least once, and once more at the deadline.
pub async fn poll_until<F, Fut>(
    give_up: tokio::time::Instant,
    interval: Duration,
    mut condition: F,
) -> Result<<Fut::Output as Condition>::Value, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Condition,
{
    loop {
        if let Some(value) = condition().await.into_value() {
            return Ok(value);
        }
        let now = tokio::time::Instant::now();
        if now >= give_up {
            return Err(TimedOut);
        }
        tokio::time::sleep(interval.min(give_up - now)).await;
    }
}

/// [`poll_until`] for code that cannot await (a `Drop`): blocks the calling thread.
pub fn poll_until_blocking<C: Condition>(
    give_up: std::time::Instant,
    interval: Duration,
    mut condition: impl FnMut() -> C,
) -> Result<C::Value, TimedOut> {
    loop {
        if let Some(value) = condition().into_value() {
            return Ok(value);
        }
        let now = std::time::Instant::now();
        if now >= give_up {
            return Err(TimedOut);
        }
        std::thread::sleep(interval.min(give_up - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_condition_that_holds_at_once_is_checked_exactly_once() {
        let mut checks = 0;
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        let value = poll_until(give_up, POLL_INTERVAL, || {
            checks += 1;
            async { Some(7) }
        })
        .await;
        assert_eq!((value, checks), (Ok(7), 1));
    }

    #[tokio::test]
    async fn a_condition_that_never_holds_times_out_after_checking_at_the_deadline() {
        let started = tokio::time::Instant::now();
        let mut checks = 0;
        let result = poll_until(
            started + Duration::from_millis(100),
            Duration::from_millis(30),
            || {
                checks += 1;
                async { false }
            },
        )
        .await;
        assert_eq!(result, Err(TimedOut));
        assert!(started.elapsed() >= Duration::from_millis(100));
        // 0, 30, 60, 90 and the deadline itself.
        assert!(checks >= 5, "checked {checks} times");
    }

    #[test]
    fn the_blocking_poll_returns_the_value_once_the_condition_holds() {
        let mut remaining = 3;
        let give_up = std::time::Instant::now() + Duration::from_secs(60);
        let value = poll_until_blocking(give_up, Duration::from_millis(1), || {
            remaining -= 1;
            (remaining == 0).then_some("done")
        });
        assert_eq!(value, Ok("done"));
    }
}
