//! Signed answers, for a caller that acts on what it is told (the controller drains
//! nodes on the predictor's scores): the server signs the status and body of its answer
//! together with the request's nonce, with the key both hold, so a spoofed answer, or a
//! genuine answer to another request, is refused.
//!
//! `x-shardlet-response-signature` = hex HMAC-SHA256(key, "shardlet-response-v1\n" +
//! request nonce + "\n" + status + "\n" + hex SHA-256(body)).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::AuthError;
use crate::keys::Key;

pub const HEADER_RESPONSE_SIGNATURE: &str = "x-shardlet-response-signature";

fn mac(key: &Key, request_nonce: &str, status: u16, body: &[u8]) -> [u8; 32] {
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key.bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(b"shardlet-response-v1\n");
    mac.update(request_nonce.as_bytes());
    mac.update(format!("\n{status}\n").as_bytes());
    mac.update(hex::encode(Sha256::digest(body)).as_bytes());
    mac.finalize().into_bytes().into()
}

/// The value of [`HEADER_RESPONSE_SIGNATURE`] for an answer.
pub fn sign_response(key: &Key, request_nonce: &str, status: u16, body: &[u8]) -> String {
    hex::encode(mac(key, request_nonce, status, body))
}

/// Checks an answer's [`HEADER_RESPONSE_SIGNATURE`].
pub fn verify_response(
    key: &Key,
    request_nonce: &str,
    status: u16,
    body: &[u8],
    received: Option<&str>,
) -> Result<(), AuthError> {
    let received = received.ok_or(AuthError::MissingHeader(HEADER_RESPONSE_SIGNATURE))?;
    // One spelling: the 64 lowercase hex digits `sign_response` writes (hex decoding
    // alone would take uppercase too).
    if !received
        .bytes()
        .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    {
        return Err(AuthError::MalformedHeader(HEADER_RESPONSE_SIGNATURE));
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(received, &mut bytes)
        .map_err(|_| AuthError::MalformedHeader(HEADER_RESPONSE_SIGNATURE))?;
    let expected = mac(key, request_nonce, status, body);
    if bool::from(expected.ct_eq(&bytes)) {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::keys::{ClusterSecret, KeyName};

    #[test]
    fn an_answer_verifies_only_for_its_request_status_and_body() {
        let root = ClusterSecret::new("0123456789abcdef0123456789abcdef").unwrap();
        let key = root.derive(KeyName::Predictor);
        let signature = sign_response(&key, "n1", 200, b"{}");
        verify_response(&key, "n1", 200, b"{}", Some(&signature)).unwrap();
        for (nonce, status, body) in [
            ("n2", 200, &b"{}"[..]),
            ("n1", 500, b"{}"),
            ("n1", 200, b"{ }"),
        ] {
            assert_eq!(
                verify_response(&key, nonce, status, body, Some(&signature)),
                Err(AuthError::SignatureMismatch)
            );
        }
        let other = root.derive(KeyName::Controller);
        assert!(verify_response(&other, "n1", 200, b"{}", Some(&signature)).is_err());
        assert_eq!(
            verify_response(&key, "n1", 200, b"{}", None),
            Err(AuthError::MissingHeader(HEADER_RESPONSE_SIGNATURE))
        );
        assert_eq!(
            verify_response(&key, "n1", 200, b"{}", Some("zz")),
            Err(AuthError::MalformedHeader(HEADER_RESPONSE_SIGNATURE))
        );
        // The genuine signature in uppercase: the same bytes, another spelling.
        assert_eq!(
            verify_response(&key, "n1", 200, b"{}", Some(&signature.to_uppercase())),
            Err(AuthError::MalformedHeader(HEADER_RESPONSE_SIGNATURE))
        );
    }
}
