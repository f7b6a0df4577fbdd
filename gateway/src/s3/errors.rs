//! Internal errors → S3 error codes and HTTP statuses. One table, tested, so every
//! operation answers the same failure the same way.

use s3s::{S3Error, S3ErrorCode};

use shardlet_model::MetadataError;

use crate::object::catalog::CatalogError;
use crate::object::commit::CommitError;
use crate::object::read_path::ReadError;
use crate::object::upload_deadline::DeadlineError;
use crate::object::write_path::WriteError;
use crate::s3::checksums::ChecksumError;

pub fn error(code: S3ErrorCode, message: impl Into<String>) -> S3Error {
    S3Error::with_message(code, message.into())
}

pub fn from_catalog(source: CatalogError) -> S3Error {
    match source {
        CatalogError::NoSuchBucket(bucket) => error(
            S3ErrorCode::NoSuchBucket,
            format!("The specified bucket does not exist: {bucket}"),
        ),
        CatalogError::BucketNotEmpty(bucket) => error(
            S3ErrorCode::BucketNotEmpty,
            format!("The bucket you tried to delete is not empty: {bucket}"),
        ),
        CatalogError::BucketExists(bucket) => error(
            S3ErrorCode::BucketAlreadyExists,
            format!("The requested bucket name is not available: {bucket}"),
        ),
        CatalogError::NoSuchCredential(access_key) => error(
            S3ErrorCode::InvalidArgument,
            format!("The access key to grant does not exist: {access_key}"),
        ),
        CatalogError::Conflict(what) => error(
            S3ErrorCode::OperationAborted,
            format!("A conflicting conditional operation is in progress on {what}; retry"),
        ),
        CatalogError::Metadata(source) => from_metadata(source),
    }
}

pub fn from_metadata(source: MetadataError) -> S3Error {
    match source {
        MetadataError::Unavailable(reason) => {
            tracing::warn!(%reason, "metadata unavailable");
            error(
                S3ErrorCode::ServiceUnavailable,
                "The metadata service is unavailable; retry",
            )
        }
        other => {
            tracing::error!(error = %other, "metadata failure");
            error(
                S3ErrorCode::InternalError,
                "Metadata failure; see the gateway log",
            )
        }
    }
}

pub fn from_write(source: WriteError) -> S3Error {
    match source {
        WriteError::TooLarge { max_bytes } => error(
            S3ErrorCode::EntityTooLarge,
            format!("Your proposed upload exceeds the maximum allowed size of {max_bytes} bytes"),
        ),
        WriteError::IncompleteBody { declared, received } => error(
            S3ErrorCode::IncompleteBody,
            format!("You did not provide the number of bytes specified by the Content-Length HTTP header ({received} of {declared})"),
        ),
        WriteError::Body(reason) => error(
            S3ErrorCode::IncompleteBody,
            format!("The request body could not be read: {reason}"),
        ),
        WriteError::Placement { scheme, reason } => {
            tracing::error!(%scheme, %reason, "no placement");
            error(
                S3ErrorCode::ServiceUnavailable,
                "Not enough storage nodes are available for this redundancy level; retry later",
            )
        }
        WriteError::Storage(reason) => {
            tracing::error!(%reason, "storage nodes failed");
            error(S3ErrorCode::ServiceUnavailable, "Storage nodes are unavailable; retry")
        }
        WriteError::Codec(reason) => {
            tracing::error!(%reason, "encoding failed");
            error(S3ErrorCode::InternalError, "Encoding failed; see the gateway log")
        }
        WriteError::Intent(source) => from_commit(source),
        WriteError::Deadline(source) => from_deadline(source),
    }
}

/// An upload stopped for time: S3's `RequestTimeout` (400), which SDKs retry, with the
/// limit that was hit in the message.
pub fn from_deadline(source: DeadlineError) -> S3Error {
    match source {
        DeadlineError::Exceeded { deadline_seconds } => error(
            S3ErrorCode::RequestTimeout,
            format!("The upload did not complete within the cluster's upload deadline of {deadline_seconds} seconds and was discarded; retry, or ask the operator about `shardlet admin cluster set upload-deadline-seconds`"),
        ),
        DeadlineError::BodyStalled { idle_seconds } => error(
            S3ErrorCode::RequestTimeout,
            format!("Your socket connection to the server was not read from or written to within the timeout period: no body bytes arrived for {idle_seconds} seconds; the upload was discarded"),
        ),
    }
}

pub fn from_commit(source: CommitError) -> S3Error {
    match source {
        CommitError::Catalog(source) => from_catalog(source),
        CommitError::Abandoned => error(
            S3ErrorCode::RequestTimeout,
            "The upload took too long and was garbage-collected; retry",
        ),
        CommitError::PreconditionFailed => error(
            S3ErrorCode::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        ),
        CommitError::Contended { .. } => error(
            S3ErrorCode::OperationAborted,
            "Too many concurrent writes to this key; retry",
        ),
        CommitError::NoSuchUpload => no_such_upload(),
        CommitError::UploadClosing => error(
            S3ErrorCode::OperationAborted,
            "A conflicting conditional operation is currently in progress against this resource: the upload is being completed or aborted",
        ),
        CommitError::Deadline(source) => from_deadline(source),
    }
}

pub fn from_checksum(source: ChecksumError) -> S3Error {
    match source {
        ChecksumError::Invalid(what) => error(
            S3ErrorCode::InvalidDigest,
            format!("The {what} you specified is not valid"),
        ),
        ChecksumError::Mismatch(what) => error(
            S3ErrorCode::BadDigest,
            format!("The {what} you specified did not match the calculated checksum"),
        ),
        ChecksumError::MissingTrailer(what) => error(
            S3ErrorCode::InvalidRequest,
            format!("The announced trailing checksum {what} was not sent"),
        ),
    }
}

pub fn from_read(source: ReadError) -> S3Error {
    tracing::error!(error = %source, "read failed before the first byte");
    error(
        S3ErrorCode::ServiceUnavailable,
        "The object is temporarily unreadable; retry",
    )
}

pub fn no_such_key(key: &str) -> S3Error {
    let shown: String = key.chars().take(256).collect();
    error(
        S3ErrorCode::NoSuchKey,
        format!("The specified key does not exist: {shown}"),
    )
}

pub fn no_such_upload() -> S3Error {
    error(
        S3ErrorCode::NoSuchUpload,
        "The specified multipart upload does not exist. The upload ID might be invalid, or the upload might have been aborted or completed.",
    )
}

/// Standard texts for S3 error codes raised without a message (the wording of AWS's
/// error-code list, or ours where AWS's does not fit). No `<`, `>` or `&` in any: they
/// go into XML as they are.
const STANDARD_MESSAGES: &[(&str, &str)] = &[
    (
        "AccessDenied",
        "Access Denied",
    ),
    (
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    ),
    (
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
    (
        "InvalidAccessKeyId",
        "The AWS access key ID that you provided does not exist in our records.",
    ),
    (
        "InvalidArgument",
        "Invalid Argument",
    ),
    (
        "InvalidBucketName",
        "The specified bucket is not valid: names are 3 to 63 characters of lowercase letters, digits, dots and hyphens, start and end with a letter or digit, and are not IP addresses.",
    ),
    (
        "InvalidPolicyDocument",
        "The content of the form does not meet the conditions specified in the policy document.",
    ),
    (
        "InvalidRequest",
        "The request is not valid.",
    ),
    (
        "InvalidURI",
        "Couldn't parse the specified URI.",
    ),
    (
        "KeyTooLongError",
        "Your key is too long: the limit is 1024 bytes.",
    ),
    (
        "MalformedPOSTRequest",
        "The body of your POST request is not well-formed multipart/form-data.",
    ),
    (
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
    ),
    (
        "NotImplemented",
        "This operation is not implemented by Shardlet.",
    ),
    (
        "RequestTimeTooSkewed",
        "The difference between the request time and the server's time is too large.",
    ),
    (
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check your secret access key and signing method.",
    ),
];

/// The standard text for an S3 error `code`.
pub fn standard_message(code: &str) -> &'static str {
    STANDARD_MESSAGES
        .iter()
        .find(|(known, _)| *known == code)
        .map_or(
            "The request was refused; see the error code.",
            |(_, message)| message,
        )
}

/// An S3 error document that has a `<Code>` but no `<Message>`, with the standard
/// message for its code inserted after the code; `None` if it needs nothing (it has a
/// message, or is not an error document).
///
/// s3s raises a few refusals of its own without a message (a bucket name outside the
/// rules, a signature that does not match, a key over 1024 bytes); clients then print
/// "Unknown" where they should print a reason.
pub fn with_missing_message(document: &[u8]) -> Option<Vec<u8>> {
    const CODE_END: &[u8] = b"</Code>";
    if document.len() > 4096 || find(document, b"<Message>").is_some() {
        return None;
    }
    let code_start = find(document, b"<Error><Code>")? + b"<Error><Code>".len();
    let code_end = code_start + find(&document[code_start..], CODE_END)?;
    let code = std::str::from_utf8(&document[code_start..code_end]).ok()?;
    let mut filled = Vec::with_capacity(document.len() + 256);
    filled.extend_from_slice(&document[..code_end + CODE_END.len()]);
    filled.extend_from_slice(b"<Message>");
    // The messages are constants without `<`, `>` or `&`: nothing to escape.
    filled.extend_from_slice(standard_message(code).as_bytes());
    filled.extend_from_slice(b"</Message>");
    filled.extend_from_slice(&document[code_end + CODE_END.len()..]);
    Some(filled)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use http::StatusCode;
    use shardlet_core::Scheme;

    fn status_and_code(error: S3Error) -> (StatusCode, String) {
        (
            error
                .status_code()
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error.code().as_str().to_string(),
        )
    }

    #[test]
    fn catalog_errors_map_to_s3_codes_and_statuses() {
        let cases = [
            (CatalogError::NoSuchBucket("b".into()), 404, "NoSuchBucket"),
            (
                CatalogError::BucketNotEmpty("b".into()),
                409,
                "BucketNotEmpty",
            ),
            (
                CatalogError::BucketExists("b".into()),
                409,
                "BucketAlreadyExists",
            ),
            (CatalogError::Conflict("b".into()), 409, "OperationAborted"),
            (
                CatalogError::Metadata(MetadataError::Unavailable("x".into())),
                503,
                "ServiceUnavailable",
            ),
            (
                CatalogError::Metadata(MetadataError::Corrupt("x".into())),
                500,
                "InternalError",
            ),
        ];
        for (source, status, code) in cases {
            let (actual_status, actual_code) = status_and_code(from_catalog(source));
            assert_eq!(
                (actual_status.as_u16(), actual_code.as_str()),
                (status, code)
            );
        }
    }

    #[test]
    fn write_errors_map_to_s3_codes_and_statuses() {
        let cases = [
            (WriteError::TooLarge { max_bytes: 5 }, 400, "EntityTooLarge"),
            (
                WriteError::IncompleteBody {
                    declared: 5,
                    received: 4,
                },
                400,
                "IncompleteBody",
            ),
            (
                WriteError::Placement {
                    scheme: Scheme::Replicated { copies: 3 },
                    reason: "x".into(),
                },
                503,
                "ServiceUnavailable",
            ),
            (
                WriteError::Intent(CommitError::Contended { attempts: 1 }),
                409,
                "OperationAborted",
            ),
            (
                WriteError::Deadline(DeadlineError::Exceeded {
                    deadline_seconds: 5,
                }),
                400,
                "RequestTimeout",
            ),
            (
                WriteError::Deadline(DeadlineError::BodyStalled { idle_seconds: 60 }),
                400,
                "RequestTimeout",
            ),
        ];
        for (source, status, code) in cases {
            let (actual_status, actual_code) = status_and_code(from_write(source));
            assert_eq!(
                (actual_status.as_u16(), actual_code.as_str()),
                (status, code)
            );
        }
    }

    #[test]
    fn commit_errors_map_to_s3_codes_and_statuses() {
        let cases = [
            (
                CommitError::Contended { attempts: 8 },
                409,
                "OperationAborted",
            ),
            (CommitError::Abandoned, 400, "RequestTimeout"),
            (CommitError::PreconditionFailed, 412, "PreconditionFailed"),
            (CommitError::NoSuchUpload, 404, "NoSuchUpload"),
            (CommitError::UploadClosing, 409, "OperationAborted"),
            (
                CommitError::Deadline(DeadlineError::Exceeded {
                    deadline_seconds: 5,
                }),
                400,
                "RequestTimeout",
            ),
            (
                CommitError::Catalog(CatalogError::NoSuchBucket("b".into())),
                404,
                "NoSuchBucket",
            ),
        ];
        for (source, status, code) in cases {
            let (actual_status, actual_code) = status_and_code(from_commit(source));
            assert_eq!(
                (actual_status.as_u16(), actual_code.as_str()),
                (status, code)
            );
        }
    }

    #[test]
    fn checksum_errors_are_bad_or_invalid_digests() {
        let (status, code) = status_and_code(from_checksum(ChecksumError::Mismatch("crc32")));
        assert_eq!((status.as_u16(), code.as_str()), (400, "BadDigest"));
        let (status, code) = status_and_code(from_checksum(ChecksumError::Invalid("Content-MD5")));
        assert_eq!((status.as_u16(), code.as_str()), (400, "InvalidDigest"));
    }

    #[test]
    fn missing_things_are_404s() {
        let (status, code) = status_and_code(no_such_key("k"));
        assert_eq!((status.as_u16(), code.as_str()), (404, "NoSuchKey"));
        let (status, code) = status_and_code(no_such_upload());
        assert_eq!((status.as_u16(), code.as_str()), (404, "NoSuchUpload"));
    }

    #[test]
    fn a_message_is_added_where_s3s_left_none() {
        let document = br#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidBucketName</Code></Error>"#;
        let filled = String::from_utf8(with_missing_message(document).unwrap()).unwrap();
        assert_eq!(
            filled,
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidBucketName</Code><Message>{}</Message></Error>"#,
                standard_message("InvalidBucketName")
            )
        );
        // Without the XML declaration too.
        let filled =
            with_missing_message(b"<Error><Code>SignatureDoesNotMatch</Code></Error>").unwrap();
        assert!(String::from_utf8(filled)
            .unwrap()
            .contains("<Message>The request signature we calculated"));
    }

    #[test]
    fn documents_with_a_message_or_without_a_code_are_left_alone() {
        let with_message =
            b"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist: k</Message></Error>";
        assert_eq!(with_missing_message(with_message), None);
        assert_eq!(with_missing_message(b""), None);
        assert_eq!(
            with_missing_message(b"<ListBucketResult></ListBucketResult>"),
            None
        );
        assert_eq!(with_missing_message(b"<Error><Code>Unterminated"), None);
        assert_eq!(with_missing_message(&vec![b' '; 8192]), None);
    }

    #[test]
    fn every_code_has_a_message_and_none_needs_escaping() {
        for (code, message) in STANDARD_MESSAGES {
            assert_eq!(standard_message(code), *message);
            assert!(!message.is_empty(), "{code}");
            assert!(!message.contains(['<', '>', '&']), "{code}: {message}");
        }
        assert!(standard_message("NotImplemented").contains("not implemented"));
        assert_eq!(
            standard_message("SomethingNew"),
            "The request was refused; see the error code."
        );
    }
}
