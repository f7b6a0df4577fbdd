//! Settings every process must agree on, stored once in meta-raft (`g/settings`, a
//! [`ClusterSettings`] record), changed by an operator (`shardlet admin cluster set`),
//! and read by the gateway and the controller through a [`SettingsCache`].
//!
//! Why one record and not flags: the upload deadline used to be two flags, the
//! gateway's upload timeout and the controller's orphan grace, and nothing kept them
//! consistent: an upload slower than the orphan grace could commit after the scrub had
//! removed its first fragments. One value in meta-raft, from which the controller
//! derives its grace, cannot disagree with itself.
//!
//! Freshness: each process re-reads the record every [`SETTINGS_REFRESH_INTERVAL`]
//! (one linearizable point read), so a change applies everywhere within about that
//! long, without a restart. A process that cannot read it keeps the last value it read
//! (at start-up: the default) and says so in its log; the controller additionally
//! refuses to delete orphans while its copy is older than it can vouch for (see the
//! controller's scrub).

use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::access::{Metadata, Stored, UpdateError};
use crate::schema::{keys, ClusterSettings};
pub use crate::schema::{
    UPLOAD_DEADLINE_SECONDS_DEFAULT, UPLOAD_DEADLINE_SECONDS_MAX, UPLOAD_DEADLINE_SECONDS_MIN,
};
use crate::store::MetadataError;

/// How often gateways and controllers re-read the settings record.
pub const SETTINGS_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// Compare-and-set attempts of one operator change before giving up.
const UPDATE_ATTEMPTS_MAX: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "upload-deadline-seconds must be from {UPLOAD_DEADLINE_SECONDS_MIN} to \
         {UPLOAD_DEADLINE_SECONDS_MAX} (7 days), got {0}"
    )]
    UploadDeadlineOutOfBounds(u64),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("the settings changed {attempts} times while being updated; retry")]
    Contended { attempts: usize },
}

/// Checks every setting against its bounds.
pub fn validate(settings: &ClusterSettings) -> Result<(), SettingsError> {
    let deadline = settings.upload_deadline_seconds;
    if !(UPLOAD_DEADLINE_SECONDS_MIN..=UPLOAD_DEADLINE_SECONDS_MAX).contains(&deadline) {
        return Err(SettingsError::UploadDeadlineOutOfBounds(deadline));
    }
    Ok(())
}

/// The settings as stored now (linearizable), defaults when no operator set any. A
/// record that does not decode (a newer format) or holds a value out of bounds is an
/// error, never silently replaced by defaults.
pub async fn read(metadata: &Metadata) -> Result<ClusterSettings, SettingsError> {
    let settings = metadata
        .read::<ClusterSettings>(keys::CLUSTER_SETTINGS.as_bytes())
        .await?
        .map(|stored| stored.record)
        .unwrap_or_default();
    validate(&settings)?;
    Ok(settings)
}

/// Sets the upload deadline (compare-and-set on the record: a concurrent change of
/// another setting is never overwritten with a stale copy).
pub async fn set_upload_deadline(
    metadata: &Metadata,
    seconds: u64,
) -> Result<Stored<ClusterSettings>, SettingsError> {
    validate(&ClusterSettings {
        upload_deadline_seconds: seconds,
    })?;
    metadata
        .update::<ClusterSettings, SettingsError, _>(
            keys::CLUSTER_SETTINGS.as_bytes(),
            UPDATE_ATTEMPTS_MAX,
            |current| {
                let mut next = current.cloned().unwrap_or_default();
                next.upload_deadline_seconds = seconds;
                Ok(next)
            },
        )
        .await
        .map_err(|error| match error {
            UpdateError::Metadata(error) => SettingsError::Metadata(error),
            UpdateError::Refused(error) => error,
            UpdateError::Contended { attempts } => SettingsError::Contended { attempts },
        })
}

/// One process's copy of the settings: read often (every upload asks for the
/// deadline), refreshed every [`SETTINGS_REFRESH_INTERVAL`] by the process's own loop.
#[derive(Debug)]
pub struct SettingsCache {
    state: RwLock<CacheState>,
}

#[derive(Debug, Clone)]
struct CacheState {
    settings: ClusterSettings,
    /// When the settings were last read successfully; `None`: never (defaults).
    refreshed: Option<Instant>,
}

impl Default for SettingsCache {
    fn default() -> Self {
        Self::new(ClusterSettings::default())
    }
}

impl SettingsCache {
    /// A cache holding `initial` until the first refresh. Not validated: tests start
    /// from values an operator could not set (a zero deadline, say).
    pub fn new(initial: ClusterSettings) -> Self {
        Self {
            state: RwLock::new(CacheState {
                settings: initial,
                refreshed: None,
            }),
        }
    }

    /// The settings as last read (or the initial ones).
    pub fn current(&self) -> ClusterSettings {
        self.lock_read().settings.clone()
    }

    /// The upload deadline as last read.
    pub fn upload_deadline(&self) -> Duration {
        Duration::from_secs(self.lock_read().settings.upload_deadline_seconds)
    }

    /// The settings if they were read successfully within `max_age`; `None` when the
    /// copy is older (or was never read): a caller whose safety depends on the value
    /// being current must not act on it then.
    pub fn fresh_within(&self, max_age: Duration) -> Option<ClusterSettings> {
        let state = self.lock_read();
        state
            .refreshed
            .filter(|at| at.elapsed() <= max_age)
            .map(|_| state.settings.clone())
    }

    /// Reads the record and, when it is valid, keeps it. On an error the previous copy
    /// stays (and stays as old as it was).
    pub async fn refresh(&self, metadata: &Metadata) -> Result<ClusterSettings, SettingsError> {
        let settings = read(metadata).await?;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.settings != settings {
            tracing::info!(
                from = ?state.settings,
                to = ?settings,
                "cluster settings changed"
            );
        }
        state.settings = settings.clone();
        state.refreshed = Some(Instant::now());
        Ok(settings)
    }

    /// Replaces the copy (tests; a process that just wrote the record itself).
    pub fn set(&self, settings: ClusterSettings) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.settings = settings;
        state.refreshed = Some(Instant::now());
    }

    fn lock_read(&self) -> std::sync::RwLockReadGuard<'_, CacheState> {
        // Plain data, valid after any panic of a writer.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::memory::InMemoryMetadata;
    use crate::schema::encode;
    use crate::store::Batch;

    fn metadata() -> Metadata {
        Metadata::new(Arc::new(InMemoryMetadata::default()))
    }

    #[tokio::test]
    async fn absent_settings_read_as_the_defaults() {
        let settings = read(&metadata()).await.unwrap();
        assert_eq!(settings.upload_deadline_seconds, 3600);
        assert_eq!(settings, ClusterSettings::default());
    }

    #[tokio::test]
    async fn a_deadline_set_is_read_back_and_refreshes_a_cache() {
        let metadata = metadata();
        let cache = SettingsCache::default();
        assert!(
            cache.fresh_within(Duration::from_secs(60)).is_none(),
            "never read: not fresh"
        );
        set_upload_deadline(&metadata, 90).await.unwrap();
        cache.refresh(&metadata).await.unwrap();
        assert_eq!(cache.upload_deadline(), Duration::from_secs(90));
        assert_eq!(
            cache
                .fresh_within(Duration::from_secs(60))
                .map(|settings| settings.upload_deadline_seconds),
            Some(90)
        );
        let stored = set_upload_deadline(&metadata, 120).await.unwrap();
        assert_eq!(stored.record.upload_deadline_seconds, 120);
        assert_eq!(read(&metadata).await.unwrap().upload_deadline_seconds, 120);
    }

    #[tokio::test]
    async fn deadlines_out_of_bounds_are_refused_with_the_bounds_named() {
        let metadata = metadata();
        for seconds in [0, UPLOAD_DEADLINE_SECONDS_MAX + 1, u64::MAX] {
            let error = set_upload_deadline(&metadata, seconds).await.unwrap_err();
            assert!(
                matches!(error, SettingsError::UploadDeadlineOutOfBounds(value) if value == seconds),
                "{error}"
            );
            let message = error.to_string();
            assert!(message.contains("from 1 to 604800"), "{message}");
        }
        for seconds in [UPLOAD_DEADLINE_SECONDS_MIN, UPLOAD_DEADLINE_SECONDS_MAX] {
            set_upload_deadline(&metadata, seconds).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_bad_stored_record_is_an_error_and_the_cache_keeps_its_copy() {
        let metadata = metadata();
        let cache = SettingsCache::default();
        set_upload_deadline(&metadata, 600).await.unwrap();
        cache.refresh(&metadata).await.unwrap();
        // Written around the bounds check (by hand, or by a build with other bounds).
        let mut batch = Batch::default();
        batch.put(
            keys::CLUSTER_SETTINGS.as_bytes(),
            encode(&ClusterSettings {
                upload_deadline_seconds: 0,
            }),
        );
        metadata.apply(batch).await.unwrap();
        assert!(matches!(
            cache.refresh(&metadata).await,
            Err(SettingsError::UploadDeadlineOutOfBounds(0))
        ));
        assert_eq!(cache.upload_deadline(), Duration::from_secs(600));
        // A newer format is an error too, never "defaults".
        let mut batch = Batch::default();
        batch.put(keys::CLUSTER_SETTINGS.as_bytes(), vec![9, b'{', b'}']);
        metadata.apply(batch).await.unwrap();
        assert!(matches!(
            cache.refresh(&metadata).await,
            Err(SettingsError::Metadata(MetadataError::Corrupt(_)))
        ));
        assert_eq!(cache.upload_deadline(), Duration::from_secs(600));
    }

    #[test]
    fn a_record_without_the_field_decodes_with_the_default() {
        let decoded: ClusterSettings = crate::schema::decode(&[1, b'{', b'}']).unwrap();
        assert_eq!(
            decoded.upload_deadline_seconds,
            UPLOAD_DEADLINE_SECONDS_DEFAULT
        );
    }
}
