//! Bad input from outside: unauthenticated or forged requests, malformed ids and path
//! traversal, bodies that are too big or have no length. Each gets a clear 4xx and
//! changes nothing on disk.

use std::time::{Duration, SystemTime};

use shardlet_testkit::raw_http::{Body, Request};
use shardlet_testkit::signing;
use shardlet_testkit::{
    crc32c_hex, files_under, pattern_bytes, put_request, random_fragment_id, shardlet_binary, Auth,
    NodeOptions, NodeProcess,
};

/// Alters a request after it was signed.
type Tamper = Box<dyn Fn(&mut Request)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_or_badly_signed_requests_get_401_and_change_nothing() {
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    let kept = random_fragment_id();
    let kept_bytes = pattern_bytes(5000, 1);
    assert_eq!(client.put(&kept, &kept_bytes).await.status, 201);

    let now = SystemTime::now();
    let node_key = format!("node-{}", node.options.node_id);
    let signed_with = |root: &str, name: &str, time: SystemTime| Auth::Signed {
        key: signing::derive(root, name),
        time,
    };
    let new_id = random_fragment_id();
    let new_bytes = pattern_bytes(5000, 2);
    let attempts = [
        ("unsigned", Auth::None),
        (
            "another cluster's key for this node",
            signed_with("not-the-cluster-secret", &node_key, now),
        ),
        (
            "another node's key",
            signed_with(
                &node.secret,
                &format!("node-{}", node.options.node_id + 1),
                now,
            ),
        ),
        (
            "the storage master key itself",
            signed_with(&node.secret, "storage", now),
        ),
        (
            "the admin's metadata key",
            signed_with(&node.secret, "meta.admin", now),
        ),
        (
            "x-amz-date 2 minutes old",
            signed_with(&node.secret, &node_key, now - Duration::from_secs(120)),
        ),
        (
            "x-amz-date 2 minutes ahead",
            signed_with(&node.secret, &node_key, now + Duration::from_secs(120)),
        ),
    ];
    for (why, auth) in attempts {
        let put = client
            .send_with(put_request(&new_id, &new_bytes), auth.clone())
            .await;
        assert_eq!(put.status, 401, "PUT {why}");
        assert_eq!(put.error_code(), "unauthorized", "PUT {why}");
        let delete = Request::new("DELETE", &format!("/v1/fragments/{kept}"));
        assert_eq!(
            client.send_with(delete, auth.clone()).await.status,
            401,
            "DELETE {why}"
        );
        let get = client
            .send_with(
                Request::new("GET", &format!("/v1/fragments/{kept}")),
                auth.clone(),
            )
            .await;
        assert_eq!(get.status, 401, "GET {why}");
        assert!(
            !get.body.windows(64).any(|w| w == &kept_bytes[..64]),
            "no data leaks"
        );
        let head = Request::new("HEAD", &format!("/v1/fragments/{kept}"));
        assert_eq!(
            client.send_with(head, auth.clone()).await.status,
            401,
            "HEAD {why}"
        );
        let list = Request::new("GET", "/v1/fragments");
        assert_eq!(client.send_with(list, auth).await.status, 401, "LIST {why}");
    }

    // A valid signature whose request was altered afterwards.
    let tampered_cases: Vec<(&str, Tamper)> = vec![
        (
            "signature hex changed",
            Box::new(|request: &mut Request| {
                for (name, value) in request.headers.iter_mut() {
                    if name.eq_ignore_ascii_case("authorization") {
                        let flipped = if value.ends_with('0') { '1' } else { '0' };
                        value.pop();
                        value.push(flipped);
                    }
                }
            }),
        ),
        (
            "path changed",
            Box::new(|request: &mut Request| {
                request.target = format!("/v1/fragments/{}", random_fragment_id());
            }),
        ),
        (
            "method changed",
            Box::new(|request: &mut Request| request.method = "POST".to_string()),
        ),
        (
            "signed crc header replaced",
            Box::new(|request: &mut Request| {
                for (name, value) in request.headers.iter_mut() {
                    if name == "x-shardlet-crc32c" {
                        *value = crc32c_hex(b"other bytes");
                    }
                }
                request.body = Body::Full(b"other bytes".to_vec());
            }),
        ),
        (
            "x-amz-date changed",
            Box::new(|request: &mut Request| {
                for (name, value) in request.headers.iter_mut() {
                    if name.eq_ignore_ascii_case("x-amz-date") {
                        let earlier = if value.ends_with("0Z") { "1Z" } else { "0Z" };
                        value.truncate(value.len() - 2);
                        value.push_str(earlier);
                    }
                }
            }),
        ),
    ];
    for (why, tamper) in tampered_cases {
        let mut request = put_request(&new_id, &new_bytes);
        let signature = signing::signature_headers(
            &client.key(),
            SystemTime::now(),
            &request.method,
            &node.address.to_string(),
            &request.target,
            &request.headers,
            None,
        );
        request.headers.extend(signature);
        tamper(&mut request);
        let response = client.send_with(request, Auth::None).await;
        assert!(
            response.status == 401 || response.status == 405,
            "{why}: got {}",
            response.status
        );
        if response.status == 401 {
            assert_eq!(response.error_code(), "unauthorized", "{why}");
        }
    }

    // A tampered range header must not be served either.
    let mut ranged =
        Request::new("GET", &format!("/v1/fragments/{kept}")).header("range", "bytes=0-9");
    ranged.headers.extend(signing::signature_headers(
        &client.key(),
        SystemTime::now(),
        "GET",
        &node.address.to_string(),
        &ranged.target,
        &ranged.headers,
        None,
    ));
    for (name, value) in ranged.headers.iter_mut() {
        if name == "range" {
            *value = "bytes=0-99".to_string();
        }
    }
    assert_eq!(
        client.send_with(ranged, Auth::None).await.status,
        401,
        "range changed"
    );

    // Nothing changed: the new id was never stored, the kept one was never deleted.
    assert_eq!(client.head(&new_id).await.status, 404);
    assert!(!node.fragment_path(&new_id).exists());
    assert!(client.get(&kept).await.body == kept_bytes);

    // Clock skew inside the window is tolerated; health and metrics need no signature.
    let skewed = signed_with(
        &node.secret,
        &node_key,
        SystemTime::now() - Duration::from_secs(50),
    );
    let response = client
        .send_with(
            Request::new("HEAD", &format!("/v1/fragments/{kept}")),
            skewed,
        )
        .await;
    assert_eq!(response.status, 200, "50 s of skew is inside ±60 s");
    for path in ["/health", "/metrics"] {
        let response = client
            .send_with(Request::new("GET", path), Auth::None)
            .await;
        assert_eq!(response.status, 200, "{path} is unauthenticated");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ids_and_path_traversal_are_rejected() {
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    // Bait next to the data directory and inside it, one level above `fragments/xx/`.
    let secret_text = b"outside the data dir: must never be served or changed".to_vec();
    let bait = node.root.path().join("bait.txt");
    std::fs::write(&bait, &secret_text).unwrap();
    let inner_bait = node.data_dir.join("bait.txt");
    std::fs::write(&inner_bait, &secret_text).unwrap();
    let valid = random_fragment_id();
    let before = files_outside_fragments(&node);

    let mut too_long = valid.clone();
    too_long.push('0');
    let huge = "a".repeat(4000);
    let single_segment_ids = vec![
        "..".to_string(),
        "%2e%2e".to_string(),
        "%2e%2e%2fbait.txt".to_string(),
        "%2e%2e%2f%2e%2e%2fbait.txt".to_string(),
        "..%2f..%2fbait.txt".to_string(),
        "%2fetc%2fpasswd".to_string(),
        "bait.txt".to_string(),
        valid.to_uppercase(),
        valid[..52].to_string(),
        too_long,
        huge,
        format!("{}%00", &valid[..52]),
        format!("{}+{}", &valid[..26], &valid[27..]),
        valid.replace('-', "_"),
    ];
    for id in &single_segment_ids {
        for method in ["GET", "HEAD", "PUT", "DELETE"] {
            let mut request = Request::new(method, &format!("/v1/fragments/{id}"));
            if method == "PUT" {
                request = request
                    .header("x-shardlet-crc32c", &crc32c_hex(b"evil"))
                    .body(Body::Full(b"evil".to_vec()));
            }
            let response = client.send(request).await;
            assert_eq!(response.status, 400, "{method} /v1/fragments/{id}");
            if method != "HEAD" {
                assert_eq!(
                    response.error_code(),
                    "invalid_fragment_id",
                    "{method} {id}"
                );
            }
            assert!(!response.body.windows(20).any(|w| w == &secret_text[..20]));
        }
    }
    let multi_segment_targets = [
        "/v1/fragments/../bait.txt".to_string(),
        "/v1/fragments/../../bait.txt".to_string(),
        "/v1/fragments/../../../../../../etc/passwd".to_string(),
        format!("/v1/fragments/{}/{}", &valid[..2], valid),
        "/etc/passwd".to_string(),
        "/v1/../bait.txt".to_string(),
    ];
    for target in &multi_segment_targets {
        for method in ["GET", "PUT", "DELETE"] {
            let mut request = Request::new(method, target);
            if method == "PUT" {
                request = request
                    .header("x-shardlet-crc32c", &crc32c_hex(b"evil"))
                    .body(Body::Full(b"evil".to_vec()));
            }
            let response = client.send(request).await;
            assert!(
                response.status == 400 || response.status == 404 || response.status == 405,
                "{method} {target}: got {}",
                response.status
            );
            assert!(!response.body.windows(20).any(|w| w == &secret_text[..20]));
        }
    }

    assert_eq!(std::fs::read(&bait).unwrap(), secret_text, "bait untouched");
    assert_eq!(std::fs::read(&inner_bait).unwrap(), secret_text);
    assert_eq!(
        before,
        files_outside_fragments(&node),
        "no file created or removed"
    );
    let stored = files_under(&node.data_dir.join("fragments"));
    assert!(stored.is_empty(), "no fragment file was stored: {stored:?}");
    let listed = node.stored_fragments().await;
    assert!(listed.is_empty(), "no fragment was stored: {listed:?}");
}

/// Files of the test's temporary root, except the node's log (which grows) and tmp/
/// (which holds uploads in flight).
fn files_outside_fragments(node: &NodeProcess) -> Vec<std::path::PathBuf> {
    files_under(node.root.path())
        .into_iter()
        .filter(|path| path != &node.log_path && !path.starts_with(node.data_dir.join("tmp")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_body_is_refused_with_413() {
    let limit = 1024 * 1024;
    let node = NodeProcess::start(
        &shardlet_binary!(),
        NodeOptions {
            max_fragment_bytes: Some(limit),
            ..NodeOptions::default()
        },
    )
    .await;
    let client = node.client();

    // Declared only: the node must refuse from the headers, without waiting for a body
    // that never comes (the raw client would time out otherwise).
    let id = random_fragment_id();
    let declared = Request::new("PUT", &format!("/v1/fragments/{id}"))
        .header("x-shardlet-crc32c", "00000000")
        .body(Body::DeclaredOnly(limit + 1));
    let response = client.send(declared).await;
    assert_eq!(response.status, 413);
    assert_eq!(response.error_code(), "fragment_too_large");

    let too_big = pattern_bytes(limit as usize + 1, 5);
    let response = client.put(&id, &too_big).await;
    assert_eq!(response.status, 413);
    assert_eq!(client.head(&id).await.status, 404, "nothing stored");

    let exactly = pattern_bytes(limit as usize, 6);
    assert_eq!(
        client.put(&id, &exactly).await.status,
        201,
        "the limit itself is allowed"
    );
    assert!(client.get(&id).await.body == exactly);

    // The default limit is 16 MiB.
    let default_node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let declared = Request::new("PUT", &format!("/v1/fragments/{}", random_fragment_id()))
        .header("x-shardlet-crc32c", "00000000")
        .body(Body::DeclaredOnly(16 * 1024 * 1024 + 1));
    assert_eq!(default_node.client().send(declared).await.status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hint_other_than_keep_is_400_and_keep_stores_the_fragment() {
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    // Large enough to bypass the page cache without the hint.
    let bytes = pattern_bytes(3 * 1024 * 1024 + 11, 4);
    let id = random_fragment_id();
    for bad in ["Keep", "yes", ""] {
        let request = Request::new("PUT", &format!("/v1/fragments/{id}"))
            .header("x-shardlet-crc32c", &crc32c_hex(&bytes))
            .header("x-shardlet-cache", bad)
            .body(Body::Full(bytes.clone()));
        let response = client.send(request).await;
        assert_eq!(response.status, 400, "hint {bad:?}");
        assert_eq!(response.error_code(), "invalid_cache_hint");
        assert_eq!(client.head(&id).await.status, 404, "nothing stored");
    }
    let request = Request::new("PUT", &format!("/v1/fragments/{id}"))
        .header("x-shardlet-crc32c", &crc32c_hex(&bytes))
        .header("x-shardlet-cache", "keep")
        .body(Body::Full(bytes.clone()));
    assert_eq!(client.send(request).await.status, 201);
    assert!(client.get(&id).await.body == bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_content_length_is_411() {
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    let id = random_fragment_id();
    let bytes = pattern_bytes(10_000, 9);
    let chunked = Request::new("PUT", &format!("/v1/fragments/{id}"))
        .header("x-shardlet-crc32c", &crc32c_hex(&bytes))
        .body(Body::Chunked(vec![
            bytes[..4000].to_vec(),
            bytes[4000..].to_vec(),
        ]));
    let response = client.send(chunked).await;
    assert_eq!(response.status, 411);
    assert_eq!(response.error_code(), "length_required");

    let no_body = Request::new("PUT", &format!("/v1/fragments/{id}"))
        .header("x-shardlet-crc32c", &crc32c_hex(&[]));
    assert_eq!(client.send(no_body).await.status, 411);
    assert_eq!(client.head(&id).await.status, 404, "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_get_405() {
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    let id = random_fragment_id();
    for method in ["POST", "PATCH"] {
        let request = Request::new(method, &format!("/v1/fragments/{id}"));
        assert_eq!(
            client.send(request).await.status,
            405,
            "{method} on a fragment"
        );
    }
    let request = Request::new("DELETE", "/v1/fragments");
    assert_eq!(
        client.send(request).await.status,
        405,
        "DELETE on the listing"
    );
}
