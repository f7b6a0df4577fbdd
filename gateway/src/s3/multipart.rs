//! Multipart uploads as S3 sees them: part numbers, part lists, the rules for a valid
//! completion, listings of parts. The commits themselves (and why a completion cannot
//! publish a part that is being replaced) are in `crate::object::commit`.

use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};
use shardlet_core::ObjectId;
use shardlet_model::schema::{MultipartUploadRecord, ObjectRecord, PartRecord, StoredChecksums};
use shardlet_model::Stored;

use crate::object::commit::{CompleteError, Completion};
use crate::object::etag;
use crate::object::storage_class::plan_for;
use crate::object::unix_ms_now;
use crate::s3::body::{body_stream, copy_stream};
use crate::s3::checksums::{expected_of, Expected};
use crate::s3::errors::{error, from_catalog, from_checksum, from_commit, no_such_upload};
use crate::s3::gateway::{timestamp_of_unix_ms, Gateway};
use crate::s3::limits::{
    LIST_PAGE_MAX, OBJECT_SHARDLETS_MAX, PART_BYTES_MAX, PART_BYTES_MIN, PART_NUMBER_MAX,
};
use crate::s3::objects::{
    check_key, copy_source, declared_length, storage_plan, upload, user_metadata,
    DEFAULT_CONTENT_TYPE,
};

async fn existing_upload(
    gateway: &Gateway,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> S3Result<Stored<MultipartUploadRecord>> {
    if upload_id.is_empty()
        || upload_id.len() > 128
        || !upload_id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(no_such_upload());
    }
    gateway.bucket(bucket).await?;
    gateway
        .catalog
        .upload(bucket, key, upload_id)
        .await
        .map_err(from_catalog)?
        .ok_or_else(no_such_upload)
}

/// An upload that takes parts: existing and not being completed or aborted.
async fn open_upload(
    gateway: &Gateway,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> S3Result<Stored<MultipartUploadRecord>> {
    let upload = existing_upload(gateway, bucket, key, upload_id).await?;
    if upload.record.closing {
        return Err(upload_closing());
    }
    Ok(upload)
}

fn upload_closing() -> s3s::S3Error {
    error(
        S3ErrorCode::OperationAborted,
        "A conflicting conditional operation is currently in progress against this resource: the upload is being completed or aborted",
    )
}

pub(crate) fn part_number(number: i32) -> S3Result<u16> {
    if !(1..=PART_NUMBER_MAX).contains(&number) {
        return Err(error(
            S3ErrorCode::InvalidArgument,
            format!("Part number must be an integer between 1 and {PART_NUMBER_MAX}, inclusive"),
        ));
    }
    Ok(number as u16)
}

pub async fn create_multipart_upload(
    gateway: &Gateway,
    request: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = request.input;
    check_key(&input.key)?;
    let metadata = user_metadata(input.metadata)?;
    let bucket = gateway.bucket(&input.bucket).await?;
    let plan = storage_plan(
        input.storage_class.as_ref(),
        bucket.record.default_redundancy,
    )?;
    let upload_id = hex::encode(rand::random::<[u8; 16]>());
    let record = MultipartUploadRecord {
        upload_id: upload_id.clone(),
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        object_id: ObjectId::random(),
        content_type: input
            .content_type
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string()),
        user_metadata: metadata,
        redundancy: plan.level,
        initiated_unix_ms: unix_ms_now(),
        storage_class: input.storage_class.map(|class| class.as_str().to_string()),
        closing: false,
    };
    gateway
        .commit
        .create_upload(bucket.version, &record)
        .await
        .map_err(|_| error(S3ErrorCode::OperationAborted, "The bucket changed; retry"))?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        ..Default::default()
    }))
}

pub async fn upload_part(
    gateway: &Gateway,
    request: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let input = request.input;
    let number = part_number(input.part_number)?;
    let upload_record = open_upload(gateway, &input.bucket, &input.key, &input.upload_id).await?;
    let plan = plan_for(
        upload_record.record.storage_class.as_deref(),
        upload_record.record.redundancy,
    )
    .map_err(|invalid| error(S3ErrorCode::InvalidStorageClass, invalid.to_string()))?;
    let expected = expected_of!(&request.headers, input).map_err(from_checksum)?;
    let (write, checksums) = upload(
        gateway,
        &input.bucket,
        &input.key,
        ObjectId::random(),
        plan,
        body_stream(input.body),
        declared_length(input.content_length)?,
        PART_BYTES_MAX,
        expected,
        request.trailing_headers.as_ref(),
    )
    .await?;
    let part = gateway
        .commit
        .put_part(write, &upload_record, number, checksums)
        .await
        .map_err(from_commit)?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(etag::bare(&part.etag).to_string())),
        checksum_crc32: part.checksums.crc32,
        checksum_crc32c: part.checksums.crc32c,
        checksum_crc64nvme: part.checksums.crc64nvme,
        checksum_sha1: part.checksums.sha1,
        checksum_sha256: part.checksums.sha256,
        ..Default::default()
    }))
}

/// `bytes=first-last` of x-amz-copy-source-range (both bounds required, as in S3).
pub(crate) fn copy_range(text: Option<&str>, size: u64) -> S3Result<std::ops::Range<u64>> {
    let Some(text) = text else {
        return Ok(0..size);
    };
    let invalid = || {
        error(S3ErrorCode::InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
    };
    let (first, last) = text
        .strip_prefix("bytes=")
        .and_then(|rest| rest.split_once('-'))
        .ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if first > last || last >= size {
        return Err(error(
            S3ErrorCode::InvalidRange,
            "The requested range is not satisfiable",
        ));
    }
    Ok(first..last + 1)
}

pub async fn upload_part_copy(
    gateway: &Gateway,
    request: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = request.input;
    let number = part_number(input.part_number)?;
    let upload_record = open_upload(gateway, &input.bucket, &input.key, &input.upload_id).await?;
    let source = copy_source(
        gateway,
        &input.copy_source,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )
    .await?;
    let range = copy_range(input.copy_source_range.as_deref(), source.size_bytes)?;
    if range.end - range.start > PART_BYTES_MAX {
        return Err(error(
            S3ErrorCode::EntityTooLarge,
            "A part may be at most 5 GiB",
        ));
    }
    let plan = plan_for(
        upload_record.record.storage_class.as_deref(),
        upload_record.record.redundancy,
    )
    .map_err(|invalid| error(S3ErrorCode::InvalidStorageClass, invalid.to_string()))?;
    let (write, checksums) = upload(
        gateway,
        &input.bucket,
        &input.key,
        ObjectId::random(),
        plan,
        copy_stream(gateway, &source, range.clone()),
        Some(range.end - range.start),
        PART_BYTES_MAX,
        Expected::default(),
        None,
    )
    .await?;
    let part = gateway
        .commit
        .put_part(write, &upload_record, number, checksums)
        .await
        .map_err(from_commit)?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(etag::bare(&part.etag).to_string())),
            last_modified: Some(timestamp_of_unix_ms(part.uploaded_unix_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub async fn complete_multipart_upload(
    gateway: &Gateway,
    request: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = request.input;
    let upload_record =
        existing_upload(gateway, &input.bucket, &input.key, &input.upload_id).await?;
    let requested = input
        .multipart_upload
        .and_then(|upload| upload.parts)
        .unwrap_or_default();
    if requested.is_empty() {
        return Err(error(
            S3ErrorCode::MalformedXML,
            "You must specify at least one part",
        ));
    }
    let upload = upload_record.record.clone();
    let record = gateway
        .commit
        .complete_upload(upload_record, |stored| {
            completion(&upload, &requested, stored)
        })
        .await
        .map_err(|failure| match failure {
            CompleteError::Refused(refusal) => refusal,
            CompleteError::Commit(commit) => from_commit(commit),
        })?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        e_tag: Some(ETag::Strong(etag::bare(&record.etag).to_string())),
        ..Default::default()
    }))
}

/// S3's rules for a completion, against the parts stored when the upload was marked:
/// ascending part numbers, each stored with a matching ETag, every part but the last
/// at least 5 MiB, and an object this cluster can describe in one record.
fn completion(
    upload: &MultipartUploadRecord,
    requested: &[CompletedPart],
    stored: &BTreeMap<u16, PartRecord>,
) -> S3Result<Completion> {
    let mut chosen: Vec<&PartRecord> = Vec::with_capacity(requested.len());
    let mut previous = 0i32;
    for part in requested {
        let number = part.part_number.unwrap_or(0);
        if number <= previous {
            return Err(error(S3ErrorCode::InvalidPartOrder, "The list of parts was not in ascending order. Parts must be ordered by part number."));
        }
        previous = number;
        let invalid_part = || {
            error(
                S3ErrorCode::InvalidPart,
                format!("Part {number} could not be found or its entity tag does not match"),
            )
        };
        let record = u16::try_from(number)
            .ok()
            .and_then(|n| stored.get(&n))
            .ok_or_else(invalid_part)?;
        if let Some(wanted) = &part.e_tag {
            if wanted.value() != etag::bare(&record.etag) {
                return Err(invalid_part());
            }
        }
        chosen.push(record);
    }
    for part in &chosen[..chosen.len().saturating_sub(1)] {
        if part.size_bytes < PART_BYTES_MIN {
            return Err(error(
                S3ErrorCode::EntityTooSmall,
                format!("Part {} is {} bytes; every part but the last must be at least {PART_BYTES_MIN}", part.part_number, part.size_bytes),
            ));
        }
    }
    let shardlets: Vec<_> = chosen
        .iter()
        .flat_map(|part| part.shardlets.iter().cloned())
        .collect();
    if shardlets.len() > OBJECT_SHARDLETS_MAX {
        return Err(error(
            S3ErrorCode::EntityTooLarge,
            "The object would exceed the largest size this cluster can describe in one record",
        ));
    }
    let object_etag =
        etag::multipart(chosen.iter().map(|part| part.etag.as_str())).ok_or_else(|| {
            error(
                S3ErrorCode::InternalError,
                "A stored part ETag is malformed",
            )
        })?;
    Ok(Completion {
        record: ObjectRecord {
            bucket: upload.bucket.clone(),
            key: upload.key.clone(),
            id: upload.object_id,
            size_bytes: chosen.iter().map(|part| part.size_bytes).sum(),
            etag: object_etag,
            content_type: upload.content_type.clone(),
            user_metadata: upload.user_metadata.clone(),
            storage_class: upload.storage_class.clone(),
            redundancy: upload.redundancy,
            created_unix_ms: unix_ms_now(),
            shardlets,
            checksums: StoredChecksums::default(),
            parts_count: Some(chosen.len() as u32),
        },
        chosen: chosen.iter().map(|part| part.part_number).collect(),
    })
}

pub async fn abort_multipart_upload(
    gateway: &Gateway,
    request: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = request.input;
    let upload_record =
        existing_upload(gateway, &input.bucket, &input.key, &input.upload_id).await?;
    gateway
        .commit
        .abort_upload(upload_record)
        .await
        .map_err(from_commit)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub async fn list_parts(
    gateway: &Gateway,
    request: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = request.input;
    let upload_record =
        existing_upload(gateway, &input.bucket, &input.key, &input.upload_id).await?;
    let limit = match input.max_parts {
        Some(value) if value < 0 => {
            return Err(error(
                S3ErrorCode::InvalidArgument,
                "max-parts must not be negative",
            ))
        }
        Some(value) => (value as usize).min(LIST_PAGE_MAX),
        None => LIST_PAGE_MAX,
    };
    let marker = match input.part_number_marker {
        None => 0u16,
        Some(number) => u16::try_from(number).map_err(|_| {
            error(
                S3ErrorCode::InvalidArgument,
                "part-number-marker must be a part number",
            )
        })?,
    };
    let (page, more) = gateway
        .catalog
        .parts(&input.upload_id, marker, limit)
        .await
        .map_err(from_catalog)?;
    let page: Vec<PartRecord> = page.into_iter().map(|part| part.record).collect();
    let next_marker = page.last().map(|part| i32::from(part.part_number));
    let parts = page
        .into_iter()
        .map(|part| Part {
            part_number: Some(i32::from(part.part_number)),
            size: Some(part.size_bytes as i64),
            e_tag: Some(ETag::Strong(etag::bare(&part.etag).to_string())),
            last_modified: Some(timestamp_of_unix_ms(part.uploaded_unix_ms)),
            checksum_crc32: part.checksums.crc32,
            checksum_crc32c: part.checksums.crc32c,
            checksum_crc64nvme: part.checksums.crc64nvme,
            checksum_sha1: part.checksums.sha1,
            checksum_sha256: part.checksums.sha256,
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        max_parts: Some(limit as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: if more { next_marker } else { None },
        is_truncated: Some(more),
        parts: Some(parts),
        storage_class: Some(StorageClass::from(
            crate::object::storage_class::reported(upload_record.record.storage_class.as_deref())
                .to_string(),
        )),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_ranges_parse_or_are_refused() {
        assert_eq!(copy_range(None, 10).ok(), Some(0..10));
        assert_eq!(copy_range(Some("bytes=2-5"), 10).ok(), Some(2..6));
        assert_eq!(copy_range(Some("bytes=0-9"), 10).ok(), Some(0..10));
        for bad in [
            "bytes=5-2",
            "bytes=0-10",
            "2-5",
            "bytes=-5",
            "bytes=a-b",
            "bytes=3-",
        ] {
            assert!(copy_range(Some(bad), 10).is_err(), "{bad}");
        }
    }

    #[test]
    fn part_numbers_are_one_to_ten_thousand() {
        assert!(part_number(0).is_err());
        assert!(part_number(10_001).is_err());
        assert!(part_number(-3).is_err());
        assert_eq!(part_number(1).ok(), Some(1));
        assert_eq!(part_number(10_000).ok(), Some(10_000));
    }
}
