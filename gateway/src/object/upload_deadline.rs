//! The upload deadline, as the gateway enforces it.
//!
//! One value for the whole cluster (`upload_deadline_seconds` in meta-raft's settings
//! record, `shardlet admin cluster set`), kept fresh in a [`SettingsCache`] by
//! [`refresh_settings`]. An upload — PutObject, UploadPart, CopyObject, UploadPartCopy:
//! whatever writes fragments under an intent — is measured by an [`UploadClock`] started
//! just before its intent is written, on this process's monotonic clock:
//!
//! - **while the body streams**, each wait for the next chunk ends at the deadline, and
//!   at most [`BODY_IDLE_MAX`] after the previous chunk: a client trickling its body
//!   cannot keep an upload open past the deadline, and a silent one is let go long
//!   before it (S3 itself drops a connection idle for about 20 seconds);
//! - **while fragments are written** (the body waits behind at most
//!   `SHARDLETS_IN_FLIGHT_MAX` shardlets, and the last ones are awaited at the end),
//!   the waits end at the deadline too;
//! - **before every commit batch** the clock is checked again, so an upload older than
//!   the deadline is never made visible by this gateway; it is given up (its intent
//!   turned into garbage and collected) and the client gets `RequestTimeout`.
//!
//! Why that is enough for the scrub: the controller deletes a fragment nothing
//! references only after seeing it unreferenced for its orphan grace, derived from the
//! same deadline with a margin (`controller/src/scrub.rs`, `orphan_grace`), and only if
//! no intent names its object. The collector of any gateway turns an `Uploading` intent
//! older than the deadline into `Garbage` with a compare-and-set on the intent, and
//! every commit batch is conditioned on that intent's version: of the two, exactly one
//! wins, so a late commit is refused rather than published over deleted fragments.
//! A gateway whose clock runs ahead of the writer's collects a little earlier than the
//! deadline: the writer is refused, nothing is lost.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use shardlet_model::settings::{SettingsCache, SETTINGS_REFRESH_INTERVAL};
use shardlet_model::Metadata;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// Longest wait for the next chunk of a request body: a client that sends nothing for
/// this long is gone or stuck, and holds buffers and an intent meanwhile.
pub const BODY_IDLE_MAX: Duration = Duration::from_secs(60);

/// Why an upload was stopped for time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeadlineError {
    #[error(
        "the upload did not finish within the cluster's upload deadline of {deadline_seconds} s"
    )]
    Exceeded { deadline_seconds: u64 },
    #[error("no body bytes arrived for {idle_seconds} s")]
    BodyStalled { idle_seconds: u64 },
}

/// Where a refusal happened, for `shardlet_gateway_upload_deadline_refusals_total`.
#[derive(Debug, Clone, Copy)]
pub enum RefusedAt {
    Body,
    Commit,
}

/// One upload's age against the cluster's deadline as it is now (a deadline lowered by
/// an operator applies to uploads already running).
#[derive(Clone)]
pub struct UploadClock {
    opened: Instant,
    settings: Arc<SettingsCache>,
    metrics: Arc<Metrics>,
    /// [`BODY_IDLE_MAX`], shorter in unit tests.
    idle_max: Duration,
}

impl std::fmt::Debug for UploadClock {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("UploadClock")
            .field("elapsed", &self.opened.elapsed())
            .field("deadline", &self.settings.upload_deadline())
            .finish()
    }
}

impl UploadClock {
    /// Starts now: call it before the upload's intent is written, so the clock is never
    /// younger than the intent.
    pub fn start(settings: Arc<SettingsCache>, metrics: Arc<Metrics>) -> Self {
        Self {
            opened: Instant::now(),
            settings,
            metrics,
            idle_max: BODY_IDLE_MAX,
        }
    }

    /// The same clock with another idle limit (tests, which cannot wait a minute).
    #[cfg(test)]
    pub(crate) fn with_idle_max(mut self, idle_max: Duration) -> Self {
        self.idle_max = idle_max;
        self
    }

    fn deadline(&self) -> Duration {
        self.settings.upload_deadline()
    }

    /// The instant the upload runs out of time.
    pub fn expires_at(&self) -> Instant {
        // A deadline beyond what an Instant holds (never, within the bounds) is as good
        // as a year away.
        self.opened
            .checked_add(self.deadline())
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600))
    }

    fn exceeded(&self) -> DeadlineError {
        DeadlineError::Exceeded {
            deadline_seconds: self.deadline().as_secs(),
        }
    }

    /// Ok while the upload is within the deadline; the refusal is counted under `at`.
    pub fn check(&self, at: RefusedAt) -> Result<(), DeadlineError> {
        if Instant::now() < self.expires_at() {
            return Ok(());
        }
        Err(self.refused(at, self.exceeded()))
    }

    /// Counts `error` as a refusal at `at` and returns it.
    pub fn refused(&self, at: RefusedAt, error: DeadlineError) -> DeadlineError {
        let label = match (at, error) {
            (_, DeadlineError::BodyStalled { .. }) => "body_stalled",
            (RefusedAt::Body, _) => "body",
            (RefusedAt::Commit, _) => "commit",
        };
        self.metrics
            .upload_deadline_refusals_total
            .with_label_values(&[label])
            .inc();
        tracing::info!(elapsed = ?self.opened.elapsed(), %error, "upload refused for time");
        error
    }

    /// Waits for `future` until the deadline at the latest.
    pub async fn within<F: Future>(&self, future: F) -> Result<F::Output, DeadlineError> {
        tokio::time::timeout_at(self.expires_at(), future)
            .await
            .map_err(|_| self.refused(RefusedAt::Body, self.exceeded()))
    }

    /// The next item of a request body, waiting until the deadline at the latest and at
    /// most [`BODY_IDLE_MAX`].
    pub async fn next_chunk<S>(&self, body: &mut S) -> Result<Option<S::Item>, DeadlineError>
    where
        S: Stream + Unpin,
    {
        let expires_at = self.expires_at();
        let idle_until = Instant::now() + self.idle_max;
        match tokio::time::timeout_at(expires_at.min(idle_until), body.next()).await {
            Ok(item) => Ok(item),
            Err(_) if idle_until < expires_at => Err(self.refused(
                RefusedAt::Body,
                DeadlineError::BodyStalled {
                    idle_seconds: self.idle_max.as_secs(),
                },
            )),
            Err(_) => Err(self.refused(RefusedAt::Body, self.exceeded())),
        }
    }
}

/// Keeps `settings` current: one read now, then every [`SETTINGS_REFRESH_INTERVAL`]
/// until `stop` turns true. A failed read keeps the last copy (counted, logged).
pub async fn refresh_settings(
    settings: Arc<SettingsCache>,
    metadata: Metadata,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(SETTINGS_REFRESH_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticker.tick() => refresh_once(&settings, &metadata, &metrics).await,
        }
    }
}

/// One refresh of `settings`, reflected in the deadline gauge.
pub async fn refresh_once(settings: &SettingsCache, metadata: &Metadata, metrics: &Metrics) {
    if let Err(error) = settings.refresh(metadata).await {
        metrics.settings_refresh_failures_total.inc();
        tracing::warn!(%error, deadline = ?settings.upload_deadline(), "cannot read the cluster settings; keeping the last copy");
    }
    metrics
        .upload_deadline_seconds
        .set(i64::try_from(settings.upload_deadline().as_secs()).unwrap_or(i64::MAX));
}

#[cfg(test)]
mod tests {
    //! Real time, kept short: the deadline is one second, the idle limit 100 ms.
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use shardlet_model::schema::ClusterSettings;

    use super::*;

    fn clock(deadline_seconds: u64) -> UploadClock {
        let settings = Arc::new(SettingsCache::new(ClusterSettings {
            upload_deadline_seconds: deadline_seconds,
        }));
        UploadClock::start(settings, Arc::new(Metrics::new()))
    }

    fn refusals(clock: &UploadClock, at: &str) -> u64 {
        clock
            .metrics
            .upload_deadline_refusals_total
            .with_label_values(&[at])
            .get()
    }

    /// A body that yields one chunk every `gap`, forever.
    fn trickle(gap: Duration) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        Box::pin(futures::stream::unfold((), move |()| async move {
            tokio::time::sleep(gap).await;
            Some((Ok(Bytes::from_static(b"x")), ()))
        }))
    }

    #[tokio::test]
    async fn a_trickling_body_is_cut_at_the_deadline() {
        let clock = clock(1);
        let mut body = trickle(Duration::from_millis(50));
        let mut chunks = 0;
        let error = loop {
            match clock.next_chunk(&mut body).await {
                Ok(Some(_)) => chunks += 1,
                Ok(None) => panic!("the trickle never ends"),
                Err(error) => break error,
            }
        };
        assert_eq!(
            error,
            DeadlineError::Exceeded {
                deadline_seconds: 1
            }
        );
        assert!(chunks > 0, "chunks kept coming until the deadline");
        assert!(clock.opened.elapsed() >= Duration::from_secs(1));
        assert_eq!(refusals(&clock, "body"), 1);
    }

    #[tokio::test]
    async fn a_silent_body_is_cut_after_the_idle_limit_long_before_the_deadline() {
        let clock = clock(3600).with_idle_max(Duration::from_millis(100));
        let mut body = trickle(Duration::from_secs(3600));
        let error = clock.next_chunk(&mut body).await.unwrap_err();
        assert!(
            matches!(error, DeadlineError::BodyStalled { .. }),
            "{error}"
        );
        assert_eq!(refusals(&clock, "body_stalled"), 1);
    }

    #[tokio::test]
    async fn a_lowered_deadline_applies_to_an_upload_already_running() {
        let clock = clock(3600);
        assert!(clock.check(RefusedAt::Commit).is_ok());
        clock.settings.set(ClusterSettings {
            upload_deadline_seconds: 0,
        });
        assert_eq!(
            clock.check(RefusedAt::Commit),
            Err(DeadlineError::Exceeded {
                deadline_seconds: 0
            })
        );
        assert_eq!(refusals(&clock, "commit"), 1);
    }

    #[tokio::test]
    async fn a_wait_behind_fragment_writes_ends_at_the_deadline() {
        let clock = clock(1);
        let slow = tokio::time::sleep(Duration::from_secs(3600));
        assert!(clock.within(slow).await.is_err());
        assert_eq!(self::clock(1).within(async { 7 }).await, Ok(7));
    }
}
