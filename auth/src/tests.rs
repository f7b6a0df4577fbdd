//! Signing and verification together: what passes, and each way a request is refused.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::*;

const ROOT: &str = "0123456789abcdef0123456789abcdef";
const HOST: &str = "127.0.0.1:19101";
const TARGET: &str = "/v1/fragments/abababababababababababababababab-00000007-00000002-0b";

fn root() -> Keyring {
    Keyring::from_root(&ClusterSecret::new(ROOT).unwrap())
}

fn node_name(id: u32) -> KeyName {
    KeyName::Node(NodeName::parse(&format!("n{id}")).unwrap())
}

fn node_key(id: u32) -> SigningKey {
    root().signing_key(node_name(id)).unwrap()
}

fn node_verifier(id: u32) -> Verifier {
    Verifier::new(
        vec![node_key(id)],
        ReplayCache::new(1000, MAX_CLOCK_SKEW.as_secs()),
    )
}

const CRC: [(&str, &str); 1] = [("x-shardlet-crc32c", "0a1b2c3d")];

fn parts<'a>() -> RequestParts<'a> {
    RequestParts {
        method: "PUT",
        host: HOST,
        target: TARGET,
        headers: &CRC,
        payload_sha256: None,
    }
}

fn received(headers: &SignatureHeaders) -> ReceivedSignature<'_> {
    ReceivedSignature {
        authorization: Some(&headers.authorization),
        amz_date: Some(&headers.amz_date),
        content_sha256: Some(&headers.content_sha256),
        nonce: Some(&headers.nonce),
    }
}

/// A request as a server receives it: its own headers and the signature's.
fn header_map(parts: &RequestParts<'_>, signature: &SignatureHeaders) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert("host", parts.host.parse().unwrap());
    for (name, value) in parts.headers {
        map.insert(
            http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    for (name, value) in signature.iter() {
        map.insert(name, value.parse().unwrap());
    }
    map
}

#[test]
fn a_good_signature_passes_and_names_its_key() {
    let now = SystemTime::now();
    let headers = node_key(3).sign(&parts(), now).unwrap();
    assert!(headers
        .authorization
        .starts_with("AWS4-HMAC-SHA256 Credential=node-n3/"));
    assert!(headers.authorization.contains(
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-shardlet-crc32c;x-shardlet-nonce"
    ));
    assert_eq!(headers.nonce.len(), 32);
    let verified = node_verifier(3)
        .verify_parts(&parts(), &received(&headers), now)
        .unwrap();
    assert_eq!(verified.key, node_name(3));
    assert_eq!(verified.payload_sha256, None);
}

#[test]
fn a_verifier_of_a_parents_children_accepts_each_child_by_name_and_nothing_else() {
    // The controller's announcement route: any storage node, each under its own name.
    let now = SystemTime::now();
    let verifier = Verifier::new(Vec::new(), ReplayCache::new(1000, 60))
        .with_children_of(KeyName::Storage, root().key(KeyName::Storage).unwrap());
    for id in [1, 2] {
        let headers = node_key(id).sign(&parts(), now).unwrap();
        let verified = verifier
            .verify_parts(&parts(), &received(&headers), now)
            .unwrap();
        assert_eq!(verified.key, node_name(id));
    }
    // Node 2's key material under node 1's name: it cannot pass as node 1.
    let forged = SigningKey::new(node_name(1), node_key(2).key().clone());
    let headers = forged.sign(&parts(), now).unwrap();
    assert_eq!(
        verifier.verify_parts(&parts(), &received(&headers), now),
        Err(AuthError::SignatureMismatch)
    );
    // A key that is not a child of `storage` is not accepted, by name.
    let controller = root().signing_key(KeyName::Controller).unwrap();
    let headers = controller.sign(&parts(), now).unwrap();
    assert_eq!(
        verifier.verify_parts(&parts(), &received(&headers), now),
        Err(AuthError::KeyNotAccepted {
            key: "controller".into(),
            accepted: "keys derived from storage".into()
        })
    );
}

#[test]
fn tampering_with_any_signed_part_fails() {
    let now = SystemTime::now();
    let headers = node_key(3).sign(&parts(), now).unwrap();
    let other_crc = [("x-shardlet-crc32c", "0a1b2c3e")];
    let with_range = [("x-shardlet-crc32c", "0a1b2c3d"), ("range", "bytes=0-1")];
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
            headers: &other_crc,
            ..parts()
        },
        RequestParts {
            headers: &[],
            ..parts()
        },
        RequestParts {
            headers: &with_range,
            ..parts()
        },
    ];
    for request in tampered {
        assert_eq!(
            node_verifier(3).verify_parts(&request, &received(&headers), now),
            Err(AuthError::SignatureMismatch),
            "{request:?}"
        );
    }
    let other_nonce = signature::new_nonce();
    let swapped = ReceivedSignature {
        nonce: Some(&other_nonce),
        ..received(&headers)
    };
    assert_eq!(
        node_verifier(3).verify_parts(&parts(), &swapped, now),
        Err(AuthError::SignatureMismatch)
    );
}

#[test]
fn a_key_the_receiver_does_not_hold_is_refused_by_name() {
    let now = SystemTime::now();
    // Node 4's key, sent to node 3: node 3 neither accepts nor could verify it.
    let headers = node_key(4).sign(&parts(), now).unwrap();
    let refused = node_verifier(3)
        .verify_parts(&parts(), &received(&headers), now)
        .unwrap_err();
    assert_eq!(
        refused,
        AuthError::KeyNotAccepted {
            key: "node-n4".into(),
            accepted: "node-n3".into()
        }
    );
    // Node 4's key material under node 3's name: the signature does not match.
    let forged = SigningKey::new(node_name(3), node_key(4).key().clone());
    let headers = forged.sign(&parts(), now).unwrap();
    assert_eq!(
        node_verifier(3).verify_parts(&parts(), &received(&headers), now),
        Err(AuthError::SignatureMismatch)
    );
    // Another cluster's root.
    let stranger =
        Keyring::from_root(&ClusterSecret::new("another-secret-of-enough-bytes").unwrap());
    let headers = stranger
        .signing_key(node_name(3))
        .unwrap()
        .sign(&parts(), now)
        .unwrap();
    assert_eq!(
        node_verifier(3).verify_parts(&parts(), &received(&headers), now),
        Err(AuthError::SignatureMismatch)
    );
}

#[test]
fn a_second_use_of_a_request_is_refused_and_a_fresh_signature_passes() {
    let now = SystemTime::now();
    let verifier = node_verifier(3);
    let headers = node_key(3).sign(&parts(), now).unwrap();
    verifier
        .verify_parts(&parts(), &received(&headers), now)
        .unwrap();
    assert_eq!(
        verifier.verify_parts(&parts(), &received(&headers), now + Duration::from_secs(5)),
        Err(AuthError::Replayed)
    );
    let again = node_key(3).sign(&parts(), now).unwrap();
    verifier
        .verify_parts(&parts(), &received(&again), now)
        .unwrap();
    assert_eq!(verifier.replay_cache().entries(), 2);
}

#[test]
fn a_refused_request_leaves_no_nonce_behind() {
    let now = SystemTime::now();
    let verifier = node_verifier(3);
    let headers = node_key(3).sign(&parts(), now).unwrap();
    let tampered = RequestParts {
        method: "DELETE",
        ..parts()
    };
    assert!(verifier
        .verify_parts(&tampered, &received(&headers), now)
        .is_err());
    assert_eq!(verifier.replay_cache().entries(), 0);
    verifier
        .verify_parts(&parts(), &received(&headers), now)
        .unwrap();
}

#[test]
fn a_full_replay_cache_refuses_with_503() {
    let now = SystemTime::now();
    let verifier = Verifier::new(vec![node_key(3)], ReplayCache::new(1, 60));
    let first = node_key(3).sign(&parts(), now).unwrap();
    verifier
        .verify_parts(&parts(), &received(&first), now)
        .unwrap();
    let second = node_key(3).sign(&parts(), now).unwrap();
    let refused = verifier
        .verify_parts(&parts(), &received(&second), now)
        .unwrap_err();
    assert_eq!(refused, AuthError::ReplayCacheFull { entries_max: 1 });
    assert_eq!(refused.status(), http::StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn stale_or_future_dates_are_refused_naming_the_offset() {
    let now = SystemTime::now();
    for offset in [Duration::from_secs(61), Duration::from_secs(3600)] {
        let old = node_key(3).sign(&parts(), now - offset).unwrap();
        let refused = node_verifier(3)
            .verify_parts(&parts(), &received(&old), now)
            .unwrap_err();
        assert_eq!(
            refused,
            AuthError::ClockSkew {
                skew_seconds: offset.as_secs(),
                sender_ahead: false
            }
        );
        assert!(
            refused.to_string().contains("behind this server's clock"),
            "{refused}"
        );
        assert!(refused.to_string().contains("NTP"), "{refused}");
        let future = node_key(3).sign(&parts(), now + offset).unwrap();
        let refused = node_verifier(3)
            .verify_parts(&parts(), &received(&future), now)
            .unwrap_err();
        assert!(refused.to_string().contains("ahead of"), "{refused}");
    }
    let recent = node_key(3)
        .sign(&parts(), now - Duration::from_secs(59))
        .unwrap();
    node_verifier(3)
        .verify_parts(&parts(), &received(&recent), now)
        .unwrap();
}

#[test]
fn missing_or_malformed_headers_are_refused() {
    let now = SystemTime::now();
    let headers = node_key(3).sign(&parts(), now).unwrap();
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
                nonce: None,
                ..received(&headers)
            },
            AuthError::MissingHeader(HEADER_NONCE),
        ),
        (
            ReceivedSignature {
                content_sha256: None,
                ..received(&headers)
            },
            AuthError::MissingHeader("x-amz-content-sha256"),
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
        (
            ReceivedSignature {
                nonce: Some("0123"),
                ..received(&headers)
            },
            AuthError::MalformedHeader(HEADER_NONCE),
        ),
        (
            ReceivedSignature {
                nonce: Some("0123456789ABCDEF0123456789ABCDEF"),
                ..received(&headers)
            },
            AuthError::MalformedHeader(HEADER_NONCE),
        ),
        (
            ReceivedSignature {
                authorization: Some("Bearer abc"),
                ..received(&headers)
            },
            AuthError::MalformedHeader("authorization"),
        ),
        (
            ReceivedSignature {
                authorization: Some("AWS4-HMAC-SHA256 Credential=shardlet-cluster/20260101/x"),
                ..received(&headers)
            },
            AuthError::UnknownKeyName("shardlet-cluster".into()),
        ),
    ];
    for (signature, error) in cases {
        assert_eq!(
            node_verifier(3).verify_parts(&parts(), &signature, now),
            Err(error)
        );
    }
}

#[test]
fn the_body_hash_is_signed_and_checked() {
    let now = SystemTime::now();
    let key = root()
        .signing_key(KeyName::MetaCaller(MetaCaller::Gateway))
        .unwrap();
    let verifier = Verifier::new(vec![key.clone()], ReplayCache::new(100, 60));
    let body = br#"{"key":"a2V5","value":"dg=="}"#;
    let hash = payload_sha256(body);
    let request = RequestParts {
        method: "POST",
        host: "127.0.0.1:7380",
        target: "/kv/put",
        headers: &[],
        payload_sha256: Some(&hash),
    };
    let headers = key.sign(&request, now).unwrap();
    assert_eq!(headers.content_sha256, hash);
    let verified = verifier
        .verify("POST", "/kv/put", &header_map(&request, &headers), now)
        .unwrap();
    verified.require_payload_hash().unwrap();
    verified.check_body(body).unwrap();
    assert_eq!(
        verified.check_body(br#"{"key":"a2V5","value":"dw=="}"#),
        Err(AuthError::BodyMismatch)
    );
    // Another hash in the header than the one signed: the signature fails.
    let mut swapped = header_map(&request, &key.sign(&request, now).unwrap());
    swapped.insert(
        "x-amz-content-sha256",
        payload_sha256(b"other").parse().unwrap(),
    );
    assert_eq!(
        verifier.verify("POST", "/kv/put", &swapped, now),
        Err(AuthError::SignatureMismatch)
    );
    // Unsigned payload: verifies, but an endpoint that needs the hash refuses it.
    let unsigned = RequestParts {
        payload_sha256: None,
        ..request
    };
    let verified = verifier
        .verify(
            "POST",
            "/kv/put",
            &header_map(&unsigned, &key.sign(&unsigned, now).unwrap()),
            now,
        )
        .unwrap();
    assert_eq!(
        verified.require_payload_hash(),
        Err(AuthError::PayloadHashRequired)
    );
}

#[test]
fn the_host_is_checked_when_the_receiver_names_itself() {
    let now = SystemTime::now();
    let key = root()
        .signing_key(KeyName::MetaCaller(MetaCaller::Gateway))
        .unwrap();
    let member_two = Verifier::new(vec![key.clone()], ReplayCache::new(100, 60))
        .with_hosts(vec!["10.0.0.2:7380".into()]);
    // Signed for member one, sent to member two unchanged.
    let for_one = RequestParts {
        method: "POST",
        host: "10.0.0.1:7380",
        target: "/kv/put",
        headers: &[],
        payload_sha256: None,
    };
    let headers = key.sign(&for_one, now).unwrap();
    let refused = member_two
        .verify("POST", "/kv/put", &header_map(&for_one, &headers), now)
        .unwrap_err();
    assert!(matches!(refused, AuthError::WrongHost { .. }), "{refused}");
    assert_eq!(member_two.replay_cache().entries(), 0);
    let for_two = RequestParts {
        host: "10.0.0.2:7380",
        ..for_one
    };
    let headers = key.sign(&for_two, now).unwrap();
    member_two
        .verify("POST", "/kv/put", &header_map(&for_two, &headers), now)
        .unwrap();
}

#[test]
fn a_signed_header_given_twice_is_malformed() {
    let now = SystemTime::now();
    let headers = node_key(3).sign(&parts(), now).unwrap();
    let mut map = header_map(&parts(), &headers);
    map.append("x-shardlet-crc32c", "ffffffff".parse().unwrap());
    assert_eq!(
        node_verifier(3).verify("PUT", TARGET, &map, now),
        Err(AuthError::MalformedHeader("x-shardlet-crc32c"))
    );
}

#[test]
fn signing_refuses_headers_outside_the_contract() {
    let extra = [("x-other", "1")];
    let request = RequestParts {
        headers: &extra,
        ..parts()
    };
    assert!(matches!(
        node_key(3).sign(&request, SystemTime::now()),
        Err(AuthError::Signing(_))
    ));
}
