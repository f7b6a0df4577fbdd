//! Records a concurrent history of reads, writes and compare-and-sets on a few keys while
//! the leader is killed and restarted, and checks it with the linearizability checker.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use shardlet_meta::command::Condition;
use shardlet_meta::{Batch, BatchOutcome, ClientError, MetaClient, ReadConsistency};

use super::linearizability::{check_register, describe, Kind, Operation, Outcome, Verdict};
use super::members::{addresses, client, three_member_cluster, wait_for_leader};

const KEYS: usize = 3;
const CLIENTS: usize = 6;

fn key_name(key: usize) -> String {
    format!("register/{key}")
}

fn decode(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().unwrap())
}

struct Recorder {
    start: Instant,
    histories: Mutex<Vec<Vec<Operation>>>,
    count: AtomicUsize,
}

impl Recorder {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap()
    }

    fn record(&self, key: usize, operation: Operation) {
        self.histories.lock().unwrap()[key].push(operation);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs one random operation; `None` when the operation was certainly not applied and
/// so is left out of the history (refused everywhere, see `MetaClient`).
async fn one_operation(
    client: &MetaClient,
    recorder: &Recorder,
    random: &mut rand::rngs::StdRng,
    client_index: usize,
    value: u64,
    last_seen: &mut [Option<u64>],
) -> Option<(usize, Operation)> {
    let key = random.random_range(0..KEYS);
    let name = key_name(key);
    let invoked_at = recorder.now();
    let (kind, result) = match random.random_range(0..3) {
        0 => {
            let result = client
                .get(name.as_str(), ReadConsistency::Linearizable)
                .await;
            let outcome = result.map(|entry| {
                let seen = entry.map(|entry| decode(entry.value.as_slice()));
                last_seen[key] = seen;
                Outcome::Read(seen)
            });
            (Kind::Read, outcome)
        }
        1 => {
            let result = client
                .put(name.as_str(), value.to_be_bytes().to_vec())
                .await;
            (Kind::Write(value), result.map(|_| Outcome::Written))
        }
        _ => {
            let expected = last_seen[key];
            let batch = Batch::of_put(name.as_str(), value.to_be_bytes().to_vec()).when(
                Condition::ValueEquals {
                    key: name.as_str().into(),
                    value: expected.map(|expected| expected.to_be_bytes().to_vec().into()),
                },
            );
            let result = client
                .batch(batch)
                .await
                .map(|outcome| Outcome::CompareAndSet {
                    succeeded: matches!(outcome, BatchOutcome::Applied { .. }),
                });
            (
                Kind::CompareAndSet {
                    expected,
                    new: value,
                },
                result,
            )
        }
    };
    let (returned_at, outcome) = match result {
        Ok(outcome) => (Some(recorder.now()), outcome),
        Err(ClientError::Ambiguous(_)) => (None, Outcome::Unknown),
        // A read that failed tells nothing; a write refused everywhere was not applied.
        Err(_) => return None,
    };
    Some((
        key,
        Operation {
            client: client_index,
            invoked_at,
            returned_at,
            kind,
            outcome,
        },
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_writes_and_compare_and_sets_are_linearizable_across_a_leader_kill() {
    let seed: u64 = rand::random();
    println!("linearizability history seed: {seed}");
    let root = tempfile::tempdir().unwrap();
    let mut members = three_member_cluster(root.path(), &[]).await;
    let voters = BTreeSet::from([1, 2, 3]);
    let recorder = Arc::new(Recorder {
        start: Instant::now(),
        histories: Mutex::new(vec![Vec::new(); KEYS]),
        count: AtomicUsize::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client_index| {
            let client = client(&addresses(&members));
            let recorder = recorder.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut random =
                    rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(client_index as u64));
                let mut last_seen = vec![None; KEYS];
                let mut sequence = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    sequence += 1;
                    let value = ((client_index as u64) << 32) | sequence;
                    if let Some((key, operation)) = one_operation(
                        &client,
                        &recorder,
                        &mut random,
                        client_index,
                        value,
                        &mut last_seen,
                    )
                    .await
                    {
                        recorder.record(key, operation);
                    }
                }
            })
        })
        .collect();
    let wait_for_operations = |count: usize| {
        let recorder = recorder.clone();
        shardlet_testkit::wait_until(
            std::time::Duration::from_secs(60),
            "operations recorded",
            move || {
                let recorder = recorder.clone();
                async move { (recorder.count.load(Ordering::Relaxed) >= count).then_some(()) }
            },
        )
    };

    wait_for_operations(300).await;
    let leader = wait_for_leader(&members.iter().collect::<Vec<_>>(), &voters).await;
    let killed = members
        .iter()
        .position(|member| member.member_id == leader)
        .unwrap();
    members[killed].kill();
    wait_for_operations(recorder.count.load(Ordering::Relaxed) + 300).await;
    members[killed].restart().await;
    wait_for_operations(recorder.count.load(Ordering::Relaxed) + 300).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }

    let histories = recorder.histories.lock().unwrap().clone();
    for (key, history) in histories.iter().enumerate() {
        assert_eq!(
            check_register(history),
            Verdict::Linearizable,
            "history of {} (seed {seed}, {} operations) is not linearizable:\n{}",
            key_name(key),
            history.len(),
            describe(history)
        );
    }
}
