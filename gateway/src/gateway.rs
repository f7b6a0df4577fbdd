//! The S3 service: shared state and the `s3s::S3` implementation, which only dispatches
//! to the operation modules (`s3_buckets`, `s3_objects`, `s3_listing`, `s3_multipart`).
//! Operations not listed here answer 501 NotImplemented (s3s's default).

use std::sync::Arc;

use bytes::Bytes;
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result, S3};

use crate::catalog::Catalog;
use crate::errors::error;
use crate::metrics::Metrics;
use crate::read_path::ReadPath;
use crate::s3_auth::CredentialCache;
use crate::write_path::WritePath;

pub struct Gateway {
    pub catalog: Catalog,
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

/// A response body fed by a task through a bounded channel. The channel makes the body
/// `Sync` (s3s needs it) and keeps read-ahead in the producing task; an `Err` item
/// makes hyper abort the response, so a failed read never looks like a short object.
pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures::Stream for ChannelBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(context)
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
        self.observe(
            "list_buckets",
            crate::s3_buckets::list_buckets(self, request),
        )
        .await
    }

    async fn create_bucket(
        &self,
        request: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.observe(
            "create_bucket",
            crate::s3_buckets::create_bucket(self, request),
        )
        .await
    }

    async fn delete_bucket(
        &self,
        request: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.observe(
            "delete_bucket",
            crate::s3_buckets::delete_bucket(self, request),
        )
        .await
    }

    async fn head_bucket(
        &self,
        request: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.observe("head_bucket", crate::s3_buckets::head_bucket(self, request))
            .await
    }

    async fn get_bucket_location(
        &self,
        request: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.observe(
            "get_bucket_location",
            crate::s3_buckets::get_bucket_location(self, request),
        )
        .await
    }

    async fn get_bucket_versioning(
        &self,
        request: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.observe(
            "get_bucket_versioning",
            crate::s3_buckets::get_bucket_versioning(self, request),
        )
        .await
    }

    async fn get_bucket_acl(
        &self,
        request: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        self.observe(
            "get_bucket_acl",
            crate::s3_buckets::get_bucket_acl(self, request),
        )
        .await
    }

    async fn put_object(
        &self,
        request: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.observe("put_object", crate::s3_objects::put_object(self, request))
            .await
    }

    async fn get_object(
        &self,
        request: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.observe("get_object", crate::s3_objects::get_object(self, request))
            .await
    }

    async fn head_object(
        &self,
        request: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.observe("head_object", crate::s3_objects::head_object(self, request))
            .await
    }

    async fn delete_object(
        &self,
        request: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.observe(
            "delete_object",
            crate::s3_objects::delete_object(self, request),
        )
        .await
    }

    async fn delete_objects(
        &self,
        request: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.observe(
            "delete_objects",
            crate::s3_objects::delete_objects(self, request),
        )
        .await
    }

    async fn copy_object(
        &self,
        request: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.observe("copy_object", crate::s3_objects::copy_object(self, request))
            .await
    }

    async fn list_objects(
        &self,
        request: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.observe(
            "list_objects",
            crate::s3_listing::list_objects(self, request),
        )
        .await
    }

    async fn list_objects_v2(
        &self,
        request: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.observe(
            "list_objects_v2",
            crate::s3_listing::list_objects_v2(self, request),
        )
        .await
    }

    async fn list_multipart_uploads(
        &self,
        request: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.observe(
            "list_multipart_uploads",
            crate::s3_listing::list_multipart_uploads(self, request),
        )
        .await
    }

    async fn create_multipart_upload(
        &self,
        request: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.observe(
            "create_multipart_upload",
            crate::s3_multipart::create_multipart_upload(self, request),
        )
        .await
    }

    async fn upload_part(
        &self,
        request: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.observe(
            "upload_part",
            crate::s3_multipart::upload_part(self, request),
        )
        .await
    }

    async fn upload_part_copy(
        &self,
        request: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.observe(
            "upload_part_copy",
            crate::s3_multipart::upload_part_copy(self, request),
        )
        .await
    }

    async fn complete_multipart_upload(
        &self,
        request: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.observe(
            "complete_multipart_upload",
            crate::s3_multipart::complete_multipart_upload(self, request),
        )
        .await
    }

    async fn abort_multipart_upload(
        &self,
        request: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.observe(
            "abort_multipart_upload",
            crate::s3_multipart::abort_multipart_upload(self, request),
        )
        .await
    }

    async fn list_parts(
        &self,
        request: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.observe("list_parts", crate::s3_multipart::list_parts(self, request))
            .await
    }
}
