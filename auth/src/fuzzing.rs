//! The properties the `internal_auth` fuzz target checks (`fuzz/fuzz_targets/
//! internal_auth.rs`), here so `tests/fuzz_corpus.rs` replays the committed corpus through
//! the same function on stable (`make test`; docs/testing.md, *Fuzzing*).
//!
//! What strangers send every internal port: `Authorization`, `x-amz-date`,
//! `x-amz-content-sha256` and `x-shardlet-nonce`; and what an operator gives every
//! process: a key file. The first input byte picks one of four checks:
//!
//! 0. **Strangers' headers**: any values of the signature headers, `Host`, method and
//!    target never verify against a key the stranger does not hold (a forged HMAC is
//!    out of reach; a success here would mean a check is skipped), and never panic.
//! 1. **A genuine request, then one byte changed**: a request signed with an accepted
//!    key verifies once, its replay is refused, and the same request with any one byte
//!    of one signature header changed is refused by a fresh receiver.
//! 2. **Key names and key files**: a key name that parses prints as the same text; a key
//!    file that parses renders to a file that parses to the same keys.
//! 3. **Dates and signed answers**: a date that parses is a real instant written in its
//!    one spelling; a signed answer verifies only with the exact signature.
//!
//! A check returns for any input, accepted or rightly refused, and panics when a
//! property fails: that is how libFuzzer learns of a finding.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::amz_date::{format_amz_date, parse_amz_date};
use crate::contract::HEADER_NONCE;
use crate::error::AuthError;
use crate::keyring::Keyring;
use crate::keys::{ClusterSecret, KeyName, MetaCaller};
use crate::node_name::NodeName;
use crate::replay::ReplayCache;
use crate::response::{sign_response, verify_response};
use crate::signature::{RequestParts, SigningKey};
use crate::verifier::Verifier;

/// A fuzz target: its name in `fuzz/` (and its corpus directory), and its check.
pub type Target = (&'static str, fn(&[u8]));

/// The fuzz targets whose checks live here.
pub const TARGETS: &[Target] = &[("internal_auth", internal_auth)];

/// The cluster the checks sign for: a fixed root, so inputs replay identically.
const ROOT: &str = "fuzzing-root-0123456789abcdef";
/// The receiver's clock: 2026-01-01T00:00:00Z.
const NOW_SECONDS: u64 = 1_767_225_600;
/// Bytes of the four signature headers, method, target and host a check reads.
const FIELD_BYTES_MAX: usize = 512;

/// The check of the `internal_auth` target; see the module documentation.
pub fn internal_auth(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => strangers_never_verify(rest),
        1 => one_changed_byte_is_refused(rest),
        2 => key_names_and_files_round_trip(rest),
        _ => dates_and_answers(rest),
    }
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECONDS)
}

/// A receiver as a storage node and the controller configure one: its own key, and
/// every `node-NAME` derived from `storage`.
fn receiver() -> (Verifier, SigningKey) {
    let secret = ClusterSecret::new(ROOT).unwrap_or_else(|_| unreachable_setup());
    let gateway = KeyName::MetaCaller(MetaCaller::Gateway);
    let accepted = SigningKey::new(gateway, secret.derive(gateway));
    let verifier = Verifier::new(vec![accepted.clone()], ReplayCache::new(64, 60))
        .with_children_of(KeyName::Storage, secret.derive(KeyName::Storage));
    (verifier, accepted)
}

/// The checks' own constants are valid; a failure here is a bug of this file.
#[allow(clippy::panic)]
fn unreachable_setup() -> ! {
    panic!("the fuzzing setup's constants are invalid")
}

/// `data` split at `\n` into at most `count` UTF-8 fields (lossy), each bounded.
fn fields(data: &[u8], count: usize) -> Vec<String> {
    let mut fields: Vec<String> = data
        .splitn(count, |byte| *byte == b'\n')
        .map(|field| String::from_utf8_lossy(&field[..field.len().min(FIELD_BYTES_MAX)]).into())
        .collect();
    fields.resize(count, String::new());
    fields
}

fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

/// Check 0.
#[allow(clippy::panic)]
fn strangers_never_verify(data: &[u8]) {
    let field = fields(data, 8);
    let (verifier, _) = receiver();
    let headers = header_map(&[
        ("authorization", &field[0]),
        ("x-amz-date", &field[1]),
        ("x-amz-content-sha256", &field[2]),
        (HEADER_NONCE, &field[3]),
        ("host", &field[4]),
        ("x-shardlet-crc32c", &field[7]),
    ]);
    if let Ok(verified) = verifier.verify(&field[5], &field[6], &headers, now()) {
        panic!("a request nobody signed verified as {}", verified.key);
    }
}

/// Check 1.
#[allow(clippy::panic)]
fn one_changed_byte_is_refused(data: &[u8]) {
    let (control, rest) = data.split_at(data.len().min(4));
    let control = [0, 1, 2, 3].map(|index| control.get(index).copied().unwrap_or(0));
    let field = fields(rest, 3);
    let (verifier, gateway) = receiver();
    // A node key derived by name (the announcement path) or a held key.
    let key = match NodeName::parse(&field[0]).ok().map(KeyName::Node) {
        Some(name) if control[0] % 2 == 0 => {
            let secret = ClusterSecret::new(ROOT).unwrap_or_else(|_| unreachable_setup());
            SigningKey::new(name, secret.derive(name))
        }
        _ => gateway,
    };
    let method = ["GET", "PUT", "POST", "DELETE", "HEAD"][usize::from(control[1] % 5)];
    let target = format!("/{}", field[1].trim_start_matches('/'));
    let host = "node.example:7401";
    let nonce = hex::encode(
        field[2]
            .as_bytes()
            .iter()
            .fold([0u8; 16], |mut nonce, byte| {
                nonce.rotate_left(1);
                nonce[0] ^= byte;
                nonce
            }),
    );
    let signed_at = now() - Duration::from_secs(u64::from(control[2] % 60));
    let parts = RequestParts {
        method,
        host,
        target: &target,
        headers: &[],
        payload_sha256: None,
    };
    // A target aws-sigv4 cannot sign (not a URI) is no request at all.
    let Ok(signature) = key.sign_with_nonce(&parts, signed_at, &nonce) else {
        return;
    };
    let genuine: Vec<(&str, String)> = signature
        .iter()
        .map(|(name, value)| (name, value.to_string()))
        .chain([("host", host.to_string())])
        .collect();
    let as_map = |pairs: &[(&str, String)]| {
        header_map(
            &pairs
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect::<Vec<_>>(),
        )
    };
    match verifier.verify(method, &target, &as_map(&genuine), now()) {
        Ok(verified) if verified.key == key.name() => {}
        other => panic!(
            "a genuine request of {} did not verify: {other:?}",
            key.name()
        ),
    }
    if !matches!(
        verifier.verify(method, &target, &as_map(&genuine), now()),
        Err(AuthError::Replayed)
    ) {
        panic!("a replayed request was not refused as a replay");
    }
    // One byte of one signature header changed (never the host: aws-sigv4 derives the
    // canonical host from the URI, so `host:80` and `host` are one host to it).
    let mut changed = genuine.clone();
    let which = usize::from(control[3] % 4);
    let mut value = changed[which].1.clone().into_bytes();
    if value.is_empty() {
        return;
    }
    let position = usize::from(control[1]) * 7 % value.len();
    value[position] = control[2].wrapping_add(control[3]) | 0x20;
    let Ok(value) = String::from_utf8(value) else {
        return;
    };
    if value == changed[which].1 {
        return;
    }
    changed[which].1 = value;
    let (fresh, _) = receiver();
    if let Ok(verified) = fresh.verify(method, &target, &as_map(&changed), now()) {
        panic!(
            "a request with {} changed still verified as {}",
            changed[which].0, verified.key
        );
    }
}

/// Check 2.
#[allow(clippy::panic)]
fn key_names_and_files_round_trip(data: &[u8]) {
    let text = String::from_utf8_lossy(&data[..data.len().min(8192)]);
    if let Some(first_line) = text.lines().next() {
        if let Ok(name) = first_line.parse::<KeyName>() {
            if name.to_string() != first_line {
                panic!("key name {first_line:?} prints as {name}");
            }
        }
    }
    let Ok(keyring) = Keyring::parse(&text, "fuzz input") else {
        return;
    };
    let Ok(rendered) = keyring.render("fuzz") else {
        panic!("a parsed key file holds the root, which parsing refuses");
    };
    let Ok(again) = Keyring::parse(&rendered, "rendered") else {
        panic!("a rendered key file does not parse");
    };
    let names: Vec<KeyName> = keyring.names().collect();
    if names != again.names().collect::<Vec<_>>() {
        panic!("a key file's names changed through render and parse");
    }
    for name in names {
        let same = match (keyring.key(name), again.key(name)) {
            (Some(first), Some(second)) => first.same_as(&second),
            _ => false,
        };
        if !same {
            panic!("key {name} changed through render and parse");
        }
    }
}

/// Check 3.
#[allow(clippy::panic)]
fn dates_and_answers(data: &[u8]) {
    let field = fields(data, 3);
    if let Some(time) = parse_amz_date(&field[0]) {
        let written = format_amz_date(time);
        if written != field[0] {
            panic!(
                "date {:?} parsed to an instant written {written:?}",
                field[0]
            );
        }
    }
    let secret = ClusterSecret::new(ROOT).unwrap_or_else(|_| unreachable_setup());
    let key = secret.derive(KeyName::Predictor);
    let body = field[2].as_bytes();
    let genuine = sign_response(&key, &field[1], 200, body);
    if verify_response(&key, &field[1], 200, body, Some(&genuine)).is_err() {
        panic!("a genuine answer did not verify");
    }
    if field[0] != genuine && verify_response(&key, &field[1], 200, body, Some(&field[0])).is_ok() {
        panic!(
            "an answer signature {:?} that is not the genuine one verified",
            field[0]
        );
    }
}
