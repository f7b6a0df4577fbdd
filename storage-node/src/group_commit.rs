//! Group commit of directory entries.
//!
//! A rename is durable only once its directory has been fsync'd. One fsync of a directory
//! covers every rename into it that completed before the fsync started, so instead of one
//! fsync per PUT, each directory has a syncer: callers register *after* their rename, the
//! syncer takes everything registered so far, issues one `fsync(dir)`, and answers all of
//! them. Callers that register while an fsync is running wait for the next one (their
//! rename may not be covered by the running one). The batch is bounded by the number of
//! writes the node admits at once (`max_concurrent_writes`).
//!
//! A failed directory fsync answers every waiter of its round with the error and trips
//! the node's [`WriteFence`]: none of those renames is known to be durable, and no later
//! fsync of the directory could say otherwise (see `write_fence.rs`).

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::metrics::NodeMetrics;
use crate::write_fence::WriteFence;

type Waiter = oneshot::Sender<Result<(), Arc<io::Error>>>;

/// The promise of a directory fsync covering the caller's rename or unlink.
#[must_use = "a write is durable only once its ticket has been awaited"]
pub struct SyncTicket(oneshot::Receiver<Result<(), Arc<io::Error>>>);

impl SyncTicket {
    /// A promise already kept: for writes that were durable before they returned.
    pub fn done() -> Self {
        let (sender, receiver) = oneshot::channel();
        let _ = sender.send(Ok(()));
        Self(receiver)
    }

    pub async fn wait(self) -> io::Result<()> {
        match self.0.await {
            Ok(result) => result.map_err(|error| io::Error::new(error.kind(), error.to_string())),
            Err(_) => Err(io::Error::other("directory syncer stopped")),
        }
    }
}

pub struct DirectorySyncer {
    directory: File,
    /// For the fence's reason: `fragments/3a`.
    name: String,
    state: Mutex<SyncerState>,
    metrics: Arc<NodeMetrics>,
    fence: Arc<WriteFence>,
    fsyncs_completed: AtomicU64,
}

#[derive(Default)]
struct SyncerState {
    waiters: Vec<Waiter>,
    running: bool,
}

impl DirectorySyncer {
    pub fn new(
        directory: File,
        name: String,
        metrics: Arc<NodeMetrics>,
        fence: Arc<WriteFence>,
    ) -> Arc<Self> {
        Arc::new(Self {
            directory,
            name,
            state: Mutex::new(SyncerState::default()),
            metrics,
            fence,
            fsyncs_completed: AtomicU64::new(0),
        })
    }

    /// Returns once an fsync of the directory that started after this call has
    /// completed: every rename into the directory finished before the call is durable.
    pub async fn sync(self: &Arc<Self>) -> io::Result<()> {
        let (ticket, start_worker) = self.register();
        if start_worker {
            let syncer = Arc::clone(self);
            tokio::task::spawn_blocking(move || syncer.run());
        }
        ticket.wait().await
    }

    /// The same promise as [`Self::sync`], for a caller already on a blocking thread
    /// (the writer, right after its rename): if no fsync is running, the caller does one
    /// round itself, which saves a thread hand-off per write when writes go to different
    /// directories. The caller then awaits the ticket.
    pub fn sync_from_blocking_thread(self: &Arc<Self>) -> SyncTicket {
        let (ticket, run_here) = self.register();
        if run_here {
            // One round here (it includes this caller), then whoever arrived meanwhile
            // is served by a syncer thread, so this write is not held up by later ones.
            self.run_round();
            let more_waiting = {
                let mut state = self.lock_state();
                state.running = !state.waiters.is_empty();
                state.running
            };
            if more_waiting {
                let syncer = Arc::clone(self);
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        runtime.spawn_blocking(move || syncer.run());
                    }
                    Err(_) => syncer.run(),
                }
            }
        }
        ticket
    }

    /// Adds a waiter; true if the caller must start the syncing (none was running).
    fn register(&self) -> (SyncTicket, bool) {
        let (sender, receiver) = oneshot::channel();
        let mut state = self.lock_state();
        state.waiters.push(sender);
        let start = !std::mem::replace(&mut state.running, true);
        (SyncTicket(receiver), start)
    }

    /// Drains the waiter list in rounds until it is empty. Runs on a blocking thread.
    fn run(&self) {
        while self.run_round() {}
        // `run_round` returned false with the lock released and `running` cleared.
    }

    /// Takes every waiter registered so far, fsyncs once, answers them all. Returns
    /// false (and marks the syncer idle) if there was nobody to serve.
    fn run_round(&self) -> bool {
        let batch = {
            let mut state = self.lock_state();
            if state.waiters.is_empty() {
                state.running = false;
                return false;
            }
            std::mem::take(&mut state.waiters)
        };
        let started = Instant::now();
        let result = self.directory.sync_all().map_err(Arc::new);
        self.fsyncs_completed.fetch_add(1, Ordering::SeqCst);
        self.metrics
            .fsync_seconds
            .with_label_values(&["directory"])
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .group_commit_batch_size
            .observe(batch.len() as f64);
        if let Err(error) = &result {
            self.metrics.fsync_failures_total.inc();
            self.fence
                .trip(&format!("directory fsync of {}", self.name), error);
            tracing::error!(directory = %self.name, %error, writes = batch.len(), "directory fsync failed; renames in it are not known to be durable");
        }
        for waiter in batch {
            // A waiter that went away (client disconnected) needs no answer.
            let _ = waiter.send(result.clone());
        }
        true
    }

    /// How many directory fsyncs have completed (successfully or not).
    pub fn fsyncs_completed(&self) -> u64 {
        self.fsyncs_completed.load(Ordering::SeqCst)
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, SyncerState> {
        // The state is a list and a flag, valid after any panic; keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_caller_is_answered_only_after_an_fsync_that_started_after_it() {
        let directory = tempfile::tempdir().unwrap();
        let metrics = Arc::new(NodeMetrics::new().unwrap());
        let syncer = DirectorySyncer::new(
            File::open(directory.path()).unwrap(),
            "test".into(),
            metrics.clone(),
            WriteFence::new(metrics),
        );
        let callers: Vec<_> = (0..64)
            .map(|caller| {
                let syncer = Arc::clone(&syncer);
                tokio::spawn(async move {
                    let completed_before = syncer.fsyncs_completed();
                    // Half the callers come from blocking threads (writers after their
                    // rename), half from async tasks: both paths share the rounds.
                    if caller % 2 == 0 {
                        let blocking_syncer = Arc::clone(&syncer);
                        tokio::task::spawn_blocking(move || {
                            blocking_syncer.sync_from_blocking_thread()
                        })
                        .await
                        .unwrap()
                        .wait()
                        .await
                        .unwrap();
                    } else {
                        syncer.sync().await.unwrap();
                    }
                    // The answer comes after an fsync that was not yet complete when
                    // the caller registered.
                    assert!(syncer.fsyncs_completed() > completed_before);
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap();
        }
        assert!(syncer.fsyncs_completed() >= 1);
        assert!(syncer.fsyncs_completed() <= 64);
    }
}
