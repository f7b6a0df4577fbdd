//! ListObjectsV2, ListObjects (V1) and ListMultipartUploads: S3's parameters and
//! answers around the object layer's listing (`crate::object::listing`).

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};
use shardlet_model::schema::ObjectRecord;

use crate::object::etag;
use crate::object::listing::{
    decode_token, encode_token, list_objects as list_bucket_objects, list_uploads, marker_text,
    Entry, Listing, ListingBuilder, MAX_KEYS_DEFAULT,
};
use crate::object::storage_class::reported;
use crate::s3::errors::{error, from_catalog};
use crate::s3::gateway::{timestamp_of_unix_ms, Gateway};
use crate::s3::limits::LIST_PAGE_MAX;

pub(crate) fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS_DEFAULT),
        Some(value) if value < 0 => Err(error(
            S3ErrorCode::InvalidArgument,
            "max-keys must not be negative",
        )),
        Some(value) => Ok((value as usize).min(MAX_KEYS_DEFAULT)),
    }
}

/// S3's `encoding-type=url`: percent-encode everything but unreserved characters and '/'.
fn encode_if(url: bool, text: String) -> String {
    if !url {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(char::from(byte))
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn objects_and_prefixes(
    listing: Listing<ObjectRecord>,
    url: bool,
) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for entry in listing.entries {
        match entry {
            Entry::Item(key, record) => objects.push(Object {
                key: Some(encode_if(url, key)),
                size: Some(record.size_bytes as i64),
                e_tag: Some(ETag::Strong(etag::bare(&record.etag).to_string())),
                last_modified: Some(timestamp_of_unix_ms(record.created_unix_ms)),
                storage_class: Some(ObjectStorageClass::from(
                    reported(record.storage_class.as_deref()).to_string(),
                )),
                ..Default::default()
            }),
            Entry::CommonPrefix(prefix) => prefixes.push(CommonPrefix {
                prefix: Some(encode_if(url, prefix)),
            }),
        }
    }
    (objects, prefixes)
}

fn wants_url(encoding: Option<&EncodingType>) -> bool {
    encoding.is_some_and(|encoding| encoding.as_str() == EncodingType::URL)
}

pub async fn list_objects_v2(
    gateway: &Gateway,
    request: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = request.input;
    gateway.bucket(&input.bucket).await?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let limit = max_keys(input.max_keys)?;
    let mut builder = ListingBuilder::new(&prefix, input.delimiter.as_deref(), limit);
    let start_after = match (&input.continuation_token, &input.start_after) {
        (Some(token), _) => Some(decode_token(token).ok_or_else(|| {
            error(
                S3ErrorCode::InvalidArgument,
                "The continuation token provided is incorrect",
            )
        })?),
        (None, Some(after)) => Some(after.as_bytes().to_vec()),
        (None, None) => None,
    };
    list_bucket_objects(&gateway.catalog, &input.bucket, &mut builder, start_after)
        .await
        .map_err(from_catalog)?;
    let listing = builder.finish();
    let next = listing.next_start_after.as_deref().map(encode_token);
    let truncated = listing.is_truncated;
    let url = wants_url(input.encoding_type.as_ref());
    let (contents, common_prefixes) = objects_and_prefixes(listing, url);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(encode_if(url, prefix)),
        delimiter: input.delimiter.map(|d| encode_if(url, d)),
        max_keys: Some(limit as i32),
        key_count: Some((contents.len() + common_prefixes.len()) as i32),
        continuation_token: input.continuation_token,
        next_continuation_token: next,
        is_truncated: Some(truncated),
        start_after: input.start_after.map(|s| encode_if(url, s)),
        encoding_type: input.encoding_type,
        contents: Some(contents),
        common_prefixes: Some(common_prefixes),
        ..Default::default()
    }))
}

pub async fn list_objects(
    gateway: &Gateway,
    request: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = request.input;
    gateway.bucket(&input.bucket).await?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let limit = max_keys(input.max_keys)?;
    let mut builder = ListingBuilder::new(&prefix, input.delimiter.as_deref(), limit);
    let start_after = input
        .marker
        .as_deref()
        .map(|marker| builder.start_after_for_marker(marker));
    list_bucket_objects(&gateway.catalog, &input.bucket, &mut builder, start_after)
        .await
        .map_err(from_catalog)?;
    let listing = builder.finish();
    let url = wants_url(input.encoding_type.as_ref());
    // S3 returns NextMarker only with a delimiter; clients use the last key otherwise.
    let next_marker = match (&input.delimiter, &listing.next_start_after) {
        (Some(_), Some(next)) => Some(encode_if(url, marker_text(next))),
        _ => None,
    };
    let truncated = listing.is_truncated;
    let (contents, common_prefixes) = objects_and_prefixes(listing, url);
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(encode_if(url, prefix)),
        marker: input.marker.map(|m| encode_if(url, m)),
        next_marker,
        delimiter: input.delimiter.map(|d| encode_if(url, d)),
        max_keys: Some(limit as i32),
        is_truncated: Some(truncated),
        encoding_type: input.encoding_type,
        contents: Some(contents),
        common_prefixes: Some(common_prefixes),
        ..Default::default()
    }))
}

pub async fn list_multipart_uploads(
    gateway: &Gateway,
    request: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = request.input;
    gateway.bucket(&input.bucket).await?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let limit = match input.max_uploads {
        Some(value) if value < 0 => {
            return Err(error(
                S3ErrorCode::InvalidArgument,
                "max-uploads must not be negative",
            ))
        }
        Some(value) => (value as usize).min(LIST_PAGE_MAX),
        None => LIST_PAGE_MAX,
    };
    let mut builder = ListingBuilder::new(&prefix, input.delimiter.as_deref(), limit);
    // Upload keys are `{key}\0{upload id}`: after a key marker alone means after every
    // upload of that key (0xFF sorts after any upload id).
    let start_after = input.key_marker.as_ref().map(|key| {
        let mut bytes = key.as_bytes().to_vec();
        bytes.push(0);
        match &input.upload_id_marker {
            Some(upload) => bytes.extend_from_slice(upload.as_bytes()),
            None => bytes.push(0xFF),
        }
        bytes
    });
    list_uploads(&gateway.catalog, &input.bucket, &mut builder, start_after)
        .await
        .map_err(from_catalog)?;
    let listing = builder.finish();
    let truncated = listing.is_truncated;
    let mut uploads = Vec::new();
    let mut prefixes = Vec::new();
    let mut last: Option<(String, String)> = None;
    for entry in listing.entries {
        match entry {
            Entry::Item(key, record) => {
                last = Some((key.clone(), record.upload_id.clone()));
                uploads.push(MultipartUpload {
                    key: Some(key),
                    upload_id: Some(record.upload_id),
                    initiated: Some(timestamp_of_unix_ms(record.initiated_unix_ms)),
                    storage_class: Some(StorageClass::from(
                        reported(record.storage_class.as_deref()).to_string(),
                    )),
                    ..Default::default()
                });
            }
            Entry::CommonPrefix(prefix) => prefixes.push(CommonPrefix {
                prefix: Some(prefix),
            }),
        }
    }
    let (next_key_marker, next_upload_id_marker) = match (truncated, last) {
        (true, Some((key, upload))) => (Some(key), Some(upload)),
        _ => (None, None),
    };
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: Some(prefix),
        delimiter: input.delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        next_key_marker,
        next_upload_id_marker,
        max_uploads: Some(limit as i32),
        is_truncated: Some(truncated),
        uploads: Some(uploads),
        common_prefixes: Some(prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved_characters() {
        assert_eq!(encode_if(true, "a b/c+d%é".into()), "a%20b/c%2Bd%25%C3%A9");
        assert_eq!(encode_if(false, "a b".into()), "a b");
        assert_eq!(encode_if(true, "A-z_0.9~".into()), "A-z_0.9~");
    }

    #[test]
    fn negative_max_keys_are_refused_and_large_ones_capped() {
        assert!(max_keys(Some(-1)).is_err());
        assert_eq!(max_keys(Some(5000)).ok(), Some(MAX_KEYS_DEFAULT));
        assert_eq!(max_keys(None).ok(), Some(MAX_KEYS_DEFAULT));
        assert_eq!(max_keys(Some(0)).ok(), Some(0));
    }
}
