//! One upload deadline for the whole cluster, with real processes: set at run time by
//! an operator (`shardlet admin cluster set upload-deadline-seconds`), seen by the
//! gateway and the controller alike; an upload slower than it is refused and leaves
//! nothing behind, while the controller's scrub, which sees an upload's fragments
//! before their record exists, keeps those of an upload still inside it.

use std::time::Duration;

use shardlet_model::schema::IntentRecord;
use shardlet_testkit::controller::{controller_get, controller_metric, controller_status};
use shardlet_testkit::records::scan;
use shardlet_testkit::{
    metric_total, pattern_bytes, shardlet_binary, wait_until, Cluster, S3Client,
};

/// Generous: 2 shared cores, a dozen processes.
const DEADLINE: Duration = Duration::from_secs(180);
const MIB: usize = 1024 * 1024;
/// The deadline while the live upload runs: long enough for it on a loaded machine.
const LONG_DEADLINE_SECONDS: u64 = 600;
/// The deadline the slow upload runs into.
const SHORT_DEADLINE_SECONDS: u64 = 4;

type BodyChunk = Result<Vec<u8>, std::io::Error>;

/// A PUT whose body the test sends chunk by chunk.
struct Streamed {
    answer: tokio::task::JoinHandle<Result<reqwest::Response, reqwest::Error>>,
    body: tokio::sync::mpsc::Sender<BodyChunk>,
}

fn start_put(s3: &S3Client, path: &str, declared_length: usize) -> Streamed {
    let (body, receiver) = tokio::sync::mpsc::channel::<BodyChunk>(4);
    let mut receiver = receiver;
    let stream = futures::stream::poll_fn(move |context| receiver.poll_recv(context));
    let length = declared_length.to_string();
    let request = s3
        .signed(
            reqwest::Method::PUT,
            path,
            &[("content-length", length.as_str())],
        )
        .body(reqwest::Body::wrap_stream(stream));
    Streamed {
        answer: tokio::spawn(request.send()),
        body,
    }
}

/// The gateway's metric `name`, 0 when absent.
async fn gateway_metric(cluster: &Cluster, name: &str) -> f64 {
    metric_total(&cluster.gateway_metrics().await, name).unwrap_or(0.0)
}

/// The controller's `/v1/status` `settings` object.
async fn controller_settings(controller: &shardlet_testkit::ServiceProcess) -> serde_json::Value {
    let status: serde_json::Value =
        serde_json::from_str(&controller_status(controller).await).unwrap_or_default();
    status["settings"].clone()
}

/// Waits until both the gateway and the controller enforce `seconds`.
async fn wait_until_enforced(
    cluster: &Cluster,
    controller: &shardlet_testkit::ServiceProcess,
    seconds: u64,
) {
    wait_until(
        DEADLINE,
        &format!("gateway and controller enforce an upload deadline of {seconds} s"),
        || async {
            gateway_metric(cluster, "shardlet_gateway_upload_deadline_seconds").await
                == seconds as f64
                && controller_settings(controller).await["upload_deadline_seconds"] == seconds
        },
    )
    .await;
}

/// Object ids of the intents open for `key` now.
async fn intents_for(cluster: &Cluster, key: &str) -> Vec<String> {
    scan::<IntentRecord>(&cluster.meta_client(), "i/")
        .await
        .into_iter()
        .filter(|intent| intent.key == key)
        .map(|intent| intent.object_id.to_string())
        .collect()
}

/// Fragments of object `id` still stored on any node.
async fn fragments_of(cluster: &Cluster, id: &str) -> usize {
    cluster
        .fragments_stored()
        .await
        .values()
        .flatten()
        .filter(|(fragment, _)| fragment.to_string().starts_with(id))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_changed_at_run_time_is_enforced_by_gateway_and_controller() {
    let cluster = Cluster::start(&shardlet_binary!(), 4).await;
    let controller = cluster.start_controller("controller", &[]).await;
    let shown = cluster.admin(&["admin", "cluster", "show"]);
    assert!(
        shown.contains("upload-deadline-seconds 3600 (default)"),
        "{shown}"
    );
    wait_until_enforced(&cluster, &controller, 3600).await;
    assert_eq!(
        controller_settings(&controller).await["orphan_grace_seconds"],
        7200,
        "grace = deadline + max(deadline, 60 s)"
    );

    let set = cluster.set_upload_deadline(45);
    assert!(set.contains("upload-deadline-seconds 45"), "{set}");
    wait_until_enforced(&cluster, &controller, 45).await;
    // Lowered: the grace follows once the 30 s hold is over.
    wait_until(
        DEADLINE,
        "the orphan grace follows the lowered deadline",
        || async { controller_settings(&controller).await["orphan_grace_seconds"] == 105 },
    )
    .await;
    assert_eq!(
        controller_metric(&controller, "shardlet_controller_orphan_grace_seconds").await,
        105.0
    );
    // Raised: at once.
    cluster.set_upload_deadline(7200);
    wait_until_enforced(&cluster, &controller, 7200).await;
    assert_eq!(
        controller_settings(&controller).await["orphan_grace_seconds"],
        14_400
    );

    // Bad values are refused with the reason, and change nothing.
    let meta = cluster.meta.address.to_string();
    for (value, expected) in [
        ("0", "from 1 to 604800"),
        ("604801", "from 1 to 604800"),
        ("-3", "is not a whole number of seconds"),
        ("1h", "is not a whole number of seconds"),
    ] {
        let output = cluster
            .binary
            .command()
            .args([
                "admin",
                "cluster",
                "set",
                "upload-deadline-seconds",
                value,
                "--meta",
                &meta,
            ])
            .env("SHARDLET_CLUSTER_SECRET", &cluster.secret)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(expected),
            "{value}: {} {stderr}",
            output.status
        );
    }
    let shown = cluster.admin(&["admin", "cluster", "show"]);
    assert!(shown.contains("upload-deadline-seconds 7200"), "{shown}");

    // The two flags the setting replaces are refused with a pointer to it.
    for (command, flag) in [
        ("gateway", "--upload-timeout-seconds"),
        ("controller", "--orphan-grace-seconds"),
    ] {
        let output = cluster
            .binary
            .command()
            .args([command, flag, "60", "--meta", &meta])
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("SHARDLET_CLUSTER_SECRET", &cluster.secret)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success()
                && stderr.contains("was removed")
                && stderr.contains("upload-deadline-seconds"),
            "{command} {flag}: {} {stderr}",
            output.status
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_slower_than_the_deadline_is_refused_and_leaves_nothing_while_scrub_keeps_a_live_one(
) {
    let cluster = Cluster::start(&shardlet_binary!(), 8).await;
    cluster.set_upload_deadline(LONG_DEADLINE_SECONDS);
    // The scrub passes as often as it can, so it lists the live upload's fragments
    // before their record exists (an orphan finding), and would delete them if its
    // grace ignored the deadline.
    let scrub = [
        "--scrub-interval-seconds",
        "0.2",
        "--scrub-bytes-per-second",
        "1000000000",
    ]
    .map(String::from);
    let controller = cluster.start_controller("controller", &scrub).await;
    wait_until_enforced(&cluster, &controller, LONG_DEADLINE_SECONDS).await;
    let s3 = S3Client::new(cluster.access.clone());
    s3.create_bucket("deadline").await.unwrap();

    // 1. A live upload, held open until the scrub has seen its fragments unreferenced.
    let live = pattern_bytes(6 * MIB, 1);
    let upload = start_put(&s3, "/deadline/live", live.len());
    let (first, last) = live.split_at(live.len() - MIB / 2);
    for chunk in first.chunks(MIB / 2) {
        upload.body.send(Ok(chunk.to_vec())).await.unwrap();
    }
    let orphans_before = orphan_findings(&controller).await;
    wait_until(
        DEADLINE,
        "the scrub saw fragments of the live upload before their record",
        || async { orphan_findings(&controller).await > orphans_before },
    )
    .await;
    let passes_before =
        controller_metric(&controller, "shardlet_controller_scrub_passes_total").await;
    wait_until(DEADLINE, "two more scrub passes ran meanwhile", || async {
        controller_metric(&controller, "shardlet_controller_scrub_passes_total").await
            >= passes_before + 2.0
    })
    .await;
    upload.body.send(Ok(last.to_vec())).await.unwrap();
    drop(upload.body);
    let answer = upload.answer.await.unwrap().unwrap();
    let status = answer.status();
    assert_eq!(status, 200, "{}", answer.text().await.unwrap_or_default());
    assert!(
        s3.get_object("deadline", "live", None).await.unwrap() == live,
        "the live upload reads back whole: the scrub kept its fragments"
    );

    // 2. The deadline is lowered; a client trickling its body runs into it.
    cluster.set_upload_deadline(SHORT_DEADLINE_SECONDS);
    wait_until_enforced(&cluster, &controller, SHORT_DEADLINE_SECONDS).await;
    let slow = start_put(&s3, "/deadline/slow", 64 * MIB);
    let sender = slow.body.clone();
    let trickle = tokio::spawn(async move {
        let chunk = vec![7u8; 256 * 1024];
        // A chunk every 100 ms, never idle for long, never done: only the deadline
        // ends it (the send fails once the gateway has answered and closed).
        while sender.send(Ok(chunk.clone())).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let slow_id = wait_until(DEADLINE, "the slow upload's intent exists", || async {
        intents_for(&cluster, "slow").await.into_iter().next()
    })
    .await;
    wait_until(DEADLINE, "the slow upload wrote fragments", || async {
        fragments_of(&cluster, &slow_id).await > 0
    })
    .await;
    let answer = tokio::time::timeout(DEADLINE, slow.answer)
        .await
        .expect("the slow upload is answered")
        .unwrap()
        .expect("the gateway answers, not just closes");
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("<Code>RequestTimeout</Code>")
            && body.contains(&format!(
                "upload deadline of {SHORT_DEADLINE_SECONDS} seconds"
            )),
        "{body}"
    );
    drop(slow.body);
    trickle.abort();
    assert!(
        gateway_metric(&cluster, "shardlet_gateway_upload_deadline_refusals_total").await >= 1.0
    );
    wait_until(
        DEADLINE,
        "the refused upload left no intent and no fragment behind",
        || async {
            intents_for(&cluster, "slow").await.is_empty()
                && fragments_of(&cluster, &slow_id).await == 0
        },
    )
    .await;
    let listed = s3.list_keys("deadline").await.unwrap();
    assert_eq!(listed, vec!["live".to_string()]);
    assert!(s3.get_object("deadline", "live", None).await.unwrap() == live);
    println!(
        "orphan findings of the scrub during the test: {}",
        orphan_findings(&controller).await
    );
}

async fn orphan_findings(controller: &shardlet_testkit::ServiceProcess) -> f64 {
    let text = controller_get(controller, "/metrics").await;
    text.lines()
        .find(|line| line.starts_with("shardlet_controller_scrub_findings_total{kind=\"orphan\"}"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// A document body (here DeleteObjects' XML, which s3s reads whole before the handler
/// runs) trickled forever is cut at the deadline too, not held open: without the
/// gateway's body timer the request never ends and holds its connection (a busy one is
/// never evicted) for as long as the client likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_document_body_is_cut_at_the_deadline_with_request_timeout() {
    let cluster = Cluster::start(&shardlet_binary!(), 4).await;
    cluster.set_upload_deadline(SHORT_DEADLINE_SECONDS);
    wait_until(
        DEADLINE,
        "the gateway enforces the short deadline",
        || async {
            gateway_metric(&cluster, "shardlet_gateway_upload_deadline_seconds").await
                == SHORT_DEADLINE_SECONDS as f64
        },
    )
    .await;
    let s3 = S3Client::new(cluster.access.clone());
    s3.create_bucket("documents").await.unwrap();

    let (body, receiver) = tokio::sync::mpsc::channel::<BodyChunk>(4);
    let mut receiver = receiver;
    let stream = futures::stream::poll_fn(move |context| receiver.poll_recv(context));
    let declared = (2 * MIB).to_string();
    let request = s3
        .signed(
            reqwest::Method::POST,
            "/documents?delete",
            &[("content-length", declared.as_str())],
        )
        .body(reqwest::Body::wrap_stream(stream));
    let answer = tokio::spawn(request.send());
    let trickle = tokio::spawn(async move {
        body.send(Ok(b"<Delete>".to_vec())).await.ok();
        // A byte every 100 ms: never idle, never done.
        while body.send(Ok(b" ".to_vec())).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let answer = tokio::time::timeout(DEADLINE, answer)
        .await
        .expect("the trickled request is answered")
        .unwrap()
        .expect("the gateway answers, not just closes");
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    trickle.abort();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("<Code>RequestTimeout</Code>")
            && body.contains(&format!(
                "did not arrive within {SHORT_DEADLINE_SECONDS} seconds"
            )),
        "{body}"
    );
    let cut = metric_total(
        &cluster.gateway_metrics().await,
        "shardlet_gateway_request_body_timeouts_total{limit=\"total\"}",
    );
    assert_eq!(cut, Some(1.0));
    // The gateway serves on.
    s3.put_object("documents", "after", b"still here".to_vec(), None)
        .await
        .unwrap();
}
