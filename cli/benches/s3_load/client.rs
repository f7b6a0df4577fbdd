//! A light S3 client for the load generator: reqwest (keep-alive pool, TCP_NODELAY, HTTP/1.1)
//! with SigV4 from the stock `aws-sigv4` crate, `UNSIGNED-PAYLOAD` so signing never hashes a
//! body. (The kit's `S3Client` serves the tests: one connection per request, errors as
//! values to count; this one is tuned to measure, and never panics mid-phase.) Every GET is checked against what was stored (length and CRC32C) so that a fast
//! wrong answer counts as an error, not as throughput.

use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use shardlet_testkit::S3Access;

/// One request, connect to last byte; a stuck server fails the phase instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Idle connections kept per host: more than the largest concurrency of any phase.
const IDLE_CONNECTIONS_MAX: usize = 64;

/// What a stored object must read back as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    pub length: u64,
    pub crc32c: u32,
}

impl Expected {
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            length: bytes.len() as u64,
            crc32c: shardlet_core::Crc32c::of(bytes).0,
        }
    }
}

/// A GET that returned the expected bytes, with when its first body byte arrived.
pub struct VerifiedGet {
    pub bytes: u64,
    pub time_to_first_byte: Duration,
}

#[derive(Clone)]
pub struct S3Client {
    http: reqwest::Client,
    /// Its `endpoint` is `http://HOST:PORT`, no trailing slash.
    access: S3Access,
}

impl S3Client {
    /// A client over `transport` (HTTPS trusting the cluster's CA, with `--tls`).
    pub fn new(access: S3Access, transport: &shardlet_net::Transport) -> Result<Self, String> {
        let http = transport
            .client_builder()
            .tcp_nodelay(true)
            .http1_only()
            .pool_max_idle_per_host(IDLE_CONNECTIONS_MAX)
            .pool_idle_timeout(Duration::from_secs(90))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        Ok(Self { http, access })
    }

    /// A request for `path` (already URL-safe: the bench's keys are plain ASCII) carrying
    /// SigV4 headers for this moment.
    fn signed(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, String> {
        let url = format!("{}{path}", self.access.endpoint);
        let identity = Credentials::new(
            &self.access.access_key,
            &self.access.secret_key,
            None,
            None,
            "s3-load",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        // S3 signs the path as sent: no double encoding, no normalisation.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.access.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|error| format!("signing parameters: {error}"))?
            .into();
        let request = SignableRequest::new(
            method.as_str(),
            &url,
            std::iter::empty(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|error| format!("cannot sign {url}: {error}"))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|error| format!("cannot sign {url}: {error}"))?
            .into_parts();
        let (headers, _query) = instructions.into_parts();
        let mut builder = self.http.request(method, url);
        for header in headers {
            builder = builder.header(header.name(), header.value());
        }
        Ok(builder)
    }

    pub async fn create_bucket(&self, bucket: &str) -> Result<(), String> {
        let response = self
            .signed(reqwest::Method::PUT, &format!("/{bucket}"))?
            .send()
            .await
            .map_err(|error| format!("CreateBucket {bucket}: {error}"))?;
        let status = response.status();
        // Re-running against a long-lived cluster (`--endpoint`) finds the bucket there.
        if status.is_success() || status == reqwest::StatusCode::CONFLICT {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(format!("CreateBucket {bucket}: {status}: {body}"))
    }

    pub async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<(), String> {
        let response = self
            .signed(reqwest::Method::PUT, &format!("/{bucket}/{key}"))?
            .body(body)
            .send()
            .await
            .map_err(|error| format!("PUT {key}: {error}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(format!("PUT {key}: {status}: {body}"))
    }

    /// GETs an object and checks its length and CRC32C against `expected`.
    pub async fn get_verified(
        &self,
        bucket: &str,
        key: &str,
        expected: Expected,
    ) -> Result<VerifiedGet, String> {
        let started = Instant::now();
        let mut response = self
            .signed(reqwest::Method::GET, &format!("/{bucket}/{key}"))?
            .send()
            .await
            .map_err(|error| format!("GET {key}: {error}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!("GET {key}: {status}: {body}"));
        }
        let mut time_to_first_byte = None;
        let mut length = 0u64;
        let mut crc = 0u32;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| format!("GET {key} mid-body: {error}"))?
        {
            if time_to_first_byte.is_none() && !chunk.is_empty() {
                time_to_first_byte = Some(started.elapsed());
            }
            length += chunk.len() as u64;
            if length > expected.length {
                return Err(format!(
                    "GET {key}: more than the {} bytes stored",
                    expected.length
                ));
            }
            crc = shardlet_core::Crc32c(crc).append(&chunk).0;
        }
        let got = Expected {
            length,
            crc32c: crc,
        };
        if got != expected {
            return Err(format!("GET {key}: got {got:?}, stored {expected:?}"));
        }
        Ok(VerifiedGet {
            bytes: length,
            time_to_first_byte: time_to_first_byte.unwrap_or_else(|| started.elapsed()),
        })
    }
}
