//! What signing and verification cost per request, piece by piece: signing (client),
//! the signature check alone (what verification was before nonces), the whole
//! verification (access key lookup, date, signature, nonce remembered in a replay cache
//! holding a million entries), and the body hashes (SHA-256 of a metadata body against
//! CRC32C).
//!
//! Run: `cargo bench -p shardlet-auth --bench signing` (docs/internal-auth.md, Cost).

use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shardlet_auth::{
    payload_sha256, ClusterSecret, KeyName, MetaCaller, ReceivedSignature, ReplayCache,
    RequestParts, SigningKey, Verifier,
};

const ROOT: &str = "benchmark-root-secret-0123456789";
const TARGET: &str = "/v1/fragments/abababababababababababababababab-00000007-00000002-0b";

fn key(name: KeyName) -> SigningKey {
    SigningKey::new(
        name,
        ClusterSecret::new(ROOT).expect("a secret").derive(name),
    )
}

fn signing(criterion: &mut Criterion) {
    let node = key(KeyName::Node(
        shardlet_auth::NodeName::parse("n7").expect("a node name"),
    ));
    let crc = [("x-shardlet-crc32c", "0a1b2c3d")];
    let put = RequestParts {
        method: "PUT",
        host: "127.0.0.1:19101",
        target: TARGET,
        headers: &crc,
        payload_sha256: None,
    };
    criterion.bench_function("sign a fragment PUT (client)", |bench| {
        bench.iter(|| node.sign(&put, SystemTime::now()).expect("signed"))
    });
    criterion.bench_function("check the signature only (recompute + compare)", |bench| {
        let now = SystemTime::now();
        let signed = node.sign(&put, now).expect("signed");
        bench.iter(|| {
            let again = node
                .sign_with_nonce(&put, now, &signed.nonce)
                .expect("signed");
            assert_eq!(again.authorization, signed.authorization);
        })
    });

    // A receiver that has already accepted a million requests.
    // (Room for the benchmark's own iterations on top of the million.)
    let verifier = Verifier::new(vec![node.clone()], ReplayCache::new(1 << 23, 60));
    let now = SystemTime::now();
    for _ in 0..1_000_000 {
        let nonce = u128::from_le_bytes(rand_bytes());
        let _ = verifier.replay_cache().check_and_remember(
            nonce,
            now.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs()),
            now.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs()),
        );
    }
    criterion.bench_function(
        "verify a fragment PUT (whole, nonce into a 1 Mi cache)",
        |bench| {
            bench.iter_batched(
                || node.sign(&put, SystemTime::now()).expect("signed"),
                |signed| {
                    let received = ReceivedSignature {
                        authorization: Some(&signed.authorization),
                        amz_date: Some(&signed.amz_date),
                        content_sha256: Some(&signed.content_sha256),
                        nonce: Some(&signed.nonce),
                    };
                    verifier
                        .verify_parts(&put, &received, SystemTime::now())
                        .expect("verified")
                },
                BatchSize::SmallInput,
            )
        },
    );
    // Steady state: 16 Ki nonces per signed second, so ~1 Mi live in the 60-s window
    // and a second's set is dropped every 16 Ki insertions.
    criterion.bench_function("replay cache: remember one nonce (~1 Mi held)", |bench| {
        let cache = ReplayCache::new(1 << 21, 60);
        let start = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut inserted = 0u64;
        bench.iter_batched(
            || u128::from_le_bytes(rand_bytes()),
            |nonce| {
                let second = start + inserted / 16_384;
                inserted += 1;
                cache
                    .check_and_remember(nonce, second, second)
                    .expect("new")
            },
            BatchSize::SmallInput,
        )
    });

    let gateway = key(KeyName::MetaCaller(MetaCaller::Gateway));
    let mut group = criterion.benchmark_group("metadata body hash");
    for size in [256usize, 4096, 65536] {
        let body = vec![b'x'; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("SHA-256 {size} B"), |bench| {
            bench.iter(|| payload_sha256(&body))
        });
        group.bench_function(format!("CRC32C {size} B"), |bench| {
            bench.iter(|| crc32c(&body))
        });
    }
    group.finish();
    let body = br#"{"key":"by9idWNrZXQva2V5","value":"dmFsdWUgb2YgYWJvdXQgYSBodW5kcmVkIGJ5dGVz"}"#;
    let hash = payload_sha256(body);
    let meta_put = RequestParts {
        method: "POST",
        host: "127.0.0.1:7380",
        target: "/kv/put",
        headers: &[("x-shardlet-member", "client")],
        payload_sha256: Some(&hash),
    };
    criterion.bench_function("sign a /kv/put with its body hash (client)", |bench| {
        bench.iter(|| {
            let hash = payload_sha256(body);
            let parts = RequestParts {
                payload_sha256: Some(&hash),
                ..meta_put
            };
            gateway.sign(&parts, SystemTime::now()).expect("signed")
        })
    });
}

fn rand_bytes() -> [u8; 16] {
    // The crate's own nonce source, so the bench measures what servers see.
    let text = shardlet_auth::signature::new_nonce();
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(text, &mut bytes).expect("32 hex digits");
    bytes
}

/// A CRC32C as the nodes compute it (`crc-fast`, hardware), for comparison.
fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(bytes)
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = signing
}
criterion_main!(benches);
