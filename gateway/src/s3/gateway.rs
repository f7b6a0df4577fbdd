//! The S3 layer's shared state, and what every operation needs from it: the caller's
//! owner, per-operation metrics, S3's timestamps.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Result};
use shardlet_model::schema::BucketRecord;
use shardlet_model::Stored;

use crate::metrics::Metrics;
use crate::object::catalog::Catalog;
use crate::object::commit::Commit;
use crate::object::read_path::ReadPath;
use crate::object::write_path::WritePath;
use crate::s3::auth::CredentialCache;
use crate::s3::errors::{error, from_catalog};

pub struct Gateway {
    /// Reads of buckets, objects, uploads.
    pub catalog: Catalog,
    /// Every metadata change.
    pub commit: Arc<Commit>,
    pub writer: Arc<WritePath>,
    pub reader: ReadPath,
    pub metrics: Arc<Metrics>,
    pub credentials: Arc<CredentialCache>,
    /// Reported by GetBucketLocation and HeadBucket.
    pub region: String,
}

impl Gateway {
    /// The owner of the request's access key (s3s has already verified the signature
    /// and refused anonymous requests).
    pub async fn owner<T>(&self, request: &S3Request<T>) -> S3Result<String> {
        match &request.credentials {
            Some(credentials) => self.credentials.owner_of(&credentials.access_key).await,
            None => Err(error(S3ErrorCode::AccessDenied, "Authentication required")),
        }
    }

    /// The live bucket `name`, read fresh; `NoSuchBucket` when there is none.
    pub async fn bucket(&self, name: &str) -> S3Result<Stored<BucketRecord>> {
        self.catalog
            .existing_bucket(name)
            .await
            .map_err(from_catalog)
    }
}

/// The time an object was last modified, as s3s wants it.
pub fn timestamp_of_unix_ms(unix_ms: u64) -> Timestamp {
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms))
}

impl Gateway {
    /// Counts and times one operation.
    pub(crate) async fn observe<T>(
        &self,
        operation: &'static str,
        work: impl std::future::Future<Output = S3Result<T>>,
    ) -> S3Result<T> {
        let started = std::time::Instant::now();
        let result = work.await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.code().as_str(),
        };
        self.metrics
            .requests_total
            .with_label_values(&[operation, outcome])
            .inc();
        self.metrics
            .request_seconds
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        result
    }
}
