//! Bucket configurations Shardlet does not have: encryption, replication, object lock,
//! website, logging, notification, ownership controls, public access block,
//! acceleration, request payment, CORS, lifecycle, bucket policies, and object ACLs.
//!
//! Terraform's `aws_s3_bucket`, the SDKs' bucket resources and S3 browsers read these
//! before they do anything, and stop at a 501. So each GET answers what S3 answers for
//! a bucket that never had the configuration: the "not found" error of the S3 API
//! reference (404) or the empty document. Each PUT answers 501 NotImplemented naming
//! the configuration, except a PUT that asks for the state the bucket is already in
//! (logging off, no notifications, acceleration suspended, the owner pays), which
//! succeeds and changes nothing. Each DELETE succeeds: after it the bucket has no such
//! configuration, which is true, as S3 answers 204 for a bucket without one.
//!
//! Every handler first checks the bucket exists (NoSuchBucket otherwise); access was
//! checked before (`s3/access.rs`: all of these need the bucket's owner, as in S3,
//! where an ACL grant never reaches a bucket's configuration). Nothing here writes
//! anything, so there is nothing to survive a crash.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use crate::s3::errors::error;
use crate::s3::gateway::Gateway;
use crate::s3::objects::existing_object;

/// A "this bucket has no such configuration" answer: S3's code and message, 404.
///
/// The status is set here rather than taken from s3s: s3s maps
/// ServerSideEncryptionConfigurationNotFoundError to 400, S3 answers 404, and
/// NoSuchPublicAccessBlockConfiguration is not one of s3s's codes.
fn not_configured(code: S3ErrorCode, message: &'static str) -> S3Error {
    let mut not_found = error(code, message);
    not_found.set_status_code(http::StatusCode::NOT_FOUND);
    not_found
}

/// 501 NotImplemented naming what is not supported.
fn unsupported(what: &str) -> S3Error {
    error(
        S3ErrorCode::NotImplemented,
        format!("Shardlet does not support {what}"),
    )
}

fn malformed(message: String) -> S3Error {
    error(S3ErrorCode::MalformedXML, message)
}

// --- GETs: "not configured" ------------------------------------------------------------

pub async fn get_bucket_encryption(
    gateway: &Gateway,
    request: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Err(not_configured(
        S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError,
        "The server side encryption configuration was not found",
    ))
}

pub async fn get_bucket_replication(
    gateway: &Gateway,
    request: S3Request<GetBucketReplicationInput>,
) -> S3Result<S3Response<GetBucketReplicationOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Err(not_configured(
        S3ErrorCode::ReplicationConfigurationNotFoundError,
        "The replication configuration was not found",
    ))
}

pub async fn get_object_lock_configuration(
    gateway: &Gateway,
    request: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Err(not_configured(
        S3ErrorCode::ObjectLockConfigurationNotFoundError,
        "Object Lock configuration does not exist for this bucket",
    ))
}

pub async fn get_bucket_website(
    gateway: &Gateway,
    request: S3Request<GetBucketWebsiteInput>,
) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Err(not_configured(
        S3ErrorCode::NoSuchWebsiteConfiguration,
        "The specified bucket does not have a website configuration",
    ))
}

pub async fn get_bucket_ownership_controls(
    gateway: &Gateway,
    request: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Err(not_configured(
        S3ErrorCode::OwnershipControlsNotFoundError,
        "The bucket ownership controls were not found",
    ))
}

pub async fn get_public_access_block(
    gateway: &Gateway,
    request: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Err(not_configured(
        S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
        "The public access block configuration was not found",
    ))
}

pub async fn get_bucket_cors(
    gateway: &Gateway,
    request: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Err(not_configured(
        S3ErrorCode::NoSuchCORSConfiguration,
        "The CORS configuration does not exist",
    ))
}

pub async fn get_bucket_lifecycle_configuration(
    gateway: &Gateway,
    request: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Err(not_configured(
        S3ErrorCode::NoSuchLifecycleConfiguration,
        "The lifecycle configuration does not exist",
    ))
}

pub async fn get_bucket_policy(
    gateway: &Gateway,
    request: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Err(not_configured(
        S3ErrorCode::NoSuchBucketPolicy,
        "The bucket policy does not exist",
    ))
}

// --- GETs: the empty or default document ---------------------------------------------

/// `<BucketLoggingStatus/>`: logging is off.
pub async fn get_bucket_logging(
    gateway: &Gateway,
    request: S3Request<GetBucketLoggingInput>,
) -> S3Result<S3Response<GetBucketLoggingOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Ok(S3Response::new(GetBucketLoggingOutput::default()))
}

/// `<NotificationConfiguration/>`: no notifications.
pub async fn get_bucket_notification_configuration(
    gateway: &Gateway,
    request: S3Request<GetBucketNotificationConfigurationInput>,
) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Ok(S3Response::new(
        GetBucketNotificationConfigurationOutput::default(),
    ))
}

/// `<AccelerateConfiguration/>` without a Status: acceleration was never set.
pub async fn get_bucket_accelerate_configuration(
    gateway: &Gateway,
    request: S3Request<GetBucketAccelerateConfigurationInput>,
) -> S3Result<S3Response<GetBucketAccelerateConfigurationOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Ok(S3Response::new(
        GetBucketAccelerateConfigurationOutput::default(),
    ))
}

/// The bucket owner pays for every request (there is nothing else to pay).
pub async fn get_bucket_request_payment(
    gateway: &Gateway,
    request: S3Request<GetBucketRequestPaymentInput>,
) -> S3Result<S3Response<GetBucketRequestPaymentOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Ok(S3Response::new(GetBucketRequestPaymentOutput {
        payer: Some(Payer::from_static(Payer::BUCKET_OWNER)),
    }))
}

/// Not public: there is no policy, and every request is signed by a key the bucket's
/// owner made or granted.
pub async fn get_bucket_policy_status(
    gateway: &Gateway,
    request: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(false),
        }),
    }))
}

/// An object's ACL: the bucket's owner (who owns every object in it) with
/// FULL_CONTROL, and READ for each key the bucket is granted to (a grant lets its key
/// read every object). Only the owner may read it, like the bucket's ACL: it names the
/// keys granted. Versions do not exist yet, so a `versionId` is refused.
pub async fn get_object_acl(
    gateway: &Gateway,
    request: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let input = request.input;
    if input.version_id.is_some() {
        return Err(unsupported("object versions"));
    }
    existing_object(gateway, &input.bucket, &input.key).await?;
    let bucket = gateway.bucket(&input.bucket).await?;
    let owner = bucket.record.owner;
    let mut grants = vec![canonical_grant(&owner, Permission::FULL_CONTROL)];
    for granted in &bucket.record.grants {
        grants.push(canonical_grant(&granted.access_key, Permission::READ));
    }
    Ok(S3Response::new(GetObjectAclOutput {
        grants: Some(grants),
        owner: Some(Owner {
            display_name: Some(owner.clone()),
            id: Some(owner),
        }),
        request_charged: None,
    }))
}

/// One ACL entry for a canonical user (an owner or an access key).
pub fn canonical_grant(id: &str, permission: &'static str) -> Grant {
    Grant {
        grantee: Some(Grantee {
            display_name: Some(id.to_string()),
            email_address: None,
            id: Some(id.to_string()),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(permission)),
    }
}

// --- PUTs ------------------------------------------------------------------------------

/// The PUTs that can only set a configuration Shardlet does not have: the bucket must
/// exist, then NotImplemented naming the configuration.
macro_rules! unsupported_put {
    ($name:ident, $input:ty, $output:ty, $what:literal) => {
        pub async fn $name(
            gateway: &Gateway,
            request: S3Request<$input>,
        ) -> S3Result<S3Response<$output>> {
            gateway.bucket(&request.input.bucket).await?;
            Err(unsupported($what))
        }
    };
}

unsupported_put!(
    put_bucket_encryption,
    PutBucketEncryptionInput,
    PutBucketEncryptionOutput,
    "bucket default encryption configuration"
);
unsupported_put!(
    put_bucket_replication,
    PutBucketReplicationInput,
    PutBucketReplicationOutput,
    "bucket replication"
);
unsupported_put!(
    put_object_lock_configuration,
    PutObjectLockConfigurationInput,
    PutObjectLockConfigurationOutput,
    "object lock"
);
unsupported_put!(
    put_bucket_website,
    PutBucketWebsiteInput,
    PutBucketWebsiteOutput,
    "static website hosting"
);
unsupported_put!(
    put_bucket_ownership_controls,
    PutBucketOwnershipControlsInput,
    PutBucketOwnershipControlsOutput,
    "bucket ownership controls (the bucket's owner owns every object in it)"
);
unsupported_put!(
    put_public_access_block,
    PutPublicAccessBlockInput,
    PutPublicAccessBlockOutput,
    "public access block configuration (there is no public access: every request is signed)"
);
unsupported_put!(
    put_bucket_acl,
    PutBucketAclInput,
    PutBucketAclOutput,
    "setting ACLs; access to a bucket is granted by the operator with `shardlet admin bucket grant`"
);

unsupported_put!(
    put_bucket_cors,
    PutBucketCorsInput,
    PutBucketCorsOutput,
    "bucket CORS configuration"
);
unsupported_put!(
    put_bucket_lifecycle_configuration,
    PutBucketLifecycleConfigurationInput,
    PutBucketLifecycleConfigurationOutput,
    "bucket lifecycle configuration"
);
unsupported_put!(
    put_bucket_policy,
    PutBucketPolicyInput,
    PutBucketPolicyOutput,
    "bucket policies; access to a bucket is granted by the operator with `shardlet admin bucket grant`"
);

/// Object ACLs cannot be set either; the object must exist first, as in S3.
pub async fn put_object_acl(
    gateway: &Gateway,
    request: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    existing_object(gateway, &request.input.bucket, &request.input.key).await?;
    Err(unsupported(
        "setting ACLs; access to a bucket is granted by the operator with `shardlet admin bucket grant`",
    ))
}

/// Logging off (no `LoggingEnabled`) is what every bucket has: accepted, nothing
/// changes. Turning it on is not supported.
pub async fn put_bucket_logging(
    gateway: &Gateway,
    request: S3Request<PutBucketLoggingInput>,
) -> S3Result<S3Response<PutBucketLoggingOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    if request
        .input
        .bucket_logging_status
        .logging_enabled
        .is_some()
    {
        return Err(unsupported("server access logging"));
    }
    Ok(S3Response::new(PutBucketLoggingOutput {}))
}

/// An empty notification configuration (how S3 clients turn notifications off) is
/// what every bucket has: accepted. Any destination is not supported.
pub async fn put_bucket_notification_configuration(
    gateway: &Gateway,
    request: S3Request<PutBucketNotificationConfigurationInput>,
) -> S3Result<S3Response<PutBucketNotificationConfigurationOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    let configuration = &request.input.notification_configuration;
    let empty = |list: Option<usize>| list.unwrap_or(0) == 0;
    let nothing = configuration.event_bridge_configuration.is_none()
        && empty(
            configuration
                .lambda_function_configurations
                .as_ref()
                .map(Vec::len),
        )
        && empty(configuration.queue_configurations.as_ref().map(Vec::len))
        && empty(configuration.topic_configurations.as_ref().map(Vec::len));
    if !nothing {
        return Err(unsupported("event notifications"));
    }
    Ok(S3Response::new(PutBucketNotificationConfigurationOutput {}))
}

/// Suspended is the state of a bucket that never had acceleration: accepted. Enabled
/// is not supported (there is no accelerated endpoint); anything else is malformed.
pub async fn put_bucket_accelerate_configuration(
    gateway: &Gateway,
    request: S3Request<PutBucketAccelerateConfigurationInput>,
) -> S3Result<S3Response<PutBucketAccelerateConfigurationOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    match request.input.accelerate_configuration.status {
        Some(status) if status.as_str() == BucketAccelerateStatus::SUSPENDED => {
            Ok(S3Response::new(PutBucketAccelerateConfigurationOutput {}))
        }
        Some(status) if status.as_str() == BucketAccelerateStatus::ENABLED => {
            Err(unsupported("transfer acceleration"))
        }
        Some(status) => Err(malformed(format!(
            "The accelerate Status must be Enabled or Suspended, not {:?}",
            shown(status.as_str())
        ))),
        None => Err(malformed(
            "The accelerate configuration has no Status".to_string(),
        )),
    }
}

/// The bucket owner pays, always: accepted. Requester pays is not supported; any
/// other payer is malformed.
pub async fn put_bucket_request_payment(
    gateway: &Gateway,
    request: S3Request<PutBucketRequestPaymentInput>,
) -> S3Result<S3Response<PutBucketRequestPaymentOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    let payer = request.input.request_payment_configuration.payer;
    match payer.as_str() {
        Payer::BUCKET_OWNER => Ok(S3Response::new(PutBucketRequestPaymentOutput {})),
        Payer::REQUESTER => Err(unsupported("requester pays buckets")),
        other => Err(malformed(format!(
            "The Payer must be BucketOwner or Requester, not {:?}",
            shown(other)
        ))),
    }
}

/// At most 64 characters of a client's value, for an error message.
fn shown(value: &str) -> String {
    value.chars().take(64).collect()
}

// --- DELETEs: the bucket has none, so after the call it has none -----------------------

macro_rules! nothing_to_delete {
    ($name:ident, $input:ty, $output:ty) => {
        pub async fn $name(
            gateway: &Gateway,
            request: S3Request<$input>,
        ) -> S3Result<S3Response<$output>> {
            gateway.bucket(&request.input.bucket).await?;
            Ok(S3Response::new(<$output>::default()))
        }
    };
}

nothing_to_delete!(
    delete_bucket_encryption,
    DeleteBucketEncryptionInput,
    DeleteBucketEncryptionOutput
);
nothing_to_delete!(
    delete_bucket_replication,
    DeleteBucketReplicationInput,
    DeleteBucketReplicationOutput
);
nothing_to_delete!(
    delete_bucket_website,
    DeleteBucketWebsiteInput,
    DeleteBucketWebsiteOutput
);
nothing_to_delete!(
    delete_bucket_ownership_controls,
    DeleteBucketOwnershipControlsInput,
    DeleteBucketOwnershipControlsOutput
);
nothing_to_delete!(
    delete_public_access_block,
    DeletePublicAccessBlockInput,
    DeletePublicAccessBlockOutput
);
nothing_to_delete!(
    delete_bucket_cors,
    DeleteBucketCorsInput,
    DeleteBucketCorsOutput
);
nothing_to_delete!(
    delete_bucket_lifecycle,
    DeleteBucketLifecycleInput,
    DeleteBucketLifecycleOutput
);
nothing_to_delete!(
    delete_bucket_policy,
    DeleteBucketPolicyInput,
    DeleteBucketPolicyOutput
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_configured_is_a_404_even_where_s3s_says_otherwise() {
        // s3s maps this code to 400; S3 answers 404.
        let encryption = not_configured(
            S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError,
            "The server side encryption configuration was not found",
        );
        assert_eq!(encryption.status_code(), Some(http::StatusCode::NOT_FOUND));
        // Not one of s3s's codes: it has no status of its own.
        let public = not_configured(
            S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
            "The public access block configuration was not found",
        );
        assert_eq!(public.status_code(), Some(http::StatusCode::NOT_FOUND));
        assert_eq!(
            public.code().as_str(),
            "NoSuchPublicAccessBlockConfiguration"
        );
    }

    #[test]
    fn an_unsupported_configuration_is_named_in_a_501() {
        let replication = unsupported("bucket replication");
        assert_eq!(replication.code(), &S3ErrorCode::NotImplemented);
        assert_eq!(
            replication
                .status_code()
                .or(replication.code().status_code()),
            Some(http::StatusCode::NOT_IMPLEMENTED)
        );
        assert_eq!(
            replication.message(),
            Some("Shardlet does not support bucket replication")
        );
    }

    #[test]
    fn a_long_value_is_cut_in_messages() {
        assert_eq!(shown(&"x".repeat(1000)).len(), 64);
    }
}
