//! Authorization: the one check every S3 request passes before its handler runs.
//!
//! s3s calls [`BucketAccess::check`] for every request after the signature is
//! verified and before the body is read, with the operation's name and its bucket; the
//! copy operations are checked again once their input is parsed, for the copy *source*
//! bucket ([`BucketAccess::copy_object`], [`BucketAccess::upload_part_copy`]). The
//! handlers never check access themselves, so a new operation cannot forget to: an
//! operation missing from [`required_access`] needs the bucket's owner.
//!
//! The decision is `shardlet_model::permission::authorize` (owner, grants); this file
//! only maps S3 operations to the access they need. A refusal is `AccessDenied` with
//! the same message whatever the reason and whether or not the object exists, and it is
//! counted (`shardlet_gateway_access_denied_total{operation}`). A bucket that does not
//! exist is let through to its handler, which answers `NoSuchBucket`: bucket names are
//! one namespace for everyone (CreateBucket tells them apart anyway), object keys are
//! not revealed.

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{CopyObjectInput, CopySource, UploadPartCopyInput};
use s3s::path::S3Path;
use s3s::{S3ErrorCode, S3Request, S3Result};
use shardlet_model::permission::{authorize, Access, Principal};

use crate::metrics::Metrics;
use crate::object::catalog::Catalog;
use crate::s3::auth::CredentialCache;
use crate::s3::errors::{error, from_catalog};

/// The message of every refusal: it names nothing about the bucket or the object.
pub const ACCESS_DENIED_MESSAGE: &str = "Access Denied";

/// What an operation needs before its handler may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Required {
    /// Not about one bucket's contents: the handler itself scopes the answer to the
    /// caller (ListBuckets lists the caller's buckets; CreateBucket refuses a name
    /// someone else holds).
    Authenticated,
    /// This access to the bucket in the request's path.
    Bucket(Access),
}

/// The access each S3 operation needs (by s3s's operation name). Anything not listed
/// needs the owner: unknown is denied to everyone else, never allowed.
pub fn required_access(operation: &str) -> Required {
    use Access::*;
    match operation {
        "ListBuckets" | "CreateBucket" => Required::Authenticated,
        "HeadBucket"
        | "GetBucketLocation"
        | "GetBucketVersioning"
        | "ListObjects"
        | "ListObjectsV2"
        | "ListMultipartUploads"
        | "ListParts"
        | "GetObject"
        | "HeadObject" => Required::Bucket(Read),
        "PutObject"
        | "CopyObject"
        | "DeleteObject"
        | "DeleteObjects"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload" => Required::Bucket(Write),
        // A bucket's configuration and ACLs are its owner's, to read and to set, as in
        // S3 (a grant is ACL READ/WRITE: objects, never configuration). Listed, not
        // left to the fallback, so the table says what each operation needs.
        "DeleteBucket"
        | "GetBucketAcl"
        | "PutBucketAcl"
        | "GetObjectAcl"
        | "PutObjectAcl"
        | "GetBucketEncryption"
        | "PutBucketEncryption"
        | "DeleteBucketEncryption"
        | "GetBucketReplication"
        | "PutBucketReplication"
        | "DeleteBucketReplication"
        | "GetObjectLockConfiguration"
        | "PutObjectLockConfiguration"
        | "GetBucketWebsite"
        | "PutBucketWebsite"
        | "DeleteBucketWebsite"
        | "GetBucketLogging"
        | "PutBucketLogging"
        | "GetBucketNotificationConfiguration"
        | "PutBucketNotificationConfiguration"
        | "GetBucketOwnershipControls"
        | "PutBucketOwnershipControls"
        | "DeleteBucketOwnershipControls"
        | "GetPublicAccessBlock"
        | "PutPublicAccessBlock"
        | "DeletePublicAccessBlock"
        | "GetBucketAccelerateConfiguration"
        | "PutBucketAccelerateConfiguration"
        | "GetBucketRequestPayment"
        | "PutBucketRequestPayment"
        | "GetBucketCors"
        | "PutBucketCors"
        | "DeleteBucketCors"
        | "GetBucketLifecycleConfiguration"
        | "PutBucketLifecycleConfiguration"
        | "DeleteBucketLifecycle"
        | "GetBucketPolicy"
        | "PutBucketPolicy"
        | "DeleteBucketPolicy"
        | "GetBucketPolicyStatus"
        | "GetBucketTagging"
        | "PutBucketTagging"
        | "DeleteBucketTagging" => Required::Bucket(Own),
        _ => Required::Bucket(Own),
    }
}

/// The s3s access hook.
pub struct BucketAccess {
    pub catalog: Catalog,
    pub credentials: Arc<CredentialCache>,
    pub metrics: Arc<Metrics>,
}

impl BucketAccess {
    fn denied(&self, operation: &str) -> s3s::S3Error {
        self.metrics
            .access_denied_total
            .with_label_values(&[operation])
            .inc();
        error(S3ErrorCode::AccessDenied, ACCESS_DENIED_MESSAGE)
    }

    /// Whether the key `access_key` may have `access` to `bucket` for `operation`.
    async fn authorize_bucket(
        &self,
        operation: &str,
        access_key: &str,
        bucket: &str,
        access: Access,
    ) -> S3Result<()> {
        let owner = self.credentials.owner_of(access_key).await?;
        let Some(record) = self
            .catalog
            .bucket_to_authorize(bucket)
            .await
            .map_err(from_catalog)?
        else {
            return Ok(());
        };
        let principal = Principal {
            access_key,
            owner: &owner,
        };
        match authorize(principal, access, &record.record) {
            Ok(_) => Ok(()),
            Err(_) => {
                tracing::info!(
                    operation,
                    access_key,
                    bucket,
                    access = access.as_str(),
                    "access denied"
                );
                Err(self.denied(operation))
            }
        }
    }

    /// The copy source must be readable by the caller.
    async fn authorize_copy_source(
        &self,
        operation: &str,
        access_key: Option<&str>,
        source: &CopySource,
    ) -> S3Result<()> {
        let Some(access_key) = access_key else {
            return Err(self.denied(operation));
        };
        match source {
            CopySource::Bucket { bucket, .. } => {
                self.authorize_bucket(operation, access_key, bucket, Access::Read)
                    .await
            }
            // Access points and outposts are not supported by the handlers; refused
            // here so no path skips the check.
            _ => Err(self.denied(operation)),
        }
    }
}

#[async_trait::async_trait]
impl S3Access for BucketAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let operation = cx.s3_op().name().to_string();
        let Some(access_key) = cx.credentials().map(|c| c.access_key.clone()) else {
            return Err(self.denied(&operation));
        };
        let bucket = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.clone()),
        };
        match (required_access(&operation), bucket) {
            (Required::Authenticated, _) => Ok(()),
            (Required::Bucket(access), Some(bucket)) => {
                self.authorize_bucket(&operation, &access_key, &bucket, access)
                    .await
            }
            // A bucket operation without a bucket: fail closed.
            (Required::Bucket(_), None) => Err(self.denied(&operation)),
        }
    }

    async fn copy_object(&self, request: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let access_key = request.credentials.as_ref().map(|c| c.access_key.as_str());
        self.authorize_copy_source("CopyObject", access_key, &request.input.copy_source)
            .await
    }

    async fn upload_part_copy(&self, request: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        let access_key = request.credentials.as_ref().map(|c| c.access_key.as_str());
        self.authorize_copy_source("UploadPartCopy", access_key, &request.input.copy_source)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_the_gateway_serves_needs_a_named_access() {
        // The operations `service.rs` implements; each must be listed explicitly so a
        // grant means what the docs say (none falls through to owner-only by accident).
        let served = [
            ("ListBuckets", Required::Authenticated),
            ("CreateBucket", Required::Authenticated),
            ("HeadBucket", Required::Bucket(Access::Read)),
            ("GetBucketLocation", Required::Bucket(Access::Read)),
            ("GetBucketVersioning", Required::Bucket(Access::Read)),
            ("ListObjects", Required::Bucket(Access::Read)),
            ("ListObjectsV2", Required::Bucket(Access::Read)),
            ("ListMultipartUploads", Required::Bucket(Access::Read)),
            ("ListParts", Required::Bucket(Access::Read)),
            ("GetObject", Required::Bucket(Access::Read)),
            ("HeadObject", Required::Bucket(Access::Read)),
            ("PutObject", Required::Bucket(Access::Write)),
            ("CopyObject", Required::Bucket(Access::Write)),
            ("DeleteObject", Required::Bucket(Access::Write)),
            ("DeleteObjects", Required::Bucket(Access::Write)),
            ("CreateMultipartUpload", Required::Bucket(Access::Write)),
            ("UploadPart", Required::Bucket(Access::Write)),
            ("UploadPartCopy", Required::Bucket(Access::Write)),
            ("CompleteMultipartUpload", Required::Bucket(Access::Write)),
            ("AbortMultipartUpload", Required::Bucket(Access::Write)),
            ("DeleteBucket", Required::Bucket(Access::Own)),
            ("GetBucketAcl", Required::Bucket(Access::Own)),
        ];
        for (operation, required) in served {
            assert_eq!(required_access(operation), required, "{operation}");
        }
    }

    #[test]
    fn an_operation_nobody_listed_is_for_the_owner_only() {
        for operation in [
            "PutBucketPolicy",
            "PutBucketAcl",
            "DeleteBucketCors",
            "Bogus",
            "",
        ] {
            assert_eq!(
                required_access(operation),
                Required::Bucket(Access::Own),
                "{operation}"
            );
        }
    }

    /// The operations `service.rs` serves that need the bucket's owner on purpose.
    const OWNER_ONLY_BY_DESIGN: [&str; 43] = [
        "delete_bucket",
        "get_bucket_acl",
        "put_bucket_acl",
        "get_object_acl",
        "put_object_acl",
        "get_bucket_encryption",
        "put_bucket_encryption",
        "delete_bucket_encryption",
        "get_bucket_replication",
        "put_bucket_replication",
        "delete_bucket_replication",
        "get_object_lock_configuration",
        "put_object_lock_configuration",
        "get_bucket_website",
        "put_bucket_website",
        "delete_bucket_website",
        "get_bucket_logging",
        "put_bucket_logging",
        "get_bucket_notification_configuration",
        "put_bucket_notification_configuration",
        "get_bucket_ownership_controls",
        "put_bucket_ownership_controls",
        "delete_bucket_ownership_controls",
        "get_public_access_block",
        "put_public_access_block",
        "delete_public_access_block",
        "get_bucket_accelerate_configuration",
        "put_bucket_accelerate_configuration",
        "get_bucket_request_payment",
        "put_bucket_request_payment",
        "get_bucket_cors",
        "put_bucket_cors",
        "delete_bucket_cors",
        "get_bucket_lifecycle_configuration",
        "put_bucket_lifecycle_configuration",
        "delete_bucket_lifecycle",
        "get_bucket_policy",
        "put_bucket_policy",
        "delete_bucket_policy",
        "get_bucket_policy_status",
        "get_bucket_tagging",
        "put_bucket_tagging",
        "delete_bucket_tagging",
    ];

    /// Every operation `service.rs` serves that the owner-only fallback would also
    /// give `Own` must be named in `required_access` itself: the match arm that
    /// lists owner-only operations is the table the docs and the reviewers read.
    #[test]
    fn every_owner_only_operation_is_listed_not_left_to_the_fallback() {
        let source = include_str!("access.rs");
        let table = source
            .split("fn required_access")
            .nth(1)
            .and_then(|rest| rest.split("_ => Required::Bucket(Own)").next())
            .unwrap_or_default();
        for name in OWNER_ONLY_BY_DESIGN {
            let camel = camel_case(name);
            assert!(
                table.contains(&format!("\"{camel}\"")),
                "{camel} is owner-only by design but not listed in required_access"
            );
        }
    }

    fn camel_case(snake: &str) -> String {
        snake
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                    None => String::new(),
                }
            })
            .collect()
    }

    #[test]
    fn every_operation_service_rs_implements_is_in_the_table() {
        // `service.rs` names each operation it serves as `self.observe("snake_name", …)`;
        // each must map to an explicitly listed CamelCase name (not the owner-only
        // fallback) unless it is owner-only by design.
        let owner_only_by_design = OWNER_ONLY_BY_DESIGN;
        let source = include_str!("service.rs");
        let mut checked = 0;
        for piece in source.split("self.observe(").skip(1) {
            let name = piece
                .trim_start()
                .trim_start_matches('"')
                .split('"')
                .next()
                .unwrap_or_default();
            let camel = camel_case(name);
            if owner_only_by_design.contains(&name) {
                assert_eq!(required_access(&camel), Required::Bucket(Access::Own));
            } else {
                assert_ne!(
                    required_access(&camel),
                    Required::Bucket(Access::Own),
                    "{name} ({camel}) falls through to owner-only"
                );
            }
            checked += 1;
        }
        assert!(
            checked >= 20,
            "found only {checked} operations in service.rs"
        );
    }
}
