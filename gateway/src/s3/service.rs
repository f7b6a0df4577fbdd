//! The `s3s::S3` implementation: every operation S3 clients call, dispatched to its
//! module (`buckets`, `objects`, `listing`, `multipart`, `configuration`) and counted
//! and timed.
//! Operations not listed here answer 501 NotImplemented (s3s's default).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, S3};

use crate::s3::gateway::Gateway;
use crate::s3::{buckets, configuration, listing, multipart, objects, tagging};

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

    // --- configurations Shardlet does not have (`configuration.rs`) ---

    async fn get_bucket_encryption(
        &self,
        request: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        self.observe(
            "get_bucket_encryption",
            configuration::get_bucket_encryption(self, request),
        )
        .await
    }

    async fn get_bucket_replication(
        &self,
        request: S3Request<GetBucketReplicationInput>,
    ) -> S3Result<S3Response<GetBucketReplicationOutput>> {
        self.observe(
            "get_bucket_replication",
            configuration::get_bucket_replication(self, request),
        )
        .await
    }

    async fn get_object_lock_configuration(
        &self,
        request: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        self.observe(
            "get_object_lock_configuration",
            configuration::get_object_lock_configuration(self, request),
        )
        .await
    }

    async fn get_bucket_website(
        &self,
        request: S3Request<GetBucketWebsiteInput>,
    ) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
        self.observe(
            "get_bucket_website",
            configuration::get_bucket_website(self, request),
        )
        .await
    }

    async fn get_bucket_ownership_controls(
        &self,
        request: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        self.observe(
            "get_bucket_ownership_controls",
            configuration::get_bucket_ownership_controls(self, request),
        )
        .await
    }

    async fn get_public_access_block(
        &self,
        request: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        self.observe(
            "get_public_access_block",
            configuration::get_public_access_block(self, request),
        )
        .await
    }

    async fn get_bucket_logging(
        &self,
        request: S3Request<GetBucketLoggingInput>,
    ) -> S3Result<S3Response<GetBucketLoggingOutput>> {
        self.observe(
            "get_bucket_logging",
            configuration::get_bucket_logging(self, request),
        )
        .await
    }

    async fn get_bucket_notification_configuration(
        &self,
        request: S3Request<GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
        self.observe(
            "get_bucket_notification_configuration",
            configuration::get_bucket_notification_configuration(self, request),
        )
        .await
    }

    async fn get_bucket_accelerate_configuration(
        &self,
        request: S3Request<GetBucketAccelerateConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketAccelerateConfigurationOutput>> {
        self.observe(
            "get_bucket_accelerate_configuration",
            configuration::get_bucket_accelerate_configuration(self, request),
        )
        .await
    }

    async fn get_bucket_request_payment(
        &self,
        request: S3Request<GetBucketRequestPaymentInput>,
    ) -> S3Result<S3Response<GetBucketRequestPaymentOutput>> {
        self.observe(
            "get_bucket_request_payment",
            configuration::get_bucket_request_payment(self, request),
        )
        .await
    }

    async fn get_object_acl(
        &self,
        request: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        self.observe(
            "get_object_acl",
            configuration::get_object_acl(self, request),
        )
        .await
    }

    async fn put_bucket_encryption(
        &self,
        request: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        self.observe(
            "put_bucket_encryption",
            configuration::put_bucket_encryption(self, request),
        )
        .await
    }

    async fn put_bucket_replication(
        &self,
        request: S3Request<PutBucketReplicationInput>,
    ) -> S3Result<S3Response<PutBucketReplicationOutput>> {
        self.observe(
            "put_bucket_replication",
            configuration::put_bucket_replication(self, request),
        )
        .await
    }

    async fn put_object_lock_configuration(
        &self,
        request: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        self.observe(
            "put_object_lock_configuration",
            configuration::put_object_lock_configuration(self, request),
        )
        .await
    }

    async fn put_bucket_website(
        &self,
        request: S3Request<PutBucketWebsiteInput>,
    ) -> S3Result<S3Response<PutBucketWebsiteOutput>> {
        self.observe(
            "put_bucket_website",
            configuration::put_bucket_website(self, request),
        )
        .await
    }

    async fn put_bucket_ownership_controls(
        &self,
        request: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        self.observe(
            "put_bucket_ownership_controls",
            configuration::put_bucket_ownership_controls(self, request),
        )
        .await
    }

    async fn put_public_access_block(
        &self,
        request: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        self.observe(
            "put_public_access_block",
            configuration::put_public_access_block(self, request),
        )
        .await
    }

    async fn put_bucket_acl(
        &self,
        request: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        self.observe(
            "put_bucket_acl",
            configuration::put_bucket_acl(self, request),
        )
        .await
    }

    async fn put_object_acl(
        &self,
        request: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        self.observe(
            "put_object_acl",
            configuration::put_object_acl(self, request),
        )
        .await
    }

    async fn put_bucket_logging(
        &self,
        request: S3Request<PutBucketLoggingInput>,
    ) -> S3Result<S3Response<PutBucketLoggingOutput>> {
        self.observe(
            "put_bucket_logging",
            configuration::put_bucket_logging(self, request),
        )
        .await
    }

    async fn put_bucket_notification_configuration(
        &self,
        request: S3Request<PutBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketNotificationConfigurationOutput>> {
        self.observe(
            "put_bucket_notification_configuration",
            configuration::put_bucket_notification_configuration(self, request),
        )
        .await
    }

    async fn put_bucket_accelerate_configuration(
        &self,
        request: S3Request<PutBucketAccelerateConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketAccelerateConfigurationOutput>> {
        self.observe(
            "put_bucket_accelerate_configuration",
            configuration::put_bucket_accelerate_configuration(self, request),
        )
        .await
    }

    async fn put_bucket_request_payment(
        &self,
        request: S3Request<PutBucketRequestPaymentInput>,
    ) -> S3Result<S3Response<PutBucketRequestPaymentOutput>> {
        self.observe(
            "put_bucket_request_payment",
            configuration::put_bucket_request_payment(self, request),
        )
        .await
    }

    async fn delete_bucket_encryption(
        &self,
        request: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.observe(
            "delete_bucket_encryption",
            configuration::delete_bucket_encryption(self, request),
        )
        .await
    }

    async fn delete_bucket_replication(
        &self,
        request: S3Request<DeleteBucketReplicationInput>,
    ) -> S3Result<S3Response<DeleteBucketReplicationOutput>> {
        self.observe(
            "delete_bucket_replication",
            configuration::delete_bucket_replication(self, request),
        )
        .await
    }

    async fn delete_bucket_website(
        &self,
        request: S3Request<DeleteBucketWebsiteInput>,
    ) -> S3Result<S3Response<DeleteBucketWebsiteOutput>> {
        self.observe(
            "delete_bucket_website",
            configuration::delete_bucket_website(self, request),
        )
        .await
    }

    async fn delete_bucket_ownership_controls(
        &self,
        request: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        self.observe(
            "delete_bucket_ownership_controls",
            configuration::delete_bucket_ownership_controls(self, request),
        )
        .await
    }

    async fn delete_public_access_block(
        &self,
        request: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        self.observe(
            "delete_public_access_block",
            configuration::delete_public_access_block(self, request),
        )
        .await
    }

    async fn get_bucket_cors(
        &self,
        request: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        self.observe(
            "get_bucket_cors",
            configuration::get_bucket_cors(self, request),
        )
        .await
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        request: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        self.observe(
            "get_bucket_lifecycle_configuration",
            configuration::get_bucket_lifecycle_configuration(self, request),
        )
        .await
    }

    async fn get_bucket_policy(
        &self,
        request: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        self.observe(
            "get_bucket_policy",
            configuration::get_bucket_policy(self, request),
        )
        .await
    }

    async fn get_bucket_policy_status(
        &self,
        request: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        self.observe(
            "get_bucket_policy_status",
            configuration::get_bucket_policy_status(self, request),
        )
        .await
    }

    async fn put_bucket_cors(
        &self,
        request: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        self.observe(
            "put_bucket_cors",
            configuration::put_bucket_cors(self, request),
        )
        .await
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        request: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        self.observe(
            "put_bucket_lifecycle_configuration",
            configuration::put_bucket_lifecycle_configuration(self, request),
        )
        .await
    }

    async fn put_bucket_policy(
        &self,
        request: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        self.observe(
            "put_bucket_policy",
            configuration::put_bucket_policy(self, request),
        )
        .await
    }

    async fn delete_bucket_cors(
        &self,
        request: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.observe(
            "delete_bucket_cors",
            configuration::delete_bucket_cors(self, request),
        )
        .await
    }

    async fn delete_bucket_lifecycle(
        &self,
        request: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.observe(
            "delete_bucket_lifecycle",
            configuration::delete_bucket_lifecycle(self, request),
        )
        .await
    }

    async fn delete_bucket_policy(
        &self,
        request: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.observe(
            "delete_bucket_policy",
            configuration::delete_bucket_policy(self, request),
        )
        .await
    }

    // --- bucket tags (`tagging.rs`) ---

    async fn put_bucket_tagging(
        &self,
        request: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        self.observe(
            "put_bucket_tagging",
            tagging::put_bucket_tagging(self, request),
        )
        .await
    }

    async fn get_bucket_tagging(
        &self,
        request: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        self.observe(
            "get_bucket_tagging",
            tagging::get_bucket_tagging(self, request),
        )
        .await
    }

    async fn delete_bucket_tagging(
        &self,
        request: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.observe(
            "delete_bucket_tagging",
            tagging::delete_bucket_tagging(self, request),
        )
        .await
    }
}
