//! Heat-driven transitions: objects read often become replicated, objects nobody reads
//! become erasure coded and take less disk.

use std::collections::BTreeSet;

use shardlet_core::ShardletId;

use shardlet_testkit::controller::controller_get;
use shardlet_testkit::records::{redundancy_problems, shardlets};
use shardlet_testkit::{shardlet_binary, wait_until, Cluster, S3Client};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_objects_become_replicated_and_cold_ones_erasure_coded() {
    let cluster = Cluster::start(&shardlet_binary!(), 12).await;
    let s3 = S3Client::new(cluster.access.clone());
    s3.create_bucket(BUCKET).await.unwrap();
    // Hot ones start erasure coded, cold ones replicated: each must change.
    let hot = write_objects(&s3, "hot", 4, 200_000, Some("STANDARD_IA")).await;
    let cold = write_objects(&s3, "cold", 12, 500_000, None).await;
    let meta = cluster.meta_client();
    let by_key = shardlets_by_key(&meta).await;
    let shardlets_of = |prefix: &str| -> BTreeSet<ShardletId> {
        by_key
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect()
    };
    let (hot_ids, cold_ids) = (shardlets_of("hot/"), shardlets_of("cold/"));
    let cold_bytes_stored = || async {
        cluster
            .fragments_stored()
            .await
            .values()
            .flatten()
            .filter(|(id, _)| cold_ids.contains(&id.shardlet))
            .map(|(_, size)| size)
            .sum::<u64>()
    };
    let cold_bytes_before = cold_bytes_stored().await;

    // Reads first, then the controller: the hot objects are hot when it first looks.
    for _ in 0..30 {
        for object in &hot {
            assert_eq!(
                s3.get_object(BUCKET, &object.key, None).await.unwrap(),
                object.bytes
            );
        }
    }
    wait_until(
        REPAIR_DEADLINE,
        "the gateway reported the reads",
        || async {
            shardlets(&meta)
                .await
                .iter()
                .filter(|r| hot_ids.contains(&r.id))
                .all(|r| r.access.reads_total >= 30)
        },
    )
    .await;
    let flags = flags(&[
        ("--transition-interval-seconds", "0.5"),
        ("--change-dwell-seconds", "0"),
        ("--heat-half-life-seconds", "3600"),
    ]);
    let controller = cluster.start_controller("controller", &flags).await;

    wait_until(
        REPAIR_DEADLINE,
        "hot shardlets replicated, cold ones erasure coded",
        || async {
            let records = shardlets(&meta).await;
            records
                .iter()
                .filter(|r| hot_ids.contains(&r.id))
                .all(|r| is_replicated(r.scheme))
                && records
                    .iter()
                    .filter(|r| cold_ids.contains(&r.id))
                    .all(|r| !is_replicated(r.scheme))
        },
    )
    .await;
    let records = shardlets(&meta).await;
    assert!(
        redundancy_problems(&records, &[]).is_empty(),
        "{:?}",
        redundancy_problems(&records, &[])
    );
    // 3 copies → RS(6,3): 3× → 1.5× plus per-file headers.
    wait_until(
        REPAIR_DEADLINE,
        "the old replicas of cold objects are deleted",
        || async { (cold_bytes_stored().await as f64) < 0.6 * cold_bytes_before as f64 },
    )
    .await;
    // Visible in /metrics, both ways (a commit whose confirmation timed out on a
    // loaded machine is not counted, so the totals may be below the shardlet count).
    let metrics = controller_get(&controller, "/metrics").await;
    for kind in ["replicated", "erasure"] {
        // Present at 0 from the start: a transition shows as a value above it.
        let prefix =
            format!("shardlet_controller_transitions_total{{outcome=\"done\",to=\"{kind}\"}} ");
        let done = metrics
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(done > 0.0, "no {kind} transition in:\n{metrics}");
    }
    let mut objects = hot;
    objects.extend(cold);
    assert_eq!(unreadable(&s3, &objects).await, Vec::<String>::new());
}
