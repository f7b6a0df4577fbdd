//! The happy paths of the API: writes, reads, ranges, listing, idempotent retries.

use std::collections::BTreeMap;

use shardlet_testkit::raw_http::{Body, Request, Response};
use shardlet_testkit::{
    crc32c_hex, pattern_bytes, random_fragment_id, shardlet_binary, NodeOptions, NodeProcess,
};

const BLOCK: usize = 64 * 1024;

/// The headers of every read of `fragment`: the body's length, and the whole
/// fragment's length and CRC32C.
fn assert_read_headers(response: &Response, body_length: usize, fragment: &[u8]) {
    let body_length = body_length.to_string();
    let fragment_length = fragment.len().to_string();
    assert_eq!(
        response.header("content-length"),
        Some(body_length.as_str())
    );
    assert_eq!(
        response.header("x-shardlet-length"),
        Some(fragment_length.as_str())
    );
    assert_eq!(
        response.header("x-shardlet-crc32c"),
        Some(crc32c_hex(fragment).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_head_delete_list_round_trip() {
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    let sizes = [0, 1, 4096, BLOCK - 1, BLOCK, BLOCK + 1, 1024 * 1024 + 3];
    let mut stored = BTreeMap::new();
    for (seed, size) in sizes.into_iter().enumerate() {
        let id = random_fragment_id();
        let bytes = pattern_bytes(size, seed as u64);
        let put = client.put(&id, &bytes).await;
        assert_eq!(put.status, 201, "first PUT of {size} bytes creates");
        assert_eq!(
            put.header("x-shardlet-crc32c"),
            Some(crc32c_hex(&bytes).as_str())
        );
        // Up to one block (64 KiB) a fragment lives in the node's small-fragment store;
        // larger ones are files at the contract path.
        assert_eq!(
            node.fragment_path(&id).is_file(),
            size > BLOCK,
            "a fragment of {size} bytes is a file exactly when it is larger than a block"
        );

        let get = client.get(&id).await;
        assert_eq!(get.status, 200, "GET of {size} bytes");
        assert!(get.body_complete);
        assert!(
            get.body == bytes,
            "GET returns exactly the {size} stored bytes"
        );
        assert_read_headers(&get, size, &bytes);

        let head = client.head(&id).await;
        assert_eq!(head.status, 200, "HEAD of {size} bytes");
        assert!(head.body.is_empty());
        assert_read_headers(&head, size, &bytes);
        stored.insert(id, bytes);
    }
    for seed in 0..23u64 {
        let id = random_fragment_id();
        let bytes = pattern_bytes(100 + seed as usize, 1000 + seed);
        assert_eq!(client.put(&id, &bytes).await.status, 201);
        stored.insert(id, bytes);
    }

    // One page holding everything, then small pages: every id once, in order.
    let everything = client.list(None, None).await;
    assert_eq!(everything.status, 200);
    let json = everything.json();
    let listed = json["fragments"].as_array().expect("a fragments array");
    assert_eq!(listed.len(), stored.len());
    assert!(json["next_after"].is_null(), "one page holds all: {json}");
    for (entry, (id, bytes)) in listed.iter().zip(&stored) {
        assert_eq!(entry["id"].as_str(), Some(id.as_str()), "sorted by id");
        assert_eq!(entry["length"].as_u64(), Some(bytes.len() as u64));
        assert_eq!(entry["crc32c"].as_str(), Some(crc32c_hex(bytes).as_str()));
    }
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    for _page in 0..=stored.len() {
        let page = client.list(after.as_deref(), Some(4)).await;
        assert_eq!(page.status, 200);
        let json = page.json();
        let entries = json["fragments"].as_array().expect("a fragments array");
        assert!(entries.len() <= 4, "limit is respected");
        paged.extend(
            entries
                .iter()
                .map(|entry| entry["id"].as_str().unwrap().to_string()),
        );
        match json["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = stored.keys().cloned().collect();
    assert_eq!(paged, expected, "pages together list every id once, sorted");

    for target in [
        "/v1/fragments?limit=10001",
        "/v1/fragments?limit=many",
        "/v1/fragments?limit=-1",
    ] {
        let response = client.send(Request::new("GET", target)).await;
        assert_eq!(response.status, 400, "{target} is a bad listing request");
    }

    for id in stored.keys() {
        assert_eq!(client.delete(id).await.status, 204);
        assert!(!node.fragment_path(id).exists(), "DELETE removes any file");
        let get = client.get(id).await;
        assert_eq!(get.status, 404);
        assert_eq!(get.error_code(), "not_found");
        assert_eq!(client.head(id).await.status, 404);
        assert_eq!(client.delete(id).await.status, 204, "DELETE is idempotent");
    }
    let empty = client.list(None, None).await.json();
    assert_eq!(empty["fragments"].as_array().map(Vec::len), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_reads_return_exactly_the_requested_bytes() {
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    let length = 3 * BLOCK + 100;
    let bytes = pattern_bytes(length, 7);
    let id = random_fragment_id();
    assert_eq!(client.put(&id, &bytes).await.status, 201);

    let last = length - 1;
    let cases: Vec<(String, usize, usize)> = vec![
        ("bytes=0-0".into(), 0, 0),
        ("bytes=0-65535".into(), 0, BLOCK - 1),
        ("bytes=65535-65536".into(), BLOCK - 1, BLOCK),
        ("bytes=65536-131071".into(), BLOCK, 2 * BLOCK - 1),
        ("bytes=100-150000".into(), 100, 150_000),
        // RFC 9110: a last position past the end means "to the end".
        (format!("bytes=100-{}", length + 1000), 100, last),
        (format!("bytes={last}-{last}"), last, last),
        (format!("bytes={}-", 3 * BLOCK - 7), 3 * BLOCK - 7, last),
        ("bytes=0-".into(), 0, last),
        ("bytes=-1".into(), last, last),
        ("bytes=-100".into(), length - 100, last),
        (
            format!("bytes=-{}", BLOCK + 100),
            length - BLOCK - 100,
            last,
        ),
    ];
    for (range, first, end) in cases {
        let response = client.get_range(&id, &range).await;
        assert_eq!(response.status, 206, "{range}");
        assert!(
            response.body == bytes[first..=end],
            "{range} returns bytes {first}..={end} exactly"
        );
        let expected_range = format!("bytes {first}-{end}/{length}");
        assert_eq!(
            response.header("content-range"),
            Some(expected_range.as_str())
        );
        assert_read_headers(&response, end - first + 1, &bytes);
    }

    for range in [
        format!("bytes={length}-"),
        format!("bytes={}-{}", length + 5, length + 9),
    ] {
        let response = client.get_range(&id, &range).await;
        assert_eq!(response.status, 416, "{range} is unsatisfiable");
        assert!(!response.body.windows(16).any(|w| w == &bytes[..16]));
    }
    for range in ["bytes=abc", "bytes=", "bytes=-", "bytes=1-2-3"] {
        let response = client.get_range(&id, range).await;
        assert_eq!(response.status, 400, "{range} is malformed");
        assert_eq!(response.error_code(), "invalid_range");
    }
    for range in ["bytes=0-1,5-6", "bytes=9-2"] {
        let status = client.get_range(&id, range).await.status;
        assert!(
            status == 400 || status == 416,
            "{range} is refused, got {status}"
        );
    }

    let empty_id = random_fragment_id();
    assert_eq!(client.put(&empty_id, &[]).await.status, 201);
    assert_eq!(client.get_range(&empty_id, "bytes=0-0").await.status, 416);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_retry_is_idempotent() {
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    let id = random_fragment_id();
    let bytes = pattern_bytes(BLOCK + 17, 3);
    assert_eq!(client.put(&id, &bytes).await.status, 201);
    for _retry in 0..3 {
        let retry = client.put(&id, &bytes).await;
        assert_eq!(
            retry.status, 200,
            "an identical retry is acknowledged, not an error"
        );
        assert_eq!(
            retry.header("x-shardlet-crc32c"),
            Some(crc32c_hex(&bytes).as_str())
        );
    }
    assert!(client.get(&id).await.body == bytes);
    let listed = client.list(None, None).await.json();
    assert_eq!(listed["fragments"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewriting_an_id_with_other_bytes_is_409() {
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    let id = random_fragment_id();
    let original = pattern_bytes(4096, 1);
    assert_eq!(client.put(&id, &original).await.status, 201);
    for other in [pattern_bytes(4096, 2), pattern_bytes(10, 2), Vec::new()] {
        let rewrite = client.put(&id, &other).await;
        assert_eq!(rewrite.status, 409);
        assert_eq!(rewrite.error_code(), "fragment_exists");
    }
    let get = client.get(&id).await;
    assert!(get.body == original, "fragments are immutable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crc_mismatch_is_refused_and_nothing_is_stored() {
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    let bytes = pattern_bytes(3 * BLOCK, 11);
    let other = pattern_bytes(3 * BLOCK, 12);

    let id = random_fragment_id();
    let lying = Request::new("PUT", &format!("/v1/fragments/{id}"))
        .header("x-shardlet-crc32c", &crc32c_hex(&other))
        .body(Body::Full(bytes.clone()));
    let response = client.send(lying).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_code(), "crc_mismatch");

    for header in [
        None,
        Some("xyz"),
        Some("0a1b2c3"),
        Some("0a1b2c3d0"),
        Some(""),
    ] {
        let mut request =
            Request::new("PUT", &format!("/v1/fragments/{id}")).body(Body::Full(bytes.clone()));
        if let Some(value) = header {
            request = request.header("x-shardlet-crc32c", value);
        }
        let response = client.send(request).await;
        assert_eq!(
            response.status, 400,
            "x-shardlet-crc32c {header:?} is refused"
        );
        assert!(!response.error_code().is_empty());
    }

    assert_eq!(client.get(&id).await.status, 404, "nothing was stored");
    assert_eq!(client.head(&id).await.status, 404);
    assert!(!node.fragment_path(&id).exists());
    let listed = client.list(None, None).await.json();
    assert_eq!(listed["fragments"].as_array().map(Vec::len), Some(0));
    let tmp = node.data_dir.join("tmp");
    shardlet_testkit::wait_until(
        std::time::Duration::from_secs(10),
        "refused uploads leave nothing in tmp/",
        || async { shardlet_testkit::files_under(&tmp).is_empty() },
    )
    .await;

    // The id is still free: a correct upload afterwards creates it.
    assert_eq!(client.put(&id, &bytes).await.status, 201);
    assert!(client.get(&id).await.body == bytes);
}

/// Racing writers of one id: fragments are immutable, so exactly one version may win,
/// and every writer told "stored" (201/200) must find its own bytes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_of_one_id_store_exactly_one_version() {
    const RACERS: u64 = 16;
    let node = NodeProcess::start(&shardlet_binary!(), NodeOptions::default()).await;
    let client = node.client();
    for round in 0..5u64 {
        let id = random_fragment_id();
        let mut racers = Vec::new();
        for racer in 0..RACERS {
            let (client, id) = (client.clone(), id.clone());
            // Half the racers send the same bytes (identical retries), half differ.
            let seed = if racer % 2 == 0 {
                0
            } else {
                round * 100 + racer
            };
            racers.push(tokio::spawn(async move {
                let bytes = pattern_bytes(2 * BLOCK + 9, seed);
                let status = client.put(&id, &bytes).await.status;
                (status, bytes)
            }));
        }
        let mut winners = Vec::new();
        for racer in racers {
            let (status, bytes) = racer.await.unwrap();
            match status {
                200 | 201 => winners.push(bytes),
                409 => {}
                other => panic!("racing PUT answered {other}"),
            }
        }
        let stored = client.get(&id).await;
        assert_eq!(stored.status, 200);
        assert!(!winners.is_empty(), "some racer stored the fragment");
        for bytes in &winners {
            assert!(
                stored.body == *bytes,
                "every acknowledged racer's bytes are the stored bytes"
            );
        }
    }
}
