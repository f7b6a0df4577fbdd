//! The S3 layer: translates S3 requests (over `s3s`) to the object layer and its
//! answers back to S3. It owns S3's wire meaning — operations, headers, error codes,
//! limits, checksums, preconditions — and nothing else: it never builds a metadata
//! batch and never touches the key layout (`crate::object::commit` and the catalog do;
//! a unit test below holds this line).
//!
//! `Gateway` is the shared state and the `s3s::S3` implementation, which only
//! dispatches to the operation modules (`buckets`, `objects`, `listing`,
//! `multipart`). Operations not listed here answer 501 NotImplemented (s3s's default).

pub mod auth;
pub mod body;
pub mod buckets;
pub mod checksums;
pub mod conditions;
pub mod errors;
pub mod limits;
pub mod listing;
pub mod multipart;
pub mod objects;

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result, S3};

use crate::metrics::Metrics;
use crate::object::catalog::Catalog;
use crate::object::commit::Commit;
use crate::object::read_path::ReadPath;
use crate::object::write_path::WritePath;
use crate::s3::auth::CredentialCache;
use crate::s3::errors::error;

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
}

/// The time an object was last modified, as s3s wants it.
pub fn timestamp_of_unix_ms(unix_ms: u64) -> Timestamp {
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms))
}

impl Gateway {
    /// Counts and times one operation.
    async fn observe<T>(
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

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        request: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.observe("list_buckets", buckets::list_buckets(self, request))
            .await
    }

    async fn create_bucket(
        &self,
        request: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.observe("create_bucket", buckets::create_bucket(self, request))
            .await
    }

    async fn delete_bucket(
        &self,
        request: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.observe("delete_bucket", buckets::delete_bucket(self, request))
            .await
    }

    async fn head_bucket(
        &self,
        request: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.observe("head_bucket", buckets::head_bucket(self, request))
            .await
    }

    async fn get_bucket_location(
        &self,
        request: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.observe(
            "get_bucket_location",
            buckets::get_bucket_location(self, request),
        )
        .await
    }

    async fn get_bucket_versioning(
        &self,
        request: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.observe(
            "get_bucket_versioning",
            buckets::get_bucket_versioning(self, request),
        )
        .await
    }

    async fn get_bucket_acl(
        &self,
        request: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        self.observe("get_bucket_acl", buckets::get_bucket_acl(self, request))
            .await
    }

    async fn put_object(
        &self,
        request: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.observe("put_object", objects::put_object(self, request))
            .await
    }

    async fn get_object(
        &self,
        request: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.observe("get_object", objects::get_object(self, request))
            .await
    }

    async fn head_object(
        &self,
        request: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.observe("head_object", objects::head_object(self, request))
            .await
    }

    async fn delete_object(
        &self,
        request: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.observe("delete_object", objects::delete_object(self, request))
            .await
    }

    async fn delete_objects(
        &self,
        request: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.observe("delete_objects", objects::delete_objects(self, request))
            .await
    }

    async fn copy_object(
        &self,
        request: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.observe("copy_object", objects::copy_object(self, request))
            .await
    }

    async fn list_objects(
        &self,
        request: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.observe("list_objects", listing::list_objects(self, request))
            .await
    }

    async fn list_objects_v2(
        &self,
        request: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.observe("list_objects_v2", listing::list_objects_v2(self, request))
            .await
    }

    async fn list_multipart_uploads(
        &self,
        request: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.observe(
            "list_multipart_uploads",
            listing::list_multipart_uploads(self, request),
        )
        .await
    }

    async fn create_multipart_upload(
        &self,
        request: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.observe(
            "create_multipart_upload",
            multipart::create_multipart_upload(self, request),
        )
        .await
    }

    async fn upload_part(
        &self,
        request: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.observe("upload_part", multipart::upload_part(self, request))
            .await
    }

    async fn upload_part_copy(
        &self,
        request: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.observe(
            "upload_part_copy",
            multipart::upload_part_copy(self, request),
        )
        .await
    }

    async fn complete_multipart_upload(
        &self,
        request: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.observe(
            "complete_multipart_upload",
            multipart::complete_multipart_upload(self, request),
        )
        .await
    }

    async fn abort_multipart_upload(
        &self,
        request: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.observe(
            "abort_multipart_upload",
            multipart::abort_multipart_upload(self, request),
        )
        .await
    }

    async fn list_parts(
        &self,
        request: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.observe("list_parts", multipart::list_parts(self, request))
            .await
    }
}

#[cfg(test)]
mod layering_tests {
    /// The S3 layer's files, as compiled into this crate.
    const S3_LAYER: [(&str, &str); 10] = [
        ("auth.rs", include_str!("auth.rs")),
        ("body.rs", include_str!("body.rs")),
        ("buckets.rs", include_str!("buckets.rs")),
        ("checksums.rs", include_str!("checksums.rs")),
        ("conditions.rs", include_str!("conditions.rs")),
        ("errors.rs", include_str!("errors.rs")),
        ("limits.rs", include_str!("limits.rs")),
        ("listing.rs", include_str!("listing.rs")),
        ("multipart.rs", include_str!("multipart.rs")),
        ("objects.rs", include_str!("objects.rs")),
    ];

    #[test]
    fn the_s3_layer_never_builds_a_batch_nor_touches_the_key_layout() {
        let forbidden = ["Batch", "keys::", "schema::keys", "store::"];
        for (file, text) in S3_LAYER
            .iter()
            .chain([("mod.rs", include_str!("mod.rs"))].iter())
        {
            for line in text.lines() {
                // This test names what it forbids; its own lines are not a use.
                if line.contains("forbidden") || line.trim_start().starts_with("//") {
                    continue;
                }
                for word in forbidden {
                    assert!(
                        !line.contains(word),
                        "s3/{file} uses `{word}` (the S3 layer goes through crate::object): {line}"
                    );
                }
            }
        }
    }
}
