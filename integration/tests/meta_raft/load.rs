//! A stream of writes from several concurrent writers, remembering which were
//! acknowledged, and a check that every acknowledged write is on a member.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardlet_meta::{ClientError, MetaClient, ReadConsistency};
use tokio::task::JoinHandle;

use shardlet_testkit::wait_until;

use super::members::client_of;

pub const LOAD_PREFIX: &str = "load/";

pub struct Writers {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<BTreeMap<String, String>>>,
    acknowledged_count: Arc<AtomicUsize>,
    ambiguous_count: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Writers {
    pub fn start(client: MetaClient, writers: usize) -> Writers {
        let client = Arc::new(client);
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(BTreeMap::new()));
        let acknowledged_count = Arc::new(AtomicUsize::new(0));
        let ambiguous_count = Arc::new(AtomicUsize::new(0));
        let tasks = (0..writers)
            .map(|writer| {
                let client = client.clone();
                let stop = stop.clone();
                let acknowledged = acknowledged.clone();
                let acknowledged_count = acknowledged_count.clone();
                let ambiguous_count = ambiguous_count.clone();
                tokio::spawn(async move {
                    let mut sequence = 0_u64;
                    while !stop.load(Ordering::Relaxed) {
                        sequence += 1;
                        let key = format!("{LOAD_PREFIX}{writer:02}/{sequence:08}");
                        let value = format!("value-{writer}-{sequence}");
                        match client.put(key.as_str(), value.as_str()).await {
                            Ok(_) => {
                                acknowledged.lock().unwrap().insert(key, value);
                                acknowledged_count.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(ClientError::Ambiguous(_)) => {
                                ambiguous_count.fetch_add(1, Ordering::Relaxed);
                            }
                            // Refused everywhere within the retry budget (e.g. mid
                            // election): not applied, so simply carry on.
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                })
            })
            .collect();
        Writers {
            stop,
            acknowledged,
            acknowledged_count,
            ambiguous_count,
            tasks,
        }
    }

    pub fn acknowledged_count(&self) -> usize {
        self.acknowledged_count.load(Ordering::Relaxed)
    }

    /// Waits until at least `count` writes were acknowledged in total.
    pub async fn wait_for_acknowledged(&self, count: usize) {
        wait_until(
            Duration::from_secs(60),
            &format!("{count} acknowledged writes"),
            || async { (self.acknowledged_count() >= count).then_some(()) },
        )
        .await;
    }

    /// Stops the writers; returns every acknowledged write and how many were ambiguous.
    pub async fn stop(self) -> (BTreeMap<String, String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let acknowledged = std::mem::take(&mut *self.acknowledged.lock().unwrap());
        (acknowledged, self.ambiguous_count.load(Ordering::Relaxed))
    }
}

/// Every key under `prefix` on the member at `address`, read from its own replica.
pub async fn replica_contents(address: &str, prefix: &str) -> Option<BTreeMap<String, String>> {
    let client = client_of(address);
    let mut contents = BTreeMap::new();
    let mut start_after = None;
    loop {
        let page = client
            .scan(prefix, start_after, 5_000, ReadConsistency::Stale)
            .await
            .ok()?;
        for (key, entry) in page.entries {
            contents.insert(
                String::from_utf8(key.0).unwrap(),
                String::from_utf8(entry.value.0).unwrap(),
            );
        }
        match page.next_start_after {
            Some(next) => start_after = Some(next),
            None => return Some(contents),
        }
    }
}

/// Waits until the member at `address` holds every acknowledged write with its value.
pub async fn assert_all_present(address: &str, acknowledged: &BTreeMap<String, String>) {
    wait_until(
        Duration::from_secs(60),
        &format!(
            "all {} acknowledged writes on {address}",
            acknowledged.len()
        ),
        || async {
            let contents = replica_contents(address, LOAD_PREFIX).await?;
            acknowledged
                .iter()
                .all(|(key, value)| contents.get(key) == Some(value))
                .then_some(())
        },
    )
    .await;
}
