//! The lease and its fencing token against a real metadata member, and the daemon's
//! refusal of bad flags and files.

use std::sync::Arc;
use std::time::Duration;

use shardlet_controller::service::lease::Lease;
use shardlet_controller::service::metrics::Metrics;
use shardlet_meta::{Batch, BatchOutcome, MetaClient};

use shardlet_testkit::{shardlet_binary, wait_until, ServiceProcess};

async fn meta_member() -> (ServiceProcess, tempfile::TempDir, String) {
    let root = tempfile::tempdir().unwrap();
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let data = root.path().join("meta").display().to_string();
    let meta = ServiceProcess::start(
        &shardlet_binary!(),
        "meta",
        ["meta", "--member-id", "1", "--bootstrap", "--data", &data]
            .map(String::from)
            .to_vec(),
        &secret,
        root.path(),
    )
    .await;
    (meta, root, secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_lost_its_lease_can_no_longer_commit() {
    let (meta_process, _root, secret) = meta_member().await;
    let meta = MetaClient::new(
        vec![meta_process.address.to_string()],
        shardlet_testkit::meta_member::meta_client_key(&secret, "controller"),
        Default::default(),
    )
    .unwrap();
    let metrics = Arc::new(Metrics::new().unwrap());
    let first = Lease::new("first".into(), Duration::from_secs(1));
    let second = Lease::new("second".into(), Duration::from_secs(1));

    assert!(
        first.try_acquire(&meta, &metrics).await,
        "a free lease is taken"
    );
    assert!(
        !second.try_acquire(&meta, &metrics).await,
        "a held lease is not"
    );
    let stale_fence = first.fence_condition().unwrap();
    // The first holder stops renewing (paused, partitioned); the second takes over
    // once the lease expired.
    wait_until(
        Duration::from_secs(30),
        "the second controller takes the lease",
        || async { second.try_acquire(&meta, &metrics).await },
    )
    .await;
    assert_eq!(
        second.fence().unwrap().term,
        first.fence().map_or(1, |f| f.term) + 1
    );
    assert!(
        !first.is_active(),
        "the first stopped acting before its lease expired"
    );

    // A commit of the old holder, fenced by its token, is refused as a whole.
    let stale = Batch::of_put("s/fenced-write-test", "x").when(stale_fence);
    assert!(matches!(
        meta.batch(stale).await.unwrap(),
        BatchOutcome::ConditionFailed { .. }
    ));
    let current = Batch::of_put("s/fenced-write-test", "y").when(second.fence_condition().unwrap());
    assert!(matches!(
        meta.batch(current).await.unwrap(),
        BatchOutcome::Applied { .. }
    ));
    // The old holder cannot take it back while the new one renews.
    assert!(second.try_acquire(&meta, &metrics).await);
    assert!(!first.try_acquire(&meta, &metrics).await);
}

#[test]
fn the_controller_refuses_bad_flags_with_a_reason() {
    let run = |arguments: &[&str]| {
        let output = shardlet_binary!()
            .command()
            .arg("controller")
            .args(["--meta", "127.0.0.1:1"])
            .args(arguments)
            .env("SHARDLET_CLUSTER_SECRET", "a-test-secret-long-enough")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{arguments:?} was accepted");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    // The topology file became an import into the layout in meta-raft.
    let removed = run(&["--topology", "topology.toml"]);
    assert!(
        removed.contains("--topology was removed") && removed.contains("layout import"),
        "{removed}"
    );
    assert!(run(&["--down-grace-seconds=-1"]).contains("--down-grace-seconds"));
    assert!(run(&["--io-budget-share", "1.5"]).contains("--io-budget-share"));
    assert!(run(&["--repair-per-node-max", "0"]).contains("at least 1"));
    assert!(run(&["--suspect-after-seconds", "900"]).contains("must not exceed"));
    assert!(run(&["--lease-seconds", "0.1"]).contains("--lease-seconds"));
    assert!(run(&["--layout-poll-seconds", "0"]).contains("--layout-poll-seconds"));
    assert!(run(&["--layout-poll-seconds", "3600"]).contains("--layout-poll-seconds"));
}
