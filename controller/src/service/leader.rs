//! The one shape of the workers that act only while this controller holds the lease
//! (repair, scrub, transitions): a [`LeaderPass`] says what one pass does, and
//! [`LeaderWorker`] makes it a [`Worker`] that runs that pass every interval and stands
//! by, touching nothing, while another controller holds the lease.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::lease::Lease;
use super::worker::{Pace, Pass, Stop, Worker};

/// One pass of a worker that may act only while the lease is held.
#[async_trait]
pub trait LeaderPass: Send + Sync + 'static {
    /// The worker's name: span, metrics label and `/v1/status` key.
    const NAME: &'static str;

    /// One bounded pass; called only while the lease is active.
    async fn leader_pass(&self) -> anyhow::Result<()>;

    /// Resolves when work arrives before the interval is over; by default never.
    async fn wait_for_work(&self) {
        std::future::pending::<()>().await
    }
}

/// Runs `work`'s pass every `interval` while `lease` is active.
pub struct LeaderWorker<P> {
    lease: Arc<Lease>,
    interval: Duration,
    work: P,
}

impl<P: LeaderPass> LeaderWorker<P> {
    pub fn new(lease: Arc<Lease>, interval: Duration, work: P) -> Self {
        Self {
            lease,
            interval,
            work,
        }
    }

    pub fn work(&self) -> &P {
        &self.work
    }
}

#[async_trait]
impl<P: LeaderPass> Worker for LeaderWorker<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn pace(&self) -> Pace {
        Pace::Every(self.interval)
    }

    async fn step(&self, _: &Stop) -> anyhow::Result<Pass> {
        if !self.lease.is_active() {
            return Ok(Pass::Standby);
        }
        self.work.leader_pass().await?;
        Ok(Pass::Worked)
    }

    async fn wait_for_work(&self) {
        self.work.wait_for_work().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::Notify;

    use super::*;

    /// Counts its passes; woken by `wake`.
    #[derive(Default)]
    struct Counting {
        passes: AtomicU64,
        wake: Notify,
    }

    #[async_trait]
    impl LeaderPass for Counting {
        const NAME: &'static str = "counting";

        async fn leader_pass(&self) -> anyhow::Result<()> {
            self.passes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        async fn wait_for_work(&self) {
            self.wake.notified().await
        }
    }

    fn worker() -> LeaderWorker<Counting> {
        let lease = Arc::new(Lease::new("test".into(), Duration::from_secs(10)));
        LeaderWorker::new(lease, Duration::from_secs(7), Counting::default())
    }

    #[tokio::test]
    async fn without_the_lease_a_leader_worker_stands_by_and_does_not_run_its_pass() {
        let worker = worker();
        let pass = worker.step(&Stop::detached()).await.unwrap();
        assert_eq!(pass, Pass::Standby);
        assert_eq!(worker.work().passes.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_leader_worker_has_its_pass_name_interval_and_wake_up() {
        let worker = worker();
        assert_eq!(worker.name(), "counting");
        assert_eq!(worker.pace(), Pace::Every(Duration::from_secs(7)));
        // A stored permit: the wait resolves at once only if it is the pass's own.
        worker.work().wake.notify_one();
        tokio::time::timeout(Duration::from_secs(30), worker.wait_for_work())
            .await
            .unwrap();
    }
}
