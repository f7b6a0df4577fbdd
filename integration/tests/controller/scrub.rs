//! The scrub: bytes flipped in fragment files on disk are found by reading back and
//! checksumming, the fragments are rebuilt elsewhere, and the rotten copies deleted.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};

use shardlet_core::NodeId;

use shardlet_testkit::controller::controller_get;
use shardlet_testkit::records::{redundancy_problems, shardlets};
use shardlet_testkit::{shardlet_binary, wait_until, Cluster, S3Client};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_finds_flipped_bytes_and_repairs_them() {
    let cluster = Cluster::start(&shardlet_binary!(), 12).await;
    let flags = flags(&[
        ("--scrub-interval-seconds", "0.5"),
        ("--scrub-bytes-per-second", "1000000000"),
    ]);
    let controller = cluster.start_controller("controller", &flags).await;
    let s3 = S3Client::new(cluster.access.clone());
    s3.create_bucket(BUCKET).await.unwrap();
    let mut objects = write_objects(&s3, "replicated", 10, 300_000, None).await;
    objects.extend(write_objects(&s3, "coded", 10, 600_000, Some("STANDARD_IA")).await);
    let meta = cluster.meta_client();

    // Rot one fragment of each of six shardlets: flip a byte in the middle of its file.
    // (Fragments of at most 64 KiB live in the node's RocksDB, not in files; their rot
    // is covered by the node's unit tests. Most fragments here are larger.)
    let records = shardlets(&meta).await;
    let mut rotten = BTreeSet::new();
    for record in &records {
        if rotten.len() == 6 {
            break;
        }
        let location = &record.fragments[0];
        let node = cluster
            .nodes
            .iter()
            .find(|n| NodeId(n.options.node_id) == location.node)
            .unwrap();
        let id = record.fragment_id(location);
        let path = node.fragment_path(&id.to_string());
        if !path.is_file() {
            continue;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let middle = file.metadata().unwrap().len() / 2;
        let mut byte = [0u8; 1];
        file.seek(SeekFrom::Start(middle)).unwrap();
        file.read_exact(&mut byte).unwrap();
        file.seek(SeekFrom::Start(middle)).unwrap();
        file.write_all(&[byte[0] ^ 0x5a]).unwrap();
        file.sync_all().unwrap();
        rotten.insert((location.node, id));
    }
    assert_eq!(
        rotten.len(),
        6,
        "six shardlets have a fragment stored as a file"
    );

    wait_until(
        REPAIR_DEADLINE,
        "no record refers to a rotten fragment",
        || async {
            let records = shardlets(&meta).await;
            !records.iter().any(|record| {
                record
                    .fragments
                    .iter()
                    .any(|f| rotten.contains(&(f.node, record.fragment_id(f))))
            }) && redundancy_problems(&records, &[]).is_empty()
        },
    )
    .await;
    assert!(
        shardlet_testkit::metric_total(
            &controller_get(&controller, "/metrics").await,
            "shardlet_controller_scrub_findings_total"
        )
        .unwrap_or(0.0)
            >= rotten.len() as f64
    );
    wait_until(
        REPAIR_DEADLINE,
        "the rotten copies are deleted from disk",
        || async {
            let on_disk = cluster.fragments_stored().await;
            !rotten.iter().any(|(node, id)| {
                on_disk
                    .get(node)
                    .is_some_and(|fragments| fragments.iter().any(|(stored, _)| stored == id))
            })
        },
    )
    .await;
    assert_eq!(unreadable(&s3, &objects).await, Vec::<String>::new());
}
