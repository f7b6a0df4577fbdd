//! A small S3 client for the fault and controller tests and the repair benchmark: SigV4
//! from the stock `aws-sigv4` crate, HTTP from `reqwest`, so the tests control
//! concurrency and timing exactly (a body can be held half-sent while the gateway is
//! killed). Errors are values, never panics: a fault test counts them.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;

/// S3 credentials and where to send requests.
#[derive(Clone, Debug)]
pub struct S3Access {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// Bounds each request, so a hung gateway fails a test instead of stalling it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Bounds listing loops (1 000 keys per page).
const LIST_PAGES_MAX: usize = 100;

#[derive(Clone)]
pub struct S3Client {
    http: reqwest::Client,
    access: S3Access,
}

/// What went wrong with one request: the HTTP status and S3 code, or a transport error.
#[derive(Debug)]
pub enum S3Error {
    Status { status: u16, body: String },
    Transport(String),
}

impl S3Error {
    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Status { status, .. } => Some(*status),
            S3Error::Transport(_) => None,
        }
    }
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            S3Error::Status { status, body } => write!(formatter, "HTTP {status}: {body}"),
            S3Error::Transport(error) => write!(formatter, "transport: {error}"),
        }
    }
}

fn transport(error: reqwest::Error) -> S3Error {
    S3Error::Transport(format!("{error:#}"))
}

impl S3Client {
    pub fn new(access: S3Access) -> Self {
        Self::over(access, &shardlet_net::Transport::Plaintext)
    }

    /// A client over `transport` (HTTPS trusting a test cluster's CA).
    pub fn over(access: S3Access, transport: &shardlet_net::Transport) -> Self {
        let http = transport
            .client_builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("an HTTP client");
        Self { http, access }
    }

    /// A request signed with `UNSIGNED-PAYLOAD` over the given extra headers.
    pub fn signed(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{path_and_query}", self.access.endpoint);
        let signature = signature_headers(&self.access, method.as_str(), &url, headers);
        let mut request = self.http.request(method, &url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        for (name, value) in signature {
            request = request.header(name, value);
        }
        request
    }

    async fn expect_success(response: reqwest::Response) -> Result<reqwest::Response, S3Error> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(S3Error::Status {
            status: status.as_u16(),
            body,
        })
    }

    pub async fn create_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let response = self
            .signed(reqwest::Method::PUT, &format!("/{bucket}"), &[])
            .send()
            .await
            .map_err(transport)?;
        Self::expect_success(response).await.map(drop)
    }

    /// PutObject; returns the ETag.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        storage_class: Option<&str>,
    ) -> Result<String, S3Error> {
        let mut headers = Vec::new();
        if let Some(class) = storage_class {
            headers.push(("x-amz-storage-class", class));
        }
        let response = self
            .signed(reqwest::Method::PUT, &format!("/{bucket}/{key}"), &headers)
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let response = Self::expect_success(response).await?;
        Ok(response
            .headers()
            .get("etag")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string())
    }

    /// GetObject of the whole object, or a `Range` of it; the body must arrive whole.
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<&str>,
    ) -> Result<Vec<u8>, S3Error> {
        let mut headers = Vec::new();
        if let Some(range) = range {
            headers.push(("range", range));
        }
        let response = self
            .signed(reqwest::Method::GET, &format!("/{bucket}/{key}"), &headers)
            .send()
            .await
            .map_err(transport)?;
        let response = Self::expect_success(response).await?;
        // `bytes()` fails if the connection ends before Content-Length bytes arrived, so
        // a short body is an error here, never a success.
        let bytes = response.bytes().await.map_err(transport)?;
        Ok(bytes.to_vec())
    }

    /// Every key in the bucket (ListObjectsV2, following continuation tokens).
    pub async fn list_keys(&self, bucket: &str) -> Result<Vec<String>, S3Error> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..LIST_PAGES_MAX {
            let mut query = "list-type=2".to_string();
            if let Some(token) = &token {
                query.push_str(&format!("&continuation-token={}", percent_encode(token)));
            }
            let response = self
                .signed(reqwest::Method::GET, &format!("/{bucket}?{query}"), &[])
                .send()
                .await
                .map_err(transport)?;
            let text = Self::expect_success(response)
                .await?
                .text()
                .await
                .map_err(transport)?;
            keys.extend(xml_values(&text, "Key"));
            token = xml_values(&text, "NextContinuationToken")
                .into_iter()
                .next();
            let truncated =
                xml_values(&text, "IsTruncated").first().map(String::as_str) == Some("true");
            if !truncated {
                return Ok(keys);
            }
            if token.is_none() {
                return Err(S3Error::Transport(format!(
                    "truncated listing without a continuation token: {text}"
                )));
            }
        }
        Err(S3Error::Transport(format!(
            "listing did not end within {LIST_PAGES_MAX} pages"
        )))
    }
}

/// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-content-sha256`) that sign a
/// request to `url` with `access`, now, over `headers` and `UNSIGNED-PAYLOAD`.
pub fn signature_headers(
    access: &S3Access,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Vec<(String, String)> {
    let identity =
        Credentials::new(&access.access_key, &access.secret_key, None, None, "tests").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let parameters = v4::SigningParams::builder()
        .identity(&identity)
        .region(&access.region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("signing parameters")
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::UnsignedPayload,
    )
    .expect("a signable request");
    let (instructions, _) = sign(signable, &parameters)
        .expect("signing succeeds")
        .into_parts();
    let (signature_headers, _) = instructions.into_parts();
    signature_headers
        .into_iter()
        .map(|header| (header.name().to_string(), header.value().to_string()))
        .collect()
}

/// The text of every `<tag>…</tag>` element, XML entities decoded (enough for keys made
/// of letters, digits, `/`, `-` and `.` and for opaque tokens).
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut values = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        values.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    values
}

/// RFC 3986 percent-encoding of everything but unreserved characters, as SigV4 wants.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_values_decodes_entities_of_every_element() {
        let xml = "<R><Key>a&amp;b</Key><Key>&lt;c&gt;</Key><IsTruncated>false</IsTruncated></R>";
        assert_eq!(xml_values(xml, "Key"), ["a&b", "<c>"]);
        assert_eq!(xml_values(xml, "Missing"), Vec::<String>::new());
    }

    #[test]
    fn percent_encode_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("a-Z_0.~/+= é"), "a-Z_0.~%2F%2B%3D%20%C3%A9");
    }

    #[test]
    fn the_signature_covers_the_given_headers() {
        let access = S3Access {
            endpoint: "http://127.0.0.1:9000".into(),
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "secret".into(),
            region: "us-east-1".into(),
        };
        let headers = signature_headers(
            &access,
            "PUT",
            "http://127.0.0.1:9000/bucket/key",
            &[("x-amz-storage-class", "STANDARD_IA")],
        );
        let authorization = headers
            .iter()
            .find(|(name, _)| name == "authorization")
            .map(|(_, value)| value.as_str())
            .unwrap();
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
                && authorization.contains("x-amz-storage-class"),
            "{authorization}"
        );
    }
}
