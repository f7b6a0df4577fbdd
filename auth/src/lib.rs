//! `shardlet-auth`: the cluster-secret request signature every internal Shardlet RPC
//! carries (to storage nodes and between metadata members and their clients).
//!
//! It must never import another Shardlet crate but `shardlet-core`: every service
//! depends on it.
//!
//! It is plain AWS SigV4 (HMAC-SHA256) computed with the stock `aws-sigv4` crate: service
//! and region `shardlet`, access key id `shardlet-cluster`, secret = the cluster secret,
//! payload hash `UNSIGNED-PAYLOAD`. Bodies are not hashed (SHA-256 would cap a node at
//! ~1.9 GB/s per core); their integrity is covered by the signed `x-shardlet-crc32c`
//! header instead, which the receiver checks against the body it stores.
//!
//! Signed headers: `host`, `x-amz-date`, `x-amz-content-sha256`, plus `x-shardlet-crc32c`
//! and `range` when present. Verification recomputes the whole `Authorization` header for
//! the received method, target and those headers, at the received `x-amz-date`, and
//! compares in constant time; a date more than [`MAX_CLOCK_SKEW`] away from the
//! verifier's clock is refused, which bounds how long a captured request can be replayed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use subtle::ConstantTimeEq;

pub const ACCESS_KEY_ID: &str = "shardlet-cluster";
pub const SERVICE: &str = "shardlet";
pub const REGION: &str = "shardlet";
/// Requests dated further than this from the verifier's clock are refused.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
/// Headers that are signed when the request carries them (besides the three the signer
/// always adds). Anything else is left out so proxies and clients may add headers freely.
pub const SIGNED_WHEN_PRESENT: [&str; 2] = ["x-shardlet-crc32c", "range"];
/// A secret shorter than this is refused: it would be guessable.
pub const SECRET_BYTES_MIN: usize = 16;

/// The cluster secret. Its `Debug` form never shows the value.
#[derive(Clone)]
pub struct ClusterSecret(String);

impl ClusterSecret {
    /// Accepts a secret of at least [`SECRET_BYTES_MIN`] bytes, surrounding whitespace
    /// (a trailing newline in a secret file) removed.
    pub fn new(text: &str) -> Result<Self, AuthError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(AuthError::BadSecret("the cluster secret is empty".into()));
        }
        if trimmed.len() < SECRET_BYTES_MIN {
            return Err(AuthError::BadSecret(format!(
                "the cluster secret is {} bytes; at least {SECRET_BYTES_MIN} are required",
                trimmed.len()
            )));
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the request is not signed: missing {0} header")]
    MissingHeader(&'static str),
    #[error("malformed {0} header")]
    MalformedHeader(&'static str),
    #[error("x-amz-date is {skew_seconds} s away from this server's clock (limit {} s)", MAX_CLOCK_SKEW.as_secs())]
    ClockSkew { skew_seconds: u64 },
    #[error("the signature does not match")]
    SignatureMismatch,
    #[error("cannot sign: {0}")]
    Signing(String),
    #[error("{0}")]
    BadSecret(String),
}

/// The parts of a request that are covered by the signature.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The `Host` header as sent (`host:port`, port omitted only when it is the default).
    pub host: &'a str,
    /// Path and query exactly as they go on the wire (`/v1/fragments?after=…`).
    pub target: &'a str,
    /// `x-shardlet-crc32c` value, when the request carries one.
    pub crc32c: Option<&'a str>,
    /// `range` value, when the request carries one.
    pub range: Option<&'a str>,
}

/// The headers a signed request must carry, in addition to its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub authorization: String,
    pub amz_date: String,
    pub content_sha256: &'static str,
}

impl SignatureHeaders {
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("authorization", self.authorization.as_str()),
            ("x-amz-date", self.amz_date.as_str()),
            ("x-amz-content-sha256", self.content_sha256),
        ]
        .into_iter()
    }
}

/// Signs `request` with `secret` at `time`.
pub fn sign_request(
    secret: &ClusterSecret,
    request: &RequestParts<'_>,
    time: SystemTime,
) -> Result<SignatureHeaders, AuthError> {
    let identity = Credentials::new(ACCESS_KEY_ID, secret.expose(), None, None, "shardlet").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name(SERVICE)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|error| AuthError::Signing(error.to_string()))?
        .into();
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(2);
    if let Some(crc) = request.crc32c {
        headers.push((SIGNED_WHEN_PRESENT[0], crc));
    }
    if let Some(range) = request.range {
        headers.push((SIGNED_WHEN_PRESENT[1], range));
    }
    // The host travels in the URI: aws-sigv4 derives the canonical `host` from it the
    // same way HTTP clients derive the Host header (default port omitted).
    let uri = format!("http://{}{}", request.host, request.target);
    let signable = SignableRequest::new(
        request.method,
        uri,
        headers.into_iter(),
        SignableBody::UnsignedPayload,
    )
    .map_err(|error| AuthError::Signing(error.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|error| AuthError::Signing(error.to_string()))?
        .into_parts();
    let mut authorization = None;
    let mut amz_date = None;
    for (name, value) in instructions.headers() {
        match name {
            "authorization" => authorization = Some(value.to_string()),
            "x-amz-date" => amz_date = Some(value.to_string()),
            _ => {}
        }
    }
    match (authorization, amz_date) {
        (Some(authorization), Some(amz_date)) => Ok(SignatureHeaders {
            authorization,
            amz_date,
            content_sha256: "UNSIGNED-PAYLOAD",
        }),
        _ => Err(AuthError::Signing(
            "aws-sigv4 produced no authorization header".into(),
        )),
    }
}

/// The signature headers as received.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedSignature<'a> {
    pub authorization: Option<&'a str>,
    pub amz_date: Option<&'a str>,
    pub content_sha256: Option<&'a str>,
}

/// Checks that `request` was signed with `secret` within [`MAX_CLOCK_SKEW`] of `now`.
pub fn verify_request(
    secret: &ClusterSecret,
    request: &RequestParts<'_>,
    received: &ReceivedSignature<'_>,
    now: SystemTime,
) -> Result<(), AuthError> {
    let authorization = received
        .authorization
        .ok_or(AuthError::MissingHeader("authorization"))?;
    let amz_date = received
        .amz_date
        .ok_or(AuthError::MissingHeader("x-amz-date"))?;
    match received.content_sha256 {
        None => return Err(AuthError::MissingHeader("x-amz-content-sha256")),
        Some("UNSIGNED-PAYLOAD") => {}
        Some(_) => return Err(AuthError::MalformedHeader("x-amz-content-sha256")),
    }
    let time = parse_amz_date(amz_date).ok_or(AuthError::MalformedHeader("x-amz-date"))?;
    let skew = match now.duration_since(time) {
        Ok(behind) => behind,
        Err(ahead) => ahead.duration(),
    };
    if skew > MAX_CLOCK_SKEW {
        return Err(AuthError::ClockSkew {
            skew_seconds: skew.as_secs(),
        });
    }
    let expected = sign_request(secret, request, time)?;
    // Comparing the whole header covers the access key, the scope, the list of signed
    // headers and the signature; constant time so the comparison leaks no prefix length.
    if expected
        .authorization
        .as_bytes()
        .ct_eq(authorization.as_bytes())
        .into()
    {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

/// Parses the SigV4 basic ISO-8601 form `YYYYMMDDTHHMMSSZ`.
pub fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = text.get(range)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let seconds = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn secret() -> ClusterSecret {
        ClusterSecret::new("0123456789abcdef0123456789abcdef").unwrap()
    }

    fn parts<'a>() -> RequestParts<'a> {
        RequestParts {
            method: "PUT",
            host: "127.0.0.1:19101",
            target: "/v1/fragments/abababababababababababababababab-00000007-00000002-0b",
            crc32c: Some("0a1b2c3d"),
            range: None,
        }
    }

    fn received(headers: &SignatureHeaders) -> ReceivedSignature<'_> {
        ReceivedSignature {
            authorization: Some(&headers.authorization),
            amz_date: Some(&headers.amz_date),
            content_sha256: Some(headers.content_sha256),
        }
    }

    #[test]
    fn a_good_signature_passes() {
        let now = SystemTime::now();
        let headers = sign_request(&secret(), &parts(), now).unwrap();
        assert!(headers
            .authorization
            .starts_with("AWS4-HMAC-SHA256 Credential=shardlet-cluster/"));
        assert!(headers
            .authorization
            .contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-shardlet-crc32c"));
        verify_request(&secret(), &parts(), &received(&headers), now).unwrap();
    }

    #[test]
    fn tampering_with_any_signed_part_fails() {
        let now = SystemTime::now();
        let headers = sign_request(&secret(), &parts(), now).unwrap();
        let tampered = [
            RequestParts {
                method: "DELETE",
                ..parts()
            },
            RequestParts {
                target: "/v1/fragments/abababababababababababababababab-00000007-00000002-0c",
                ..parts()
            },
            RequestParts {
                host: "127.0.0.1:19102",
                ..parts()
            },
            RequestParts {
                crc32c: Some("0a1b2c3e"),
                ..parts()
            },
            RequestParts {
                crc32c: None,
                ..parts()
            },
            RequestParts {
                range: Some("bytes=0-1"),
                ..parts()
            },
        ];
        for request in tampered {
            assert_eq!(
                verify_request(&secret(), &request, &received(&headers), now),
                Err(AuthError::SignatureMismatch),
                "{request:?}"
            );
        }
    }

    #[test]
    fn a_wrong_secret_fails() {
        let now = SystemTime::now();
        let other = ClusterSecret::new("another-secret-of-enough-bytes").unwrap();
        let headers = sign_request(&other, &parts(), now).unwrap();
        assert_eq!(
            verify_request(&secret(), &parts(), &received(&headers), now),
            Err(AuthError::SignatureMismatch)
        );
    }

    #[test]
    fn a_tampered_date_or_signature_fails() {
        let now = SystemTime::now();
        let headers = sign_request(&secret(), &parts(), now).unwrap();
        let later = sign_request(&secret(), &parts(), now + Duration::from_secs(1)).unwrap();
        let mixed = ReceivedSignature {
            amz_date: Some(&later.amz_date),
            ..received(&headers)
        };
        assert_eq!(
            verify_request(&secret(), &parts(), &mixed, now),
            Err(AuthError::SignatureMismatch)
        );
        let mut flipped = headers.authorization.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        let bad = ReceivedSignature {
            authorization: Some(&flipped),
            ..received(&headers)
        };
        assert_eq!(
            verify_request(&secret(), &parts(), &bad, now),
            Err(AuthError::SignatureMismatch)
        );
    }

    #[test]
    fn stale_or_future_dates_are_refused() {
        let now = SystemTime::now();
        for offset in [Duration::from_secs(16 * 60), Duration::from_secs(3600)] {
            let old = sign_request(&secret(), &parts(), now - offset).unwrap();
            assert!(matches!(
                verify_request(&secret(), &parts(), &received(&old), now),
                Err(AuthError::ClockSkew { .. })
            ));
            let future = sign_request(&secret(), &parts(), now + offset).unwrap();
            assert!(matches!(
                verify_request(&secret(), &parts(), &received(&future), now),
                Err(AuthError::ClockSkew { .. })
            ));
        }
        let recent = sign_request(&secret(), &parts(), now - Duration::from_secs(14 * 60)).unwrap();
        verify_request(&secret(), &parts(), &received(&recent), now).unwrap();
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        let now = SystemTime::now();
        let headers = sign_request(&secret(), &parts(), now).unwrap();
        let cases = [
            (
                ReceivedSignature {
                    authorization: None,
                    ..received(&headers)
                },
                AuthError::MissingHeader("authorization"),
            ),
            (
                ReceivedSignature {
                    amz_date: None,
                    ..received(&headers)
                },
                AuthError::MissingHeader("x-amz-date"),
            ),
            (
                ReceivedSignature {
                    amz_date: Some("2026-01-01T00:00:00Z"),
                    ..received(&headers)
                },
                AuthError::MalformedHeader("x-amz-date"),
            ),
            (
                ReceivedSignature {
                    content_sha256: Some("e3b0c442"),
                    ..received(&headers)
                },
                AuthError::MalformedHeader("x-amz-content-sha256"),
            ),
        ];
        for (signature, error) in cases {
            assert_eq!(
                verify_request(&secret(), &parts(), &signature, now),
                Err(error)
            );
        }
    }

    #[test]
    fn amz_dates_parse_exactly() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(UNIX_EPOCH));
        assert_eq!(
            parse_amz_date("20000301T000001Z"),
            Some(UNIX_EPOCH + Duration::from_secs(951_868_801))
        );
        for bad in [
            "",
            "20261301T000000Z",
            "2026010T1000000Z",
            "20260101T000000",
            "２0260101T000000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn secrets_must_be_long_enough_and_are_never_printed() {
        assert!(ClusterSecret::new("").is_err());
        assert!(ClusterSecret::new("  \n").is_err());
        assert!(ClusterSecret::new("short").is_err());
        let secret = ClusterSecret::new("0123456789abcdef0123\n").unwrap();
        assert_eq!(secret.expose(), "0123456789abcdef0123");
        assert!(!format!("{secret:?}").contains("0123"));
    }
}
