//! Request signing exactly as the node API contract describes it (SigV4, service and
//! region `shardlet`, access key `shardlet-cluster`, `UNSIGNED-PAYLOAD`), written with the
//! stock `aws-sigv4` crate and independently of the node's own `shardlet-auth` crate: if
//! the node accepts these signatures, it follows the contract, not just its own client.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;

pub const ACCESS_KEY_ID: &str = "shardlet-cluster";
pub const SERVICE: &str = "shardlet";
pub const REGION: &str = "shardlet";

/// The headers the contract says are signed when present, besides the ones the signer
/// adds itself (`host`, `x-amz-date`, `x-amz-content-sha256`).
const SIGNED_WHEN_PRESENT: [&str; 2] = ["x-shardlet-crc32c", "range"];

/// Returns the headers to add to a request (`x-amz-date`, `x-amz-content-sha256`,
/// `authorization`) so that it is signed with `secret` at `time`.
///
/// `host` is the `Host` header the request will carry (`127.0.0.1:PORT`); `target` is
/// the request target exactly as it goes on the wire (path and query).
pub fn signature_headers(
    secret: &str,
    time: SystemTime,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(String, String)],
) -> Vec<(String, String)> {
    let identity = Credentials::new(ACCESS_KEY_ID, secret, None, None, "integration-tests").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name(SERVICE)
        .time(time)
        .settings(settings)
        .build()
        .expect("complete signing parameters")
        .into();
    let signed: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(name, _)| SIGNED_WHEN_PRESENT.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let uri = format!("http://{host}{target}");
    let request = SignableRequest::new(
        method,
        &uri,
        signed.into_iter(),
        SignableBody::UnsignedPayload,
    )
    .expect("a signable request");
    let (instructions, _signature) = sign(request, &params)
        .expect("signing succeeds")
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    headers
        .into_iter()
        .map(|header| (header.name().to_string(), header.value().to_string()))
        .collect()
}
