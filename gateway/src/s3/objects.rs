//! Object operations: PutObject, GetObject, HeadObject, DeleteObject(s), CopyObject.

use std::collections::BTreeMap;
use std::ops::Range;

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use shardlet_core::ObjectId;
use shardlet_model::schema::{ObjectRecord, StoredChecksums};
use shardlet_model::Stored;

use crate::object::commit::{CommitCondition, Uncommitted};
use crate::object::etag;
use crate::object::storage_class::{plan_for, reported, StoragePlan};
use crate::object::unix_ms_now;
use crate::object::write_path::UploadBody;
use crate::s3::body::{body_stream, copy_stream, response_body, BodyStream};
use crate::s3::checksums::{expected_of, Expected};
use crate::s3::conditions::{evaluate, unix_seconds, Preconditions, Verdict};
use crate::s3::errors::{error, from_catalog, from_checksum, from_commit, from_write, no_such_key};
use crate::s3::gateway::{timestamp_of_unix_ms, Gateway};
use crate::s3::limits::{
    DELETE_OBJECTS_KEYS_MAX, KEY_BYTES_MAX, OBJECT_BYTES_MAX, USER_METADATA_BYTES_MAX,
};

/// S3's default when a PUT names no Content-Type.
pub const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

pub fn check_key(key: &str) -> S3Result<()> {
    if key.len() > KEY_BYTES_MAX {
        return Err(error(
            S3ErrorCode::KeyTooLongError,
            format!("Your key is too long: at most {KEY_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

pub fn user_metadata(metadata: Option<Metadata>) -> S3Result<BTreeMap<String, String>> {
    let metadata: BTreeMap<String, String> = metadata.unwrap_or_default().into_iter().collect();
    let bytes: usize = metadata
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    if bytes > USER_METADATA_BYTES_MAX {
        return Err(error(
            S3ErrorCode::MetadataTooLarge,
            format!("Your metadata headers exceed the maximum allowed metadata size of {USER_METADATA_BYTES_MAX} bytes"),
        ));
    }
    Ok(metadata)
}

pub fn storage_plan(
    storage_class: Option<&StorageClass>,
    bucket_default: shardlet_core::RedundancyLevel,
) -> S3Result<StoragePlan> {
    plan_for(storage_class.map(StorageClass::as_str), bucket_default).map_err(|invalid| {
        error(
            S3ErrorCode::InvalidStorageClass,
            format!(
                "The storage class you specified is not valid: {}",
                invalid.0
            ),
        )
    })
}

pub fn declared_length(length: Option<i64>) -> S3Result<Option<u64>> {
    match length {
        None => Ok(None),
        Some(length) => u64::try_from(length).map(Some).map_err(|_| {
            error(
                S3ErrorCode::InvalidArgument,
                "Content-Length must not be negative",
            )
        }),
    }
}

/// The object, or NoSuchBucket / NoSuchKey.
///
/// The object is read first and the bucket only when the object is missing (to tell
/// NoSuchBucket from NoSuchKey): an object record implies its bucket exists, because a
/// bucket is deleted only once empty. One metadata read per GET/HEAD instead of two.
pub async fn existing_object(
    gateway: &Gateway,
    bucket: &str,
    key: &str,
) -> S3Result<Stored<ObjectRecord>> {
    if let Some(object) = gateway
        .catalog
        .object(bucket, key)
        .await
        .map_err(from_catalog)?
    {
        return Ok(object);
    }
    gateway.bucket(bucket).await?;
    Err(no_such_key(key))
}

/// Streams the body through the write path with checksum verification; on success the
/// fragments are durable and the verified checksums known. Nothing is visible yet: the
/// returned write is given up unless a commit consumes it.
#[allow(clippy::too_many_arguments)]
pub async fn upload(
    gateway: &Gateway,
    bucket: &str,
    key: &str,
    object_id: ObjectId,
    plan: StoragePlan,
    stream: BodyStream,
    declared: Option<u64>,
    max_length: u64,
    expected: Expected,
    trailers: Option<&s3s::TrailingHeaders>,
) -> S3Result<(Uncommitted, StoredChecksums)> {
    let mut hasher = expected.hasher();
    let body = UploadBody {
        stream,
        declared_length: declared,
        max_length,
    };
    let write = gateway
        .writer
        .write(bucket, key, object_id, plan, body, &mut |chunk: &[u8]| {
            hasher.update(chunk)
        })
        .await
        .map_err(from_write)?;
    // Trailers exist only once the whole aws-chunked body has been read.
    let trailer_map = trailers.and_then(s3s::TrailingHeaders::take);
    match expected.verify(write.written().md5, hasher.finalize(), trailer_map.as_ref()) {
        Ok(checksums) => Ok((write, checksums)),
        Err(mismatch) => {
            write.abandon().await;
            Err(from_checksum(mismatch))
        }
    }
}

fn checksum_fields(checksums: &StoredChecksums, wanted: bool) -> Checksum {
    if !wanted {
        return Checksum::default();
    }
    Checksum {
        checksum_crc32: checksums.crc32.clone(),
        checksum_crc32c: checksums.crc32c.clone(),
        checksum_crc64nvme: checksums.crc64nvme.clone(),
        checksum_sha1: checksums.sha1.clone(),
        checksum_sha256: checksums.sha256.clone(),
        ..Default::default()
    }
}

pub async fn put_object(
    gateway: &Gateway,
    request: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let input = request.input;
    check_key(&input.key)?;
    let metadata = user_metadata(input.metadata)?;
    // Possibly up to a second stale: safe because the commit below is conditioned on
    // this version (a changed or deleted bucket fails it and is re-read fresh).
    let bucket = gateway
        .catalog
        .existing_bucket_recent(&input.bucket)
        .await
        .map_err(from_catalog)?;
    let plan = storage_plan(
        input.storage_class.as_ref(),
        bucket.record.default_redundancy,
    )?;
    let condition = match (&input.if_none_match, &input.if_match) {
        (Some(ETagCondition::Any), _) => CommitCondition::Absent,
        (Some(_), _) => {
            return Err(error(
                S3ErrorCode::NotImplemented,
                "If-None-Match on PUT supports only *",
            ))
        }
        (None, Some(ETagCondition::ETag(etag))) => {
            CommitCondition::EtagMatches(etag.value().to_string())
        }
        (None, Some(ETagCondition::Any)) => {
            return Err(error(
                S3ErrorCode::NotImplemented,
                "If-Match on PUT needs an ETag",
            ))
        }
        (None, None) => CommitCondition::Always,
    };
    let expected = expected_of!(&request.headers, input).map_err(from_checksum)?;
    let declared = declared_length(input.content_length)?;
    let (write, checksums) = upload(
        gateway,
        &input.bucket,
        &input.key,
        ObjectId::random(),
        plan,
        body_stream(input.body),
        declared,
        OBJECT_BYTES_MAX,
        expected,
        request.trailing_headers.as_ref(),
    )
    .await?;
    let written = write.written();
    let record = ObjectRecord {
        bucket: input.bucket,
        key: input.key,
        id: written.object_id,
        size_bytes: written.size_bytes,
        etag: etag::single_part(written.md5),
        content_type: input
            .content_type
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string()),
        user_metadata: metadata,
        storage_class: input.storage_class.map(|class| class.as_str().to_string()),
        redundancy: plan.level,
        created_unix_ms: unix_ms_now(),
        shardlets: Vec::new(),
        checksums,
        parts_count: None,
    };
    let committed = gateway
        .commit
        .put_object(write, record, condition, Some(bucket))
        .await
        .map_err(from_commit)?;
    let sums = checksum_fields(&committed.checksums, true);
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(ETag::Strong(etag::bare(&committed.etag).to_string())),
        checksum_crc32: sums.checksum_crc32,
        checksum_crc32c: sums.checksum_crc32c,
        checksum_crc64nvme: sums.checksum_crc64nvme,
        checksum_sha1: sums.checksum_sha1,
        checksum_sha256: sums.checksum_sha256,
        size: Some(committed.size_bytes as i64),
        ..Default::default()
    }))
}

/// What GET and HEAD share: the object, its preconditions and its range.
struct Resolved {
    object: ObjectRecord,
    range: Option<Range<u64>>,
}

async fn resolve(
    gateway: &Gateway,
    bucket: &str,
    key: &str,
    preconditions: Preconditions<'_>,
    range: Option<&s3s::dto::Range>,
) -> S3Result<Resolved> {
    let object = existing_object(gateway, bucket, key).await?.record;
    let modified = (object.created_unix_ms / 1000) as i64;
    match evaluate(&preconditions, &object.etag, modified) {
        Verdict::Proceed => {}
        Verdict::NotModified => return Err(S3Error::new(S3ErrorCode::NotModified)),
        Verdict::PreconditionFailed => {
            return Err(error(
                S3ErrorCode::PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold",
            ))
        }
    }
    let range = crate::object::object_range::resolve(range, object.size_bytes).map_err(|_| {
        error(
            S3ErrorCode::InvalidRange,
            format!(
                "The requested range is not satisfiable (object size {})",
                object.size_bytes
            ),
        )
    })?;
    Ok(Resolved { object, range })
}

pub(crate) fn content_range(range: &Option<Range<u64>>, size: u64) -> Option<String> {
    range.as_ref().map(|range| {
        format!(
            "bytes {}-{}/{size}",
            range.start,
            range.end.saturating_sub(1)
        )
    })
}

fn wants_checksums(mode: Option<&ChecksumMode>, range: &Option<Range<u64>>) -> bool {
    // A checksum describes the whole object: S3 returns none for ranges.
    mode.is_some_and(|mode| mode.as_str() == ChecksumMode::ENABLED) && range.is_none()
}

/// What GetObject and HeadObject both ask: their inputs have these fields, of the same
/// types, so one macro reads either.
struct ObjectQuery<'a> {
    bucket: &'a str,
    key: &'a str,
    preconditions: Preconditions<'a>,
    range: Option<&'a s3s::dto::Range>,
    checksum_mode: Option<&'a ChecksumMode>,
}

macro_rules! object_query {
    ($input:expr) => {
        ObjectQuery {
            bucket: &$input.bucket,
            key: &$input.key,
            preconditions: Preconditions {
                if_match: $input.if_match.as_ref(),
                if_none_match: $input.if_none_match.as_ref(),
                if_modified_since_unix_seconds: $input.if_modified_since.as_ref().map(unix_seconds),
                if_unmodified_since_unix_seconds: $input
                    .if_unmodified_since
                    .as_ref()
                    .map(unix_seconds),
            },
            range: $input.range.as_ref(),
            checksum_mode: $input.checksum_mode.as_ref(),
        }
    };
}

/// GetObject: HeadObject's answer and the body.
pub async fn get_object(
    gateway: &Gateway,
    request: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let (object, read, head) = described(gateway, object_query!(request.input)).await?;
    let body = response_body(gateway, &object.shardlets, read);
    Ok(S3Response::new(GetObjectOutput {
        body: Some(body),
        accept_ranges: head.accept_ranges,
        content_length: head.content_length,
        content_range: head.content_range,
        content_type: head.content_type,
        e_tag: head.e_tag,
        last_modified: head.last_modified,
        metadata: head.metadata,
        storage_class: head.storage_class,
        parts_count: head.parts_count,
        checksum_crc32: head.checksum_crc32,
        checksum_crc32c: head.checksum_crc32c,
        checksum_crc64nvme: head.checksum_crc64nvme,
        checksum_sha1: head.checksum_sha1,
        checksum_sha256: head.checksum_sha256,
        ..Default::default()
    }))
}

pub async fn head_object(
    gateway: &Gateway,
    request: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let (_, _, head) = described(gateway, object_query!(request.input)).await?;
    Ok(S3Response::new(head))
}

/// The object GET and HEAD answer for (after preconditions and the range), the bytes
/// to read, and what HEAD says about them (GET says the same).
async fn described(
    gateway: &Gateway,
    query: ObjectQuery<'_>,
) -> S3Result<(ObjectRecord, Range<u64>, HeadObjectOutput)> {
    let Resolved { object, range } = resolve(
        gateway,
        query.bucket,
        query.key,
        query.preconditions,
        query.range,
    )
    .await?;
    let read = range.clone().unwrap_or(0..object.size_bytes);
    let sums = checksum_fields(
        &object.checksums,
        wants_checksums(query.checksum_mode, &range),
    );
    let head = HeadObjectOutput {
        accept_ranges: Some("bytes".into()),
        content_length: Some((read.end - read.start) as i64),
        content_range: content_range(&range, object.size_bytes),
        content_type: Some(object.content_type.clone()),
        e_tag: Some(ETag::Strong(etag::bare(&object.etag).to_string())),
        last_modified: Some(timestamp_of_unix_ms(object.created_unix_ms)),
        metadata: Some(object.user_metadata.clone().into_iter().collect()),
        storage_class: Some(StorageClass::from(
            reported(object.storage_class.as_deref()).to_string(),
        )),
        parts_count: object.parts_count.map(|count| count as i32),
        checksum_crc32: sums.checksum_crc32,
        checksum_crc32c: sums.checksum_crc32c,
        checksum_crc64nvme: sums.checksum_crc64nvme,
        checksum_sha1: sums.checksum_sha1,
        checksum_sha256: sums.checksum_sha256,
        ..Default::default()
    };
    Ok((object, read, head))
}

/// Removes a key (absent is success, as in S3).
pub async fn remove(gateway: &Gateway, bucket: &str, key: &str) -> S3Result<()> {
    check_key(key)?;
    gateway
        .commit
        .delete_object(bucket, key)
        .await
        .map_err(from_commit)
}

pub async fn delete_object(
    gateway: &Gateway,
    request: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = request.input;
    gateway.bucket(&input.bucket).await?;
    remove(gateway, &input.bucket, &input.key).await?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

pub async fn delete_objects(
    gateway: &Gateway,
    request: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let input = request.input;
    if input.delete.objects.len() > DELETE_OBJECTS_KEYS_MAX {
        return Err(error(
            S3ErrorCode::MalformedXML,
            format!("At most {DELETE_OBJECTS_KEYS_MAX} keys may be deleted in one request"),
        ));
    }
    gateway.bucket(&input.bucket).await?;
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for object in input.delete.objects {
        match remove(gateway, &input.bucket, &object.key).await {
            Ok(()) if quiet => {}
            Ok(()) => deleted.push(DeletedObject {
                key: Some(object.key),
                ..Default::default()
            }),
            Err(failure) => errors.push(Error {
                code: Some(failure.code().as_str().to_string()),
                key: Some(object.key),
                message: failure.message().map(str::to_string),
                version_id: None,
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        ..Default::default()
    }))
}

/// The bucket and key of a copy source (s3s has parsed the header: a valid bucket name
/// and key); access points and versions are not supported.
pub(crate) fn copy_source_location(source: &CopySource) -> S3Result<(&str, &str)> {
    let CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = source
    else {
        return Err(error(
            S3ErrorCode::NotImplemented,
            "Access point copy sources are not supported",
        ));
    };
    if version_id.is_some() {
        return Err(error(
            S3ErrorCode::NotImplemented,
            "Versioning is not supported",
        ));
    }
    Ok((bucket, key))
}

/// The source object of a copy, with the copy-source preconditions applied.
pub async fn copy_source(
    gateway: &Gateway,
    source: &CopySource,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<ObjectRecord> {
    let (bucket, key) = copy_source_location(source)?;
    let object = existing_object(gateway, bucket, key).await?.record;
    let preconditions = Preconditions {
        if_match,
        if_none_match,
        if_modified_since_unix_seconds: if_modified_since.map(unix_seconds),
        if_unmodified_since_unix_seconds: if_unmodified_since.map(unix_seconds),
    };
    match evaluate(
        &preconditions,
        &object.etag,
        (object.created_unix_ms / 1000) as i64,
    ) {
        Verdict::Proceed => Ok(object),
        // For copies S3 answers 412 for both kinds of failed precondition.
        Verdict::NotModified | Verdict::PreconditionFailed => Err(error(
            S3ErrorCode::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        )),
    }
}

pub async fn copy_object(
    gateway: &Gateway,
    request: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let input = request.input;
    check_key(&input.key)?;
    let source = copy_source(
        gateway,
        &input.copy_source,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )
    .await?;
    if source.size_bytes > OBJECT_BYTES_MAX {
        return Err(error(
            S3ErrorCode::InvalidRequest,
            "The source is larger than 5 GiB: use UploadPartCopy",
        ));
    }
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|directive| directive.as_str() == MetadataDirective::REPLACE);
    let same_place = matches!(&input.copy_source, CopySource::Bucket { bucket, key, .. }
        if **bucket == *input.bucket && **key == *input.key);
    if same_place && !replace && input.storage_class.is_none() {
        return Err(error(
            S3ErrorCode::InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let (content_type, metadata) = if replace {
        (
            input
                .content_type
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string()),
            user_metadata(input.metadata)?,
        )
    } else {
        (source.content_type.clone(), source.user_metadata.clone())
    };
    let bucket = gateway.bucket(&input.bucket).await?;
    let storage_class = input
        .storage_class
        .map(|class| class.as_str().to_string())
        .or_else(|| source.storage_class.clone());
    let plan = plan_for(storage_class.as_deref(), bucket.record.default_redundancy).map_err(
        |invalid| {
            error(
                S3ErrorCode::InvalidStorageClass,
                format!(
                    "The storage class you specified is not valid: {}",
                    invalid.0
                ),
            )
        },
    )?;
    let (write, _) = upload(
        gateway,
        &input.bucket,
        &input.key,
        ObjectId::random(),
        plan,
        copy_stream(gateway, &source, 0..source.size_bytes),
        Some(source.size_bytes),
        OBJECT_BYTES_MAX,
        Expected::default(),
        None,
    )
    .await?;
    let written = write.written();
    let record = ObjectRecord {
        bucket: input.bucket,
        key: input.key,
        id: written.object_id,
        size_bytes: written.size_bytes,
        // A copy of a multipart object is one part now: its ETag is the plain MD5.
        etag: etag::single_part(written.md5),
        content_type,
        user_metadata: metadata,
        storage_class,
        redundancy: plan.level,
        created_unix_ms: unix_ms_now(),
        shardlets: Vec::new(),
        checksums: source.checksums.clone(),
        parts_count: None,
    };
    let committed = gateway
        .commit
        .put_object(write, record, CommitCondition::Always, None)
        .await
        .map_err(from_commit)?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(etag::bare(&committed.etag).to_string())),
            last_modified: Some(timestamp_of_unix_ms(committed.created_unix_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}
