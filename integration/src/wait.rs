//! The one wait of the tests: poll a condition until it holds, with a deadline, and
//! fail the test naming what it waited for. Tests never synchronise with a bare sleep.

use std::future::Future;
use std::time::Duration;

use crate::poll::{poll_until, Condition, POLL_INTERVAL};

/// Polls `condition` every [`POLL_INTERVAL`] until it holds — `true`, or `Some(value)`,
/// whose value is returned — and panics naming `what` once `deadline` has passed.
pub async fn wait_until<F, Fut>(
    deadline: Duration,
    what: &str,
    condition: F,
) -> <Fut::Output as Condition>::Value
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Condition,
{
    let give_up = tokio::time::Instant::now() + deadline;
    match poll_until(give_up, POLL_INTERVAL, condition).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {deadline:?} waiting until {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_until_returns_the_value_the_condition_produced() {
        let mut checks = 0;
        let value = wait_until(Duration::from_secs(60), "the third check", || {
            checks += 1;
            let value = (checks == 3).then_some(checks * 10);
            async move { value }
        })
        .await;
        assert_eq!(value, 30);
    }

    #[tokio::test]
    async fn wait_until_times_out_naming_what_it_waited_for() {
        let waiting = tokio::spawn(wait_until(
            Duration::from_millis(50),
            "the moon turns blue",
            || async { false },
        ));
        let panic = waiting.await.unwrap_err().into_panic();
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(
            message,
            "timed out after 50ms waiting until the moon turns blue"
        );
    }
}
