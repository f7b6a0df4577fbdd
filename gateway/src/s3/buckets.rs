//! Bucket operations. Bucket names are validated by s3s (AWS rules → InvalidBucketName)
//! before any of this runs.

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};
use shardlet_core::RedundancyLevel;
use shardlet_model::schema::GrantPermission;

use crate::object::catalog::CatalogError;
use crate::s3::configuration::canonical_grant;
use crate::s3::errors::{error, from_catalog};
use crate::s3::gateway::{timestamp_of_unix_ms, Gateway};

pub async fn list_buckets(
    gateway: &Gateway,
    request: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let owner = gateway.owner(&request).await?;
    let prefix = request.input.prefix.unwrap_or_default();
    let buckets = gateway
        .catalog
        .list_buckets()
        .await
        .map_err(from_catalog)?
        .into_iter()
        .filter(|bucket| bucket.owner == owner && bucket.name.starts_with(&prefix))
        .map(|bucket| Bucket {
            name: Some(bucket.name),
            creation_date: Some(timestamp_of_unix_ms(bucket.created_unix_ms)),
            bucket_region: Some(gateway.region.clone()),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(Owner {
            display_name: Some(owner.clone()),
            id: Some(owner),
        }),
        ..Default::default()
    }))
}

pub async fn create_bucket(
    gateway: &Gateway,
    request: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let owner = gateway.owner(&request).await?;
    let name = request.input.bucket;
    match gateway
        .commit
        .buckets()
        .create_bucket(&name, &owner, RedundancyLevel::Medium)
        .await
    {
        Ok(()) => Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        })),
        Err(CatalogError::BucketExists(_)) => {
            let existing = gateway.catalog.bucket(&name).await.map_err(from_catalog)?;
            if existing.is_some_and(|bucket| bucket.record.owner == owner) {
                Err(error(
                    S3ErrorCode::BucketAlreadyOwnedByYou,
                    "Your previous request to create the named bucket succeeded and you already own it.",
                ))
            } else {
                Err(error(
                    S3ErrorCode::BucketAlreadyExists,
                    "The requested bucket name is not available.",
                ))
            }
        }
        Err(other) => Err(from_catalog(other)),
    }
}

pub async fn delete_bucket(
    gateway: &Gateway,
    request: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    gateway
        .commit
        .buckets()
        .delete_bucket(&request.input.bucket)
        .await
        .map_err(from_catalog)?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub async fn head_bucket(
    gateway: &Gateway,
    request: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(gateway.region.clone()),
        ..Default::default()
    }))
}

pub async fn get_bucket_location(
    gateway: &Gateway,
    request: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    // us-east-1 is reported as an empty constraint, as S3 does.
    let constraint = (gateway.region != "us-east-1")
        .then(|| BucketLocationConstraint::from(gateway.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: constraint,
    }))
}

/// Versioning was never enabled on any Shardlet bucket (PutBucketVersioning answers
/// NotImplemented): the empty configuration, as S3 answers for such a bucket. Tools
/// (Terraform, backup software, rclone) ask before they work with a bucket.
pub async fn get_bucket_versioning(
    gateway: &Gateway,
    request: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    gateway.bucket(&request.input.bucket).await?;
    Ok(S3Response::new(GetBucketVersioningOutput::default()))
}

/// A Shardlet bucket's ACL: its owner with FULL_CONTROL (what S3 reports for a bucket
/// created without an ACL), then one entry per grant (`shardlet admin bucket grant`):
/// READ, and WRITE too for read-write, the grantee named by its access key. Only the
/// owner may read it (authorization, `s3/access.rs`). Setting ACLs answers
/// NotImplemented: grants are an operator's act.
pub async fn get_bucket_acl(
    gateway: &Gateway,
    request: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let bucket = gateway.bucket(&request.input.bucket).await?;
    let owner = bucket.record.owner;
    let mut grants = vec![canonical_grant(&owner, Permission::FULL_CONTROL)];
    for granted in &bucket.record.grants {
        grants.push(canonical_grant(&granted.access_key, Permission::READ));
        if granted.permission == GrantPermission::ReadWrite {
            grants.push(canonical_grant(&granted.access_key, Permission::WRITE));
        }
    }
    Ok(S3Response::new(GetBucketAclOutput {
        grants: Some(grants),
        owner: Some(Owner {
            display_name: Some(owner.clone()),
            id: Some(owner),
        }),
    }))
}
