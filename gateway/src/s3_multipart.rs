//! Multipart uploads. Each part is written through the write path under its own object
//! id (so a re-uploaded part never collides with the one it replaces) and committed as
//! a part record; CompleteMultipartUpload then publishes ONE object record that
//! references the chosen parts' shardlets — no data is copied.
//!
//! Crash windows: parts not chosen by Complete, replaced parts and aborted uploads
//! become `Garbage` intents in the batch that unreferences them. Part records are
//! deleted after Complete / Abort in follow-up batches; a crash in between leaves
//! invisible part records behind (a few hundred bytes each), never data.

use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};
use shardlet_core::ObjectId;

use crate::catalog::{unix_ms_now, Stored};
use crate::checksums::Expected;
use crate::errors::{error, from_catalog, from_checksum, from_write, no_such_upload};
use crate::gateway::{timestamp_of_unix_ms, Gateway};
use crate::limits::{
    LIST_PAGE_MAX, OBJECT_SHARDLETS_MAX, PART_BYTES_MAX, PART_BYTES_MIN, PART_NUMBER_MAX,
};
use crate::metadata::{Batch, BatchOutcome, BATCH_ITEMS_MAX};
use crate::s3_objects::{
    body_stream, check_key, copy_source, copy_stream, declared_length, storage_plan, upload,
    user_metadata, DEFAULT_CONTENT_TYPE,
};
use crate::storage_class::plan_for;
use crate::write_path::{garbage_intent_for, Written, COMMIT_ATTEMPTS_MAX};
use shardlet_meta::schema::{
    encode, keys, IntentRecord, IntentState, MultipartUploadRecord, ObjectRecord, PartRecord,
    StoredChecksums,
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
    gateway
        .catalog
        .existing_bucket(bucket)
        .await
        .map_err(from_catalog)?;
    gateway
        .catalog
        .upload(bucket, key, upload_id)
        .await
        .map_err(from_catalog)?
        .ok_or_else(no_such_upload)
}

fn part_number(number: i32) -> S3Result<u16> {
    if !(1..=PART_NUMBER_MAX).contains(&number) {
        return Err(error(
            S3ErrorCode::InvalidArgument,
            format!("Part number must be an integer between 1 and {PART_NUMBER_MAX}, inclusive"),
        ));
    }
    Ok(number as u16)
}

/// A `Garbage` intent under a fresh id covering `object_ids` (unchosen or aborted parts).
fn garbage_of(object_ids: Vec<ObjectId>, bucket: &str, key: &str) -> (Vec<u8>, Vec<u8>) {
    let id = ObjectId::random();
    let intent = IntentRecord {
        object_id: id,
        state: IntentState::Garbage,
        bucket: bucket.to_string(),
        key: key.to_string(),
        created_unix_ms: unix_ms_now(),
        object_ids,
        records_complete: true,
    };
    (keys::intent(id), encode(&intent))
}

pub async fn create_multipart_upload(
    gateway: &Gateway,
    request: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = request.input;
    check_key(&input.key)?;
    let metadata = user_metadata(input.metadata)?;
    let bucket = gateway
        .catalog
        .existing_bucket(&input.bucket)
        .await
        .map_err(from_catalog)?;
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
    };
    let key = keys::upload(&input.bucket, &input.key, &upload_id);
    let mut batch = Batch::default();
    batch
        .require_version(keys::bucket(&input.bucket), bucket.version)
        .require_absent(key.clone())
        .put(key, encode(&record));
    match gateway.catalog.apply(batch).await.map_err(from_catalog)? {
        BatchOutcome::Applied { .. } => Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        })),
        BatchOutcome::ConditionFailed { .. } => Err(error(
            S3ErrorCode::OperationAborted,
            "The bucket changed; retry",
        )),
    }
}

/// Commits a written part: shardlet records, then part record + intent deletion in one
/// batch conditioned on the upload still existing. A replaced part becomes garbage.
async fn commit_part(
    gateway: &Gateway,
    upload: &Stored<MultipartUploadRecord>,
    number: u16,
    written: &Written,
    checksums: StoredChecksums,
) -> S3Result<PartRecord> {
    gateway
        .writer
        .record_shardlets(written)
        .await
        .map_err(from_write)?;
    let record = PartRecord {
        upload_id: upload.record.upload_id.clone(),
        part_number: number,
        size_bytes: written.size_bytes,
        etag: crate::etag::single_part(written.md5),
        shardlets: written.references(),
        uploaded_unix_ms: unix_ms_now(),
        part_object_id: written.object_id,
        checksums,
    };
    let upload_key = keys::upload(
        &upload.record.bucket,
        &upload.record.key,
        &upload.record.upload_id,
    );
    for _ in 0..COMMIT_ATTEMPTS_MAX {
        let current = gateway
            .catalog
            .part(&upload.record.upload_id, number)
            .await
            .map_err(from_catalog)?;
        let mut batch = Batch::default();
        batch
            .require_version(keys::intent(written.object_id), written.intent_version)
            .require_version(upload_key.clone(), upload.version)
            .require_version(
                keys::part(&upload.record.upload_id, number),
                current.as_ref().map_or(0, |part| part.version),
            )
            .put(
                keys::part(&upload.record.upload_id, number),
                encode(&record),
            )
            .delete(keys::intent(written.object_id));
        if let Some(old) = &current {
            let (key, value) = garbage_of(
                vec![old.record.part_object_id],
                &upload.record.bucket,
                &upload.record.key,
            );
            batch.put(key, value);
        }
        match gateway.catalog.apply(batch).await.map_err(from_catalog)? {
            BatchOutcome::Applied { .. } => {
                if current.is_some() {
                    // Collected by the sweep: its intent id is random, not the part's.
                    tracing::debug!(part = number, "replaced part queued for collection");
                }
                return Ok(record);
            }
            BatchOutcome::ConditionFailed { key } if key == upload_key => {
                gateway
                    .writer
                    .abandon(written.object_id, written.intent_version)
                    .await;
                return Err(no_such_upload());
            }
            BatchOutcome::ConditionFailed { key } if key == keys::intent(written.object_id) => {
                return Err(from_write(crate::write_path::WriteError::Abandoned));
            }
            BatchOutcome::ConditionFailed { .. } => continue,
        }
    }
    gateway
        .writer
        .abandon(written.object_id, written.intent_version)
        .await;
    Err(error(
        S3ErrorCode::OperationAborted,
        "Too many concurrent uploads of this part; retry",
    ))
}

pub async fn upload_part(
    gateway: &Gateway,
    request: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let input = request.input;
    let number = part_number(input.part_number)?;
    let upload_record =
        existing_upload(gateway, &input.bucket, &input.key, &input.upload_id).await?;
    let plan = plan_for(
        upload_record.record.storage_class.as_deref(),
        upload_record.record.redundancy,
    )
    .map_err(|invalid| error(S3ErrorCode::InvalidStorageClass, invalid.to_string()))?;
    let expected = Expected::from_request(
        &request.headers,
        input.content_md5.as_deref(),
        Checksum {
            checksum_crc32: input.checksum_crc32,
            checksum_crc32c: input.checksum_crc32c,
            checksum_crc64nvme: input.checksum_crc64nvme,
            checksum_sha1: input.checksum_sha1,
            checksum_sha256: input.checksum_sha256,
            ..Default::default()
        },
        input
            .checksum_algorithm
            .as_ref()
            .map(ChecksumAlgorithm::as_str),
    )
    .map_err(from_checksum)?;
    let (written, checksums) = upload(
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
    let part = commit_part(gateway, &upload_record, number, &written, checksums).await?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(crate::etag::bare(&part.etag).to_string())),
        checksum_crc32: part.checksums.crc32,
        checksum_crc32c: part.checksums.crc32c,
        checksum_crc64nvme: part.checksums.crc64nvme,
        checksum_sha1: part.checksums.sha1,
        checksum_sha256: part.checksums.sha256,
        ..Default::default()
    }))
}

/// `bytes=first-last` of x-amz-copy-source-range (both bounds required, as in S3).
fn copy_range(text: Option<&str>, size: u64) -> S3Result<std::ops::Range<u64>> {
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
    let upload_record =
        existing_upload(gateway, &input.bucket, &input.key, &input.upload_id).await?;
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
    let (written, checksums) = upload(
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
    let part = commit_part(gateway, &upload_record, number, &written, checksums).await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(crate::etag::bare(&part.etag).to_string())),
            last_modified: Some(timestamp_of_unix_ms(part.uploaded_unix_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// Every part record of an upload, ascending (at most 10 000).
async fn all_parts(gateway: &Gateway, upload_id: &str) -> S3Result<BTreeMap<u16, PartRecord>> {
    let mut parts = BTreeMap::new();
    let mut after = 0u16;
    loop {
        let (page, more) = gateway
            .catalog
            .parts(upload_id, after, LIST_PAGE_MAX)
            .await
            .map_err(from_catalog)?;
        let Some(last) = page.last().map(|part| part.part_number) else {
            break;
        };
        for part in page {
            parts.insert(part.part_number, part);
        }
        if !more || last >= PART_NUMBER_MAX as u16 {
            break;
        }
        after = last;
    }
    Ok(parts)
}

/// Deletes part records in batches after Complete/Abort (best effort; see module doc).
async fn forget_parts(gateway: &Gateway, upload_id: &str, numbers: Vec<u16>) {
    for chunk in numbers.chunks(BATCH_ITEMS_MAX - 8) {
        let mut batch = Batch::default();
        for number in chunk {
            batch.delete(keys::part(upload_id, *number));
        }
        if let Err(error) = gateway.catalog.apply(batch).await {
            tracing::warn!(%upload_id, %error, "part records left behind");
            return;
        }
    }
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
    let stored = all_parts(gateway, &input.upload_id).await?;
    let mut chosen: Vec<&PartRecord> = Vec::with_capacity(requested.len());
    let mut previous = 0i32;
    for part in &requested {
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
        if let Some(etag) = &part.e_tag {
            if etag.value() != crate::etag::bare(&record.etag) {
                return Err(invalid_part());
            }
        }
        chosen.push(record);
    }
    for part in &chosen[..chosen.len() - 1] {
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
    let etag =
        crate::etag::multipart(chosen.iter().map(|part| part.etag.as_str())).ok_or_else(|| {
            error(
                S3ErrorCode::InternalError,
                "A stored part ETag is malformed",
            )
        })?;
    let record = ObjectRecord {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        id: upload_record.record.object_id,
        size_bytes: chosen.iter().map(|part| part.size_bytes).sum(),
        etag,
        content_type: upload_record.record.content_type.clone(),
        user_metadata: upload_record.record.user_metadata.clone(),
        storage_class: upload_record.record.storage_class.clone(),
        redundancy: upload_record.record.redundancy,
        created_unix_ms: unix_ms_now(),
        shardlets,
        checksums: StoredChecksums::default(),
        parts_count: Some(chosen.len() as u32),
    };
    let chosen_numbers: Vec<u16> = chosen.iter().map(|part| part.part_number).collect();
    let unchosen: Vec<ObjectId> = stored
        .values()
        .filter(|part| !chosen_numbers.contains(&part.part_number))
        .map(|part| part.part_object_id)
        .collect();
    let upload_key = keys::upload(&input.bucket, &input.key, &input.upload_id);
    for attempt in 0..COMMIT_ATTEMPTS_MAX {
        // The batch is conditioned on the bucket's version, so the first attempt may take
        // it from the cache (`existing_upload` just read it fresh); a retry reads it fresh.
        let bucket = if attempt == 0 {
            gateway.catalog.existing_bucket_recent(&input.bucket).await
        } else {
            gateway.catalog.existing_bucket(&input.bucket).await
        }
        .map_err(from_catalog)?;
        let current = gateway
            .catalog
            .object(&input.bucket, &input.key)
            .await
            .map_err(from_catalog)?;
        let mut batch = Batch::default();
        batch
            .require_version(upload_key.clone(), upload_record.version)
            .require_version(keys::bucket(&input.bucket), bucket.version)
            .require_version(
                keys::object(&input.bucket, &input.key),
                current.as_ref().map_or(0, |c| c.version),
            )
            .put(keys::object(&input.bucket, &input.key), encode(&record))
            .delete(upload_key.clone());
        if let Some(old) = &current {
            let (key, value) = garbage_intent_for(&old.record);
            batch.put(key, value);
        }
        if !unchosen.is_empty() {
            let (key, value) = garbage_of(unchosen.clone(), &input.bucket, &input.key);
            batch.put(key, value);
        }
        match gateway.catalog.apply(batch).await.map_err(from_catalog)? {
            BatchOutcome::Applied { .. } => {
                if let Some(old) = current {
                    gateway.writer.collector.collect_soon(old.record.id);
                }
                forget_parts(gateway, &input.upload_id, stored.keys().copied().collect()).await;
                return Ok(S3Response::new(CompleteMultipartUploadOutput {
                    bucket: Some(input.bucket.clone()),
                    key: Some(input.key.clone()),
                    location: Some(format!("/{}/{}", input.bucket, input.key)),
                    e_tag: Some(ETag::Strong(crate::etag::bare(&record.etag).to_string())),
                    ..Default::default()
                }));
            }
            BatchOutcome::ConditionFailed { key } if key == upload_key => {
                return Err(no_such_upload())
            }
            BatchOutcome::ConditionFailed { .. } => continue,
        }
    }
    Err(error(
        S3ErrorCode::OperationAborted,
        "Too many concurrent writes to this key; retry",
    ))
}

pub async fn abort_multipart_upload(
    gateway: &Gateway,
    request: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = request.input;
    let upload_record =
        existing_upload(gateway, &input.bucket, &input.key, &input.upload_id).await?;
    let stored = all_parts(gateway, &input.upload_id).await?;
    let upload_key = keys::upload(&input.bucket, &input.key, &input.upload_id);
    let mut batch = Batch::default();
    batch
        .require_version(upload_key.clone(), upload_record.version)
        .delete(upload_key);
    if !stored.is_empty() {
        let (key, value) = garbage_of(
            stored.values().map(|part| part.part_object_id).collect(),
            &input.bucket,
            &input.key,
        );
        batch.put(key, value);
    }
    match gateway.catalog.apply(batch).await.map_err(from_catalog)? {
        BatchOutcome::Applied { .. } => {
            forget_parts(gateway, &input.upload_id, stored.keys().copied().collect()).await;
            Ok(S3Response::new(AbortMultipartUploadOutput::default()))
        }
        BatchOutcome::ConditionFailed { .. } => Err(no_such_upload()),
    }
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
    let next_marker = page.last().map(|part| i32::from(part.part_number));
    let parts = page
        .into_iter()
        .map(|part| Part {
            part_number: Some(i32::from(part.part_number)),
            size: Some(part.size_bytes as i64),
            e_tag: Some(ETag::Strong(crate::etag::bare(&part.etag).to_string())),
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
            crate::storage_class::reported(upload_record.record.storage_class.as_deref())
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
