//! Crashes under load, on a cluster of real processes: `kill -9` of a storage node
//! while objects are being read, and of the gateway while objects are being uploaded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use shardlet_core::FragmentId;

use shardlet_testkit::{
    metric_total, pattern_bytes, shardlet_binary, wait_until, Cluster, S3Client,
};

const MIB: usize = 1024 * 1024;
/// Generous: 2 shared cores, a dozen processes, fsync on every fragment.
const PROGRESS_DEADLINE: Duration = Duration::from_secs(180);
const READERS: usize = 2;

/// An object as the test stored it.
struct Stored {
    key: &'static str,
    bytes: Vec<u8>,
}

/// Replicated and erasure-coded objects (the storage classes that start as RS(6,3) and
/// RS(4,2), see docs/gateway.md), small and spanning several 2 MiB shardlets.
const READ_OBJECTS: [(&str, usize, Option<&str>); 7] = [
    ("replicated/small", 100_000, None),
    ("replicated/nine-mib", 9 * MIB + 123, None),
    (
        "two-copies/five-mib",
        5 * MIB + 7,
        Some("REDUCED_REDUNDANCY"),
    ),
    ("erasure-6-3/small", 300_001, Some("STANDARD_IA")),
    ("erasure-6-3/nine-mib", 9 * MIB + 5, Some("STANDARD_IA")),
    ("erasure-4-2/seven-mib", 7 * MIB + 3, Some("ONEZONE_IA")),
    ("erasure-6-3/glacier", 4 * MIB + 1, Some("GLACIER")),
];

/// Reads every object whole and, for the large ones, a range across a shardlet
/// boundary; returns a description of every read that failed or differed.
async fn read_everything(s3: &S3Client, objects: &[Stored], start: usize) -> Vec<String> {
    let mut problems = Vec::new();
    for offset in 0..objects.len() {
        let object = &objects[(start + offset) % objects.len()];
        match s3.get_object("reads", object.key, None).await {
            Ok(bytes) if bytes == object.bytes => {}
            Ok(bytes) => problems.push(format!(
                "{}: {} bytes differ from the {} stored",
                object.key,
                bytes.len(),
                object.bytes.len()
            )),
            Err(error) => problems.push(format!("{}: {error}", object.key)),
        }
        if object.bytes.len() > 3 * MIB {
            let (first, last) = (2 * MIB - 1000, 2 * MIB + 999);
            let range = format!("bytes={first}-{last}");
            match s3.get_object("reads", object.key, Some(&range)).await {
                Ok(bytes) if bytes[..] == object.bytes[first..=last] => {}
                Ok(bytes) => problems.push(format!(
                    "{} {range}: {} bytes differ",
                    object.key,
                    bytes.len()
                )),
                Err(error) => problems.push(format!("{} {range}: {error}", object.key)),
            }
        }
    }
    problems
}

/// The fragment ids each node holds now (by position), from its listing.
async fn fragments_by_node(cluster: &Cluster) -> Vec<BTreeSet<FragmentId>> {
    let mut by_node = Vec::new();
    for node in &cluster.nodes {
        let stored = node.stored_fragments().await;
        by_node.push(
            stored
                .iter()
                .filter_map(|(id, _)| id.parse().ok())
                .collect(),
        );
    }
    by_node
}

async fn degraded_reads(cluster: &Cluster) -> f64 {
    metric_total(
        &cluster.gateway_metrics().await,
        "shardlet_gateway_degraded_reads_total",
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_return_identical_bytes_while_a_storage_node_is_killed() {
    let mut cluster = Cluster::start(&shardlet_binary!(), 12).await;
    let s3 = S3Client::new(cluster.access.clone());
    s3.create_bucket("reads").await.unwrap();
    // Replicated objects first, then erasure-coded ones: the fragments that appear in
    // between tell which node holds which kind.
    let mut replicated = Vec::new();
    let mut erasure_coded = Vec::new();
    let mut replica_fragments = Vec::new();
    for (index, (key, size, class)) in READ_OBJECTS.iter().enumerate() {
        let is_erasure_coded = key.starts_with("erasure");
        if is_erasure_coded && replica_fragments.is_empty() {
            replica_fragments = fragments_by_node(&cluster).await;
        }
        let bytes = pattern_bytes(*size, 1000 + index as u64);
        s3.put_object("reads", key, bytes.clone(), *class)
            .await
            .unwrap_or_else(|error| panic!("PUT {key} ({class:?}): {error}"));
        let stored = Stored { key, bytes };
        if is_erasure_coded {
            erasure_coded.push(stored);
        } else {
            replicated.push(stored);
        }
    }
    let all_fragments = fragments_by_node(&cluster).await;

    // The victim holds at least one replica and at least one erasure *data* fragment
    // (index below k = 4 or 6), so both fallbacks are needed once it is gone.
    let kinds = |position: usize| {
        let replicas = replica_fragments[position].len();
        let erasure_data = all_fragments[position]
            .difference(&replica_fragments[position])
            .filter(|fragment| fragment.index.0 < 4)
            .count();
        (replicas, erasure_data)
    };
    let victim = (0..cluster.nodes.len())
        .max_by_key(|position| {
            let (replicas, erasure_data) = kinds(*position);
            replicas.min(erasure_data)
        })
        .unwrap();
    let (victim_replicas, victim_erasure_data) = kinds(victim);
    assert!(
        victim_replicas > 0 && victim_erasure_data > 0,
        "no node holds both a replica and an erasure data fragment: {:?}",
        (0..cluster.nodes.len()).map(kinds).collect::<Vec<_>>()
    );
    let victim_id = cluster.nodes[victim].options.node_id;

    // Readers loop over every object until told to stop, recording every bad read.
    let objects: Arc<Vec<Stored>> = Arc::new(
        replicated
            .iter()
            .chain(&erasure_coded)
            .map(|object| Stored {
                key: object.key,
                bytes: object.bytes.clone(),
            })
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut readers = Vec::new();
    for reader in 0..READERS {
        let (s3, objects, stop, rounds, problems) = (
            s3.clone(),
            objects.clone(),
            stop.clone(),
            rounds.clone(),
            problems.clone(),
        );
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let found = read_everything(&s3, &objects, reader * 3).await;
                problems.lock().unwrap().extend(found);
                rounds.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let rounds_reached = |target: usize| {
        let rounds = rounds.clone();
        move || {
            let rounds = rounds.clone();
            async move { rounds.load(Ordering::SeqCst) >= target }
        }
    };
    wait_until(
        PROGRESS_DEADLINE,
        "every reader finished a round",
        rounds_reached(READERS),
    )
    .await;
    assert_eq!(
        problems.lock().unwrap().clone(),
        Vec::<String>::new(),
        "reads failed before any fault"
    );

    let rounds_at_kill = rounds.load(Ordering::SeqCst);
    cluster.nodes[victim].kill_9();
    println!(
        "killed node {victim_id} (holding {victim_replicas} replicas, {victim_erasure_data} \
         erasure data fragments) after {rounds_at_kill} read rounds"
    );
    // Every reader completes at least one whole round that started after the kill.
    wait_until(
        PROGRESS_DEADLINE,
        "every reader finished two rounds after the kill",
        rounds_reached(rounds_at_kill + 2 * READERS),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }

    // Then one kind at a time, with the node still down: erasure-coded objects must
    // have needed reconstruction (a data fragment is gone), replicated ones a fallback
    // wherever the gone replica was the first choice.
    let before = degraded_reads(&cluster).await;
    let found = read_everything(&s3, &erasure_coded, 0).await;
    problems.lock().unwrap().extend(found);
    let after_erasure = degraded_reads(&cluster).await;
    let found = read_everything(&s3, &replicated, 0).await;
    problems.lock().unwrap().extend(found);
    let after_replicated = degraded_reads(&cluster).await;
    println!(
        "degraded reads with node {victim_id} down: erasure-coded pass {}, replicated pass {}",
        after_erasure - before,
        after_replicated - after_erasure
    );
    let problems = problems.lock().unwrap().clone();
    assert!(
        problems.is_empty(),
        "{} reads failed or differed around the kill of node {victim_id}:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        after_erasure > before,
        "reading erasure-coded objects without one of their data fragments counted no \
         degraded read"
    );
}

/// The content the uploader sends for `key`: size and bytes follow from the key.
fn upload_content(task: usize, sequence: usize) -> Vec<u8> {
    const SIZES: [usize; 5] = [0, 1_000, 300_000, 2 * MIB + 500, 5 * MIB + 3];
    pattern_bytes(
        SIZES[(task + sequence) % SIZES.len()],
        (task * 10_000 + sequence) as u64,
    )
}

type BodyChunk = Result<Vec<u8>, std::io::Error>;

/// A PUT whose body is held open by `_hold`: the request stays in flight until the
/// test drops it or the gateway dies.
struct HeldUpload {
    answer: tokio::task::JoinHandle<Result<reqwest::Response, reqwest::Error>>,
    _hold: tokio::sync::mpsc::Sender<BodyChunk>,
}

/// Starts a PUT declaring `bytes.len()` whose body stops after `sent` bytes.
fn start_held_upload(s3: &S3Client, key: &str, bytes: Vec<u8>, sent: usize) -> HeldUpload {
    let (sender, receiver) = tokio::sync::mpsc::channel::<BodyChunk>(64);
    let length = bytes.len().to_string();
    let body = reqwest::Body::wrap_stream(tokio_stream_from(receiver));
    let request = s3
        .signed(
            reqwest::Method::PUT,
            &format!("/uploads/{key}"),
            &[("content-length", length.as_str())],
        )
        .body(body);
    let answer = tokio::spawn(request.send());
    let first = bytes[..sent].to_vec();
    let hold = sender.clone();
    tokio::spawn(async move {
        for chunk in first.chunks(256 * 1024) {
            if sender.send(Ok(chunk.to_vec())).await.is_err() {
                return;
            }
        }
    });
    HeldUpload {
        answer,
        _hold: hold,
    }
}

fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<BodyChunk>,
) -> impl futures::Stream<Item = BodyChunk> {
    futures::stream::poll_fn(move |context| receiver.poll_recv(context))
}

#[derive(Default)]
struct UploadLedger {
    /// Every key whose PUT was started, with the bytes it sent.
    attempted: BTreeMap<String, Vec<u8>>,
    /// Keys whose PUT answered 200.
    acknowledged: BTreeSet<String>,
    /// PUTs that failed before the gateway was killed (each one is a bug).
    failed_before_kill: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_uploads_survive_gateway_kill_9_and_partial_ones_stay_invisible() {
    let mut cluster = Cluster::start(&shardlet_binary!(), 8).await;
    let s3 = S3Client::new(cluster.access.clone());
    s3.create_bucket("uploads").await.unwrap();
    let original = pattern_bytes(3 * MIB + 1, 1);
    s3.put_object("uploads", "overwritten", original.clone(), None)
        .await
        .unwrap();

    // Two PUTs hang halfway through their bodies: a new key, and an overwrite of an
    // acknowledged object. Once the gateway has written their first shardlets, they
    // are provably in the middle of the write path.
    let written_before = metric_total(
        &cluster.gateway_metrics().await,
        "shardlet_gateway_shardlets_written_total",
    )
    .unwrap_or(0.0);
    let held_new = start_held_upload(&s3, "half-sent-new", pattern_bytes(6 * MIB, 2), 3 * MIB);
    let held_overwrite = start_held_upload(&s3, "overwritten", pattern_bytes(6 * MIB, 3), 3 * MIB);
    let gateway_address = cluster.gateway.admin_address();
    wait_until(
        PROGRESS_DEADLINE,
        "the gateway wrote the first shardlet of both held uploads",
        || async move {
            let request = shardlet_testkit::raw_http::Request::new("GET", "/metrics");
            let Ok(response) = shardlet_testkit::raw_http::send(gateway_address, &request).await
            else {
                return false;
            };
            let text = String::from_utf8_lossy(&response.body).into_owned();
            metric_total(&text, "shardlet_gateway_shardlets_written_total").unwrap_or(0.0)
                >= written_before + 2.0
        },
    )
    .await;

    // Meanwhile uploaders PUT one object after another.
    let ledger = Arc::new(Mutex::new(UploadLedger::default()));
    let killed = Arc::new(AtomicBool::new(false));
    let mut uploaders = Vec::new();
    for task in 0..3 {
        let (s3, ledger, killed) = (s3.clone(), ledger.clone(), killed.clone());
        uploaders.push(tokio::spawn(async move {
            for sequence in 0.. {
                let key = format!("stream/{task}/{sequence:04}");
                let bytes = upload_content(task, sequence);
                ledger
                    .lock()
                    .unwrap()
                    .attempted
                    .insert(key.clone(), bytes.clone());
                let was_killed = killed.load(Ordering::SeqCst);
                match s3.put_object("uploads", &key, bytes, None).await {
                    Ok(_) => {
                        ledger.lock().unwrap().acknowledged.insert(key);
                    }
                    Err(error) => {
                        if !was_killed && !killed.load(Ordering::SeqCst) {
                            ledger
                                .lock()
                                .unwrap()
                                .failed_before_kill
                                .push(format!("{key}: {error}"));
                        }
                        return;
                    }
                }
            }
        }));
    }
    let acknowledged_at_least = |count: usize| {
        let ledger = ledger.clone();
        move || {
            let ledger = ledger.clone();
            async move { ledger.lock().unwrap().acknowledged.len() >= count }
        }
    };
    wait_until(
        PROGRESS_DEADLINE,
        "uploaders had 9 objects acknowledged",
        acknowledged_at_least(9),
    )
    .await;

    killed.store(true, Ordering::SeqCst);
    cluster.gateway.kill_9();
    for uploader in uploaders {
        tokio::time::timeout(PROGRESS_DEADLINE, uploader)
            .await
            .expect("uploaders stop once the gateway is gone")
            .unwrap();
    }
    for (name, held) in [("half-sent-new", held_new), ("overwritten", held_overwrite)] {
        let outcome = tokio::time::timeout(PROGRESS_DEADLINE, held.answer)
            .await
            .expect("a held upload ends when the gateway dies")
            .unwrap();
        if let Ok(response) = outcome {
            panic!(
                "the half-sent PUT of {name} was answered {} although half its body never came",
                response.status()
            );
        }
    }
    cluster.gateway.restart().await;

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(
        ledger.failed_before_kill.is_empty(),
        "uploads failed before the kill: {:?}",
        ledger.failed_before_kill
    );
    let listed: BTreeSet<String> = s3.list_keys("uploads").await.unwrap().into_iter().collect();
    let mut problems = Vec::new();
    for key in &ledger.acknowledged {
        if !listed.contains(key) {
            problems.push(format!("acknowledged {key} is not listed"));
        }
    }
    for key in &listed {
        let expected = match key.as_str() {
            "overwritten" => &original,
            other => match ledger.attempted.get(other) {
                Some(bytes) => bytes,
                None => {
                    problems.push(format!("{key} is listed but was never uploaded"));
                    continue;
                }
            },
        };
        match s3.get_object("uploads", key, None).await {
            Ok(bytes) if &bytes == expected => {}
            Ok(bytes) => problems.push(format!(
                "{key}: {} bytes, not the {} uploaded",
                bytes.len(),
                expected.len()
            )),
            Err(error) => problems.push(format!("{key} is listed but GET fails: {error}")),
        }
    }
    if listed.contains("half-sent-new") {
        problems.push("the half-sent new object is visible".into());
    }
    match s3.get_object("uploads", "half-sent-new", None).await {
        Err(error) if error.status() == Some(404) => {}
        other => problems.push(format!(
            "GET of the half-sent new object: {:?}",
            other.map(|bytes| bytes.len())
        )),
    }
    assert!(
        problems.is_empty(),
        "after kill -9 of the gateway ({} acknowledged, {} attempted):\n{}",
        ledger.acknowledged.len(),
        ledger.attempted.len(),
        problems.join("\n")
    );
    let unacknowledged_but_complete = listed
        .iter()
        .filter(|key| key.starts_with("stream/") && !ledger.acknowledged.contains(*key))
        .count();
    println!(
        "{} acknowledged, {} attempted, {unacknowledged_but_complete} unacknowledged but complete",
        ledger.acknowledged.len(),
        ledger.attempted.len()
    );

    // The restarted gateway works: a new object round-trips, streamed in.
    let fresh = pattern_bytes(5 * MIB, 4);
    s3.put_object("uploads", "after-restart", fresh.clone(), None)
        .await
        .unwrap();
    let response = s3
        .signed(reqwest::Method::GET, "/uploads/after-restart", &[])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert!(received == fresh, "after-restart object differs");
}
