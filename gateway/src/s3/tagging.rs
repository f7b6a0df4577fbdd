//! Bucket tagging: Put/Get/DeleteBucketTagging.
//!
//! The tags live in the bucket's record in meta-raft (`BucketRecord::tags`), changed by
//! a compare-and-set like every other bucket change (`object/commit/bucket.rs`): one
//! write, so a crash leaves the old tag set or the new one, never part of either. S3's
//! rules are checked here, before anything is written, each refusal an `InvalidTag`
//! (400) naming the rule: at most [`TAGS_MAX`] tags, keys of 1..=[`TAG_KEY_CHARS_MAX`]
//! and values of at most [`TAG_VALUE_CHARS_MAX`] Unicode characters, keys unique, no
//! key starting with `aws:` (reserved for AWS's own tags). A Tag without a Key or a
//! Value element is MalformedXML, as the schema requires both.
//!
//! An empty tag set is "no tags": GET answers 404 NoSuchTagSet, as S3 does for a bucket
//! that has none, and a PUT of an empty set is a delete. Access was checked before
//! (`s3/access.rs`): all three need the bucket's owner, as in S3.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use shardlet_model::schema::BucketTag;

use crate::s3::errors::{error, from_catalog};
use crate::s3::gateway::Gateway;

/// S3's limit of tags on one bucket.
pub const TAGS_MAX: usize = 50;
/// S3's limit of a tag key, in Unicode characters.
pub const TAG_KEY_CHARS_MAX: usize = 128;
/// S3's limit of a tag value, in Unicode characters.
pub const TAG_VALUE_CHARS_MAX: usize = 256;
/// The prefix of the tags AWS sets itself; a client may not.
const RESERVED_PREFIX: &str = "aws:";

pub async fn put_bucket_tagging(
    gateway: &Gateway,
    request: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let input = request.input;
    gateway.bucket(&input.bucket).await?;
    let tags = validated(input.tagging.tag_set)?;
    gateway
        .commit
        .buckets()
        .set_bucket_tags(&input.bucket, tags)
        .await
        .map_err(from_catalog)?;
    Ok(S3Response::new(PutBucketTaggingOutput {}))
}

pub async fn get_bucket_tagging(
    gateway: &Gateway,
    request: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let bucket = gateway.bucket(&request.input.bucket).await?;
    if bucket.record.tags.is_empty() {
        return Err(error(
            S3ErrorCode::NoSuchTagSet,
            "The TagSet does not exist",
        ));
    }
    let tag_set = bucket
        .record
        .tags
        .into_iter()
        .map(|tag| Tag {
            key: Some(tag.key),
            value: Some(tag.value),
        })
        .collect();
    Ok(S3Response::new(GetBucketTaggingOutput { tag_set }))
}

/// 204 whether or not the bucket had tags: afterwards it has none.
pub async fn delete_bucket_tagging(
    gateway: &Gateway,
    request: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let bucket = &request.input.bucket;
    gateway.bucket(bucket).await?;
    gateway
        .commit
        .buckets()
        .set_bucket_tags(bucket, Vec::new())
        .await
        .map_err(from_catalog)?;
    Ok(S3Response::new(DeleteBucketTaggingOutput {}))
}

fn invalid(message: impl Into<String>) -> S3Error {
    error(S3ErrorCode::InvalidTag, message.into())
}

/// The tags of a PutBucketTagging, checked against S3's rules, in the order given.
fn validated(tag_set: TagSet) -> S3Result<Vec<BucketTag>> {
    if tag_set.len() > TAGS_MAX {
        return Err(invalid(format!(
            "Bucket tag count cannot be greater than {TAGS_MAX}"
        )));
    }
    let mut tags: Vec<BucketTag> = Vec::with_capacity(tag_set.len());
    for tag in tag_set {
        let (Some(key), Some(value)) = (tag.key, tag.value) else {
            return Err(error(
                S3ErrorCode::MalformedXML,
                "Every Tag must have a Key and a Value",
            ));
        };
        if key.is_empty() {
            return Err(invalid("The TagKey you have provided is invalid"));
        }
        if key.chars().count() > TAG_KEY_CHARS_MAX {
            return Err(invalid(format!(
                "The TagKey you have provided is too long, max {TAG_KEY_CHARS_MAX}"
            )));
        }
        if value.chars().count() > TAG_VALUE_CHARS_MAX {
            return Err(invalid(format!(
                "The TagValue you have provided is too long, max {TAG_VALUE_CHARS_MAX}"
            )));
        }
        if key.starts_with(RESERVED_PREFIX) {
            return Err(invalid("Your TagKey cannot be prefixed with aws:"));
        }
        if tags.iter().any(|existing| existing.key == key) {
            return Err(invalid("Cannot provide multiple Tags with the same key"));
        }
        tags.push(BucketTag { key, value });
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tag(key: &str, value: &str) -> Tag {
        Tag {
            key: Some(key.to_string()),
            value: Some(value.to_string()),
        }
    }

    fn refusal(tag_set: TagSet) -> (String, String) {
        let refused = validated(tag_set).expect_err("should be refused");
        (
            refused.code().as_str().to_string(),
            refused.message().unwrap_or_default().to_string(),
        )
    }

    #[test]
    fn tags_within_the_limits_are_kept_in_order() {
        let key = "k".repeat(TAG_KEY_CHARS_MAX);
        let value = "v".repeat(TAG_VALUE_CHARS_MAX);
        let tags = validated(vec![tag("b", ""), tag(&key, &value), tag("a", "1")]).unwrap();
        let keys: Vec<&str> = tags.iter().map(|tag| tag.key.as_str()).collect();
        assert_eq!(keys, ["b", key.as_str(), "a"]);
        assert_eq!(
            validated((0..TAGS_MAX).map(|i| tag(&i.to_string(), "")).collect())
                .unwrap()
                .len(),
            TAGS_MAX
        );
    }

    #[test]
    fn limits_count_unicode_characters_not_bytes() {
        // "é" is two bytes: 128 of them is 256 bytes but 128 characters.
        let key = "é".repeat(TAG_KEY_CHARS_MAX);
        let value = "日".repeat(TAG_VALUE_CHARS_MAX);
        assert!(validated(vec![tag(&key, &value)]).is_ok());
        let (code, _) = refusal(vec![tag(&"é".repeat(TAG_KEY_CHARS_MAX + 1), "")]);
        assert_eq!(code, "InvalidTag");
    }

    #[test]
    fn each_rule_is_an_invalid_tag_naming_it() {
        let too_many = (0..=TAGS_MAX).map(|i| tag(&i.to_string(), "")).collect();
        assert_eq!(
            refusal(too_many),
            (
                "InvalidTag".into(),
                "Bucket tag count cannot be greater than 50".into()
            )
        );
        assert_eq!(
            refusal(vec![tag("", "v")]).1,
            "The TagKey you have provided is invalid"
        );
        assert_eq!(
            refusal(vec![tag(&"k".repeat(129), "v")]).1,
            "The TagKey you have provided is too long, max 128"
        );
        assert_eq!(
            refusal(vec![tag("k", &"v".repeat(257))]).1,
            "The TagValue you have provided is too long, max 256"
        );
        assert_eq!(
            refusal(vec![tag("aws:cloudformation:stack-name", "v")]).1,
            "Your TagKey cannot be prefixed with aws:"
        );
        assert_eq!(
            refusal(vec![tag("k", "1"), tag("k", "2")]),
            (
                "InvalidTag".into(),
                "Cannot provide multiple Tags with the same key".into()
            )
        );
        let keyless = Tag {
            key: None,
            value: Some("v".into()),
        };
        assert_eq!(refusal(vec![keyless]).0, "MalformedXML");
    }
}
