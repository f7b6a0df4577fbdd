//! SigV4 secrets for s3s, looked up in meta-raft with a short-lived cache (unknown keys
//! are cached too, so a flood of bad keys cannot flood the metadata service).
//! Anonymous requests never get here: s3s's default access check refuses them with
//! AccessDenied once an authenticator is installed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3ErrorCode, S3Result};

use crate::metrics::Metrics;
use crate::object::catalog::Catalog;
use crate::s3::errors::{error, from_catalog};

/// How long a looked-up key is trusted; a revoked key stops working within this.
pub const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(10);
/// Cached keys; past this the cache is cleared (simple and bounded).
pub const CREDENTIAL_CACHE_ENTRIES_MAX: usize = 10_000;

#[derive(Clone)]
struct Entry {
    fetched: Instant,
    /// (secret, owner), or `None` for an unknown key.
    found: Option<(String, String)>,
}

pub struct CredentialCache {
    catalog: Catalog,
    metrics: Arc<Metrics>,
    entries: Mutex<HashMap<String, Entry>>,
}

impl CredentialCache {
    pub fn new(catalog: Catalog, metrics: Arc<Metrics>) -> Self {
        Self {
            catalog,
            metrics,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// (secret, owner) for a key, or `None` if the key does not exist.
    pub async fn lookup(&self, access_key: &str) -> S3Result<Option<(String, String)>> {
        if let Ok(entries) = self.entries.lock() {
            if let Some(entry) = entries.get(access_key) {
                if entry.fetched.elapsed() < CREDENTIAL_CACHE_TTL {
                    self.metrics
                        .credential_cache_total
                        .with_label_values(&["hit"])
                        .inc();
                    return Ok(entry.found.clone());
                }
            }
        }
        let found = self
            .catalog
            .credential(access_key)
            .await
            .map_err(from_catalog)?
            .map(|record| (record.secret_key.0, record.owner));
        let label = if found.is_some() { "miss" } else { "unknown" };
        self.metrics
            .credential_cache_total
            .with_label_values(&[label])
            .inc();
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CREDENTIAL_CACHE_ENTRIES_MAX {
                entries.clear();
            }
            entries.insert(
                access_key.to_string(),
                Entry {
                    fetched: Instant::now(),
                    found: found.clone(),
                },
            );
        }
        Ok(found)
    }

    /// The owner of an (already authenticated) access key.
    pub async fn owner_of(&self, access_key: &str) -> S3Result<String> {
        match self.lookup(access_key).await? {
            Some((_, owner)) => Ok(owner),
            None => Err(error(
                S3ErrorCode::InvalidAccessKeyId,
                "The access key does not exist",
            )),
        }
    }
}

/// The s3s hook.
pub struct Authenticator(pub Arc<CredentialCache>);

#[async_trait::async_trait]
impl S3Auth for Authenticator {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key.is_empty() || access_key.len() > 128 {
            return Err(error(
                S3ErrorCode::InvalidAccessKeyId,
                "Malformed access key",
            ));
        }
        match self.0.lookup(access_key).await? {
            Some((secret, _)) => Ok(SecretKey::from(secret)),
            None => Err(error(
                S3ErrorCode::InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records.",
            )),
        }
    }
}
