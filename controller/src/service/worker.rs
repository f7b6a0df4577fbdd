//! Background work with a face: every loop of the daemon (lease, detection, repair,
//! scrub, transitions, the HTTP endpoint) implements [`Worker`], and one [`Runner`]
//! starts them, names each in a tracing span (`worker{worker=…}`), counts its passes and
//! errors in the `shardlet_controller_worker_*` metrics, keeps its [`WorkerReport`] on
//! the [`WorkerBoard`] for `/v1/status`, and stops them all on shutdown.
//!
//! A worker does one bounded pass per [`Worker::step`] and never waits on its own: the
//! runner owns the pause between passes ([`Pace::Every`], cut short by
//! [`Worker::wait_for_work`]) and the stop signal. An error ends the pass, never the
//! worker: it is logged, counted, and the next pass comes after the usual pause (every
//! pass re-derives its work from meta-raft, so a retry needs no state of its own).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::clock::unix_ms_now;
use super::metrics::Metrics;

/// How the runner paces a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// `step` is one bounded pass; the next starts this long after it ended, or as
    /// soon as [`Worker::wait_for_work`] resolves.
    Every(Duration),
    /// `step` serves until the [`Stop`] it is given fires (a server), once.
    UntilStopped,
}

/// What a pass that did not fail amounted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    /// The pass did its work.
    Worked,
    /// Nothing to do here: this controller does not hold the lease.
    Standby,
}

#[async_trait]
pub trait Worker: Send + Sync + 'static {
    /// Stable and short: the span name, the metrics label, the `/v1/status` key.
    fn name(&self) -> &'static str;

    fn pace(&self) -> Pace;

    /// Once, before the first pass (warming up from meta-raft, say).
    async fn start(&self) {}

    /// One pass (or, for [`Pace::UntilStopped`], the whole run).
    async fn step(&self, stop: &Stop) -> anyhow::Result<Pass>;

    /// Resolves when work arrives before the pause is over; by default never.
    async fn wait_for_work(&self) {
        std::future::pending::<()>().await
    }

    /// Once, after the last pass, when the daemon stops.
    async fn stopped(&self) {}
}

/// The stop signal as a worker sees it.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// A signal no runner sends: `is_stopped` stays false (for a step run by hand).
    #[cfg(test)]
    pub(crate) fn detached() -> Self {
        Stop(watch::channel(false).1)
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the daemon stops (at once if it already has).
    pub async fn wait(&mut self) {
        // An error means the runner is gone: stopped as well.
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}

/// Where a worker is between passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    #[default]
    Starting,
    Working,
    Waiting,
    Stopped,
}

/// One worker's progress, as `/v1/status` shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerReport {
    pub state: WorkerState,
    pub passes: u64,
    pub errors: u64,
    pub last_pass: Option<Pass>,
    pub last_error: Option<String>,
    pub last_pass_seconds: Option<f64>,
    pub last_success_unix_ms: Option<u64>,
}

/// Every worker's [`WorkerReport`], by name.
#[derive(Default)]
pub struct WorkerBoard {
    reports: Mutex<BTreeMap<&'static str, WorkerReport>>,
}

impl WorkerBoard {
    pub fn reports(&self) -> BTreeMap<&'static str, WorkerReport> {
        self.lock().clone()
    }

    fn update(&self, name: &'static str, change: impl FnOnce(&mut WorkerReport)) {
        change(self.lock().entry(name).or_default());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, WorkerReport>> {
        self.reports.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Starts workers, and stops them all.
pub struct Runner {
    metrics: Arc<Metrics>,
    board: Arc<WorkerBoard>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Runner {
    pub fn new(metrics: Arc<Metrics>, board: Arc<WorkerBoard>) -> Self {
        Self {
            metrics,
            board,
            stop: watch::channel(false).0,
            tasks: JoinSet::new(),
        }
    }

    /// Starts `worker` now. Two workers must not share a name.
    pub fn spawn(&mut self, worker: Arc<dyn Worker>) {
        let name = worker.name();
        assert!(
            !self.board.lock().contains_key(name),
            "two workers named {name}"
        );
        self.board.update(name, |_| {});
        let span = tracing::info_span!("worker", worker = name);
        let drive = drive(
            worker,
            self.metrics.clone(),
            self.board.clone(),
            Stop(self.stop.subscribe()),
        );
        self.tasks.spawn(drive.instrument(span));
    }

    /// Signals every worker to stop, waits up to `grace` for the ones in a pass to
    /// finish it, then aborts the rest. Aborting mid-pass is safe by construction:
    /// every step of a plan survives a crash (see `executor.rs`).
    pub async fn stop(mut self, grace: Duration) {
        self.stop.send_replace(true);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::info!("workers still busy after the stop grace; aborting them");
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

async fn drive(
    worker: Arc<dyn Worker>,
    metrics: Arc<Metrics>,
    board: Arc<WorkerBoard>,
    mut stop: Stop,
) {
    let name = worker.name();
    let labels = [name];
    worker.start().await;
    while !stop.is_stopped() {
        board.update(name, |report| report.state = WorkerState::Working);
        let started = Instant::now();
        let result = worker.step(&stop).await;
        let seconds = started.elapsed().as_secs_f64();
        metrics
            .worker_last_pass_seconds
            .with_label_values(&labels)
            .set(seconds);
        match result {
            Ok(pass) => {
                let now_ms = unix_ms_now();
                metrics.worker_passes_total.with_label_values(&labels).inc();
                metrics
                    .worker_last_success_unix_seconds
                    .with_label_values(&labels)
                    .set((now_ms / 1000) as i64);
                board.update(name, |report| {
                    report.passes += 1;
                    report.last_pass = Some(pass);
                    report.last_pass_seconds = Some(seconds);
                    report.last_success_unix_ms = Some(now_ms);
                });
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "pass failed; retried next pass");
                metrics.worker_errors_total.with_label_values(&labels).inc();
                board.update(name, |report| {
                    report.errors += 1;
                    report.last_error = Some(format!("{error:#}"));
                    report.last_pass_seconds = Some(seconds);
                });
            }
        }
        let Pace::Every(pause) = worker.pace() else {
            break;
        };
        board.update(name, |report| report.state = WorkerState::Waiting);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = worker.wait_for_work() => {}
            _ = stop.wait() => {}
        }
    }
    worker.stopped().await;
    board.update(name, |report| report.state = WorkerState::Stopped);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::mpsc;

    use super::*;

    /// Counts its passes, reports each on a channel, fails when told to.
    struct Counting {
        name: &'static str,
        fails: bool,
        passes: AtomicU64,
        stops: Arc<AtomicU64>,
        sent: mpsc::UnboundedSender<u64>,
    }

    #[async_trait]
    impl Worker for Counting {
        fn name(&self) -> &'static str {
            self.name
        }

        fn pace(&self) -> Pace {
            Pace::Every(Duration::from_millis(1))
        }

        async fn step(&self, _: &Stop) -> anyhow::Result<Pass> {
            let pass = self.passes.fetch_add(1, Ordering::SeqCst) + 1;
            let _ = self.sent.send(pass);
            if self.fails {
                anyhow::bail!("pass {pass} failed on purpose");
            }
            Ok(Pass::Worked)
        }

        async fn stopped(&self) {
            self.stops.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Serves until stopped, like the HTTP endpoint.
    struct Serving {
        stops: Arc<AtomicU64>,
    }

    #[async_trait]
    impl Worker for Serving {
        fn name(&self) -> &'static str {
            "serving"
        }

        fn pace(&self) -> Pace {
            Pace::UntilStopped
        }

        async fn step(&self, stop: &Stop) -> anyhow::Result<Pass> {
            stop.clone().wait().await;
            Ok(Pass::Worked)
        }

        async fn stopped(&self) {
            self.stops.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting(
        name: &'static str,
        fails: bool,
        stops: &Arc<AtomicU64>,
    ) -> (Arc<Counting>, mpsc::UnboundedReceiver<u64>) {
        let (sent, received) = mpsc::unbounded_channel();
        let worker = Arc::new(Counting {
            name,
            fails,
            passes: AtomicU64::new(0),
            stops: stops.clone(),
            sent,
        });
        (worker, received)
    }

    async fn wait_for_passes(received: &mut mpsc::UnboundedReceiver<u64>, passes: u64) {
        let until = async { while received.recv().await.unwrap() < passes {} };
        tokio::time::timeout(Duration::from_secs(30), until)
            .await
            .unwrap();
    }

    fn counter(vec: &prometheus::IntCounterVec, name: &str) -> u64 {
        vec.with_label_values(&[name]).get()
    }

    #[tokio::test]
    async fn a_worker_whose_pass_fails_keeps_being_run_and_its_errors_are_counted() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let board = Arc::new(WorkerBoard::default());
        let mut runner = Runner::new(metrics.clone(), board.clone());
        let stops = Arc::new(AtomicU64::new(0));
        let (worker, mut received) = counting("failing", true, &stops);
        runner.spawn(worker.clone());
        wait_for_passes(&mut received, 3).await;
        runner.stop(Duration::from_secs(30)).await;
        let passes = worker.passes.load(Ordering::SeqCst);
        assert!(passes >= 3);
        assert_eq!(counter(&metrics.worker_errors_total, "failing"), passes);
        assert_eq!(counter(&metrics.worker_passes_total, "failing"), 0);
        let report = &board.reports()["failing"];
        assert_eq!(report.errors, passes);
        assert!(report
            .last_error
            .as_deref()
            .unwrap()
            .contains("failed on purpose"));
        assert_eq!(report.last_success_unix_ms, None);
    }

    #[tokio::test]
    async fn the_metrics_count_every_pass_of_every_worker() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let board = Arc::new(WorkerBoard::default());
        let mut runner = Runner::new(metrics.clone(), board.clone());
        let stops = Arc::new(AtomicU64::new(0));
        let (worker, mut received) = counting("working", false, &stops);
        runner.spawn(worker.clone());
        wait_for_passes(&mut received, 5).await;
        runner.stop(Duration::from_secs(30)).await;
        let passes = worker.passes.load(Ordering::SeqCst);
        assert!(passes >= 5);
        assert_eq!(counter(&metrics.worker_passes_total, "working"), passes);
        assert_eq!(board.reports()["working"].passes, passes);
        assert_eq!(
            board.reports()["working"].last_pass,
            Some(Pass::Worked),
            "the last pass is shown"
        );
        let text = metrics.render();
        assert!(
            text.contains("shardlet_controller_worker_passes_total{worker=\"working\"}"),
            "{text}"
        );
        assert!(text.contains("shardlet_controller_worker_last_success_unix_seconds"));
    }

    #[tokio::test]
    async fn stop_stops_every_worker_waiting_or_serving() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let board = Arc::new(WorkerBoard::default());
        let mut runner = Runner::new(metrics, board.clone());
        let stops = Arc::new(AtomicU64::new(0));
        let (first, mut first_passes) = counting("first", false, &stops);
        let (second, _) = counting("second", true, &stops);
        runner.spawn(first);
        runner.spawn(second);
        runner.spawn(Arc::new(Serving {
            stops: stops.clone(),
        }));
        wait_for_passes(&mut first_passes, 1).await;
        // A grace longer than the test's timeout: only a clean stop returns in time.
        tokio::time::timeout(
            Duration::from_secs(30),
            runner.stop(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
        assert_eq!(stops.load(Ordering::SeqCst), 3, "every worker was stopped");
        for (name, report) in board.reports() {
            assert_eq!(report.state, WorkerState::Stopped, "{name}");
        }
    }
}
