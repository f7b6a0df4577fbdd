//! The workload that runs through everything the scenario does: a few clients in the
//! test process, each writing, overwriting and reading its own keys (objects of mixed
//! sizes) through both gateways, preferring one and failing over to the other.
//!
//! Each client's writes to a key are sequential, so "the last acknowledged version" is
//! well defined: the ledger keeps, per key, the sha256 of the last acknowledged write
//! and of every attempt made after it whose acknowledgement never came (it may or may
//! not have landed: a gateway killed after its commit, a timeout). A read, during the
//! run or at the end, must give one of those; anything else is a lost or corrupted
//! acknowledged write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use shardlet_testkit::{S3Access, S3Client};

pub const BUCKET: &str = "many-hosts";
const CLIENTS: u64 = 3;
const KEYS_PER_CLIENT: usize = 12;
/// Object sizes drawn from: small (inline-ish), medium and up to 1 MiB.
const SIZES: [usize; 5] = [300, 4 << 10, 64 << 10, 300 << 10, 1 << 20];
/// Pacing between a client's operations: the machine has 2 cores shared by every
/// process of the cluster; this is load shaping, not synchronisation.
const PAUSE: Duration = Duration::from_millis(40);
/// Share of operations that are writes (the rest read back a written key).
const WRITE_SHARE: f64 = 0.6;

#[derive(Default)]
struct KeyHistory {
    acked: Option<String>,
    /// Attempts after the last acknowledged write whose outcome is unknown.
    unacked: Vec<String>,
}

impl KeyHistory {
    fn allows(&self, sha: &str) -> bool {
        self.acked.as_deref() == Some(sha) || self.unacked.iter().any(|s| s == sha)
    }
}

/// What the clients did, shared with the scenario while they run.
#[derive(Default)]
pub struct Stats {
    pub writes_acked: AtomicU64,
    pub writes_failed: AtomicU64,
    pub reads_ok: AtomicU64,
    pub reads_failed: AtomicU64,
    /// Operations that succeeded on the gateway the client did not prefer.
    pub failovers: AtomicU64,
    /// Acknowledged writes per gateway (index).
    pub acked_by_gateway: [AtomicU64; 2],
}

pub struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ledger: Arc<Mutex<BTreeMap<String, KeyHistory>>>,
    /// Reads during the run that gave bytes no write of the key had.
    problems: Arc<Mutex<Vec<String>>>,
    pub stats: Arc<Stats>,
}

/// One S3 client per gateway.
pub fn gateway_clients(access: &S3Access, endpoints: &[String]) -> Vec<S3Client> {
    endpoints
        .iter()
        .map(|endpoint| {
            S3Client::new(S3Access {
                endpoint: endpoint.clone(),
                ..access.clone()
            })
        })
        .collect()
}

impl Workload {
    pub fn start(clients: Vec<S3Client>, seed: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Mutex::new(BTreeMap::new()));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let stats = Arc::new(Stats::default());
        let tasks = (0..CLIENTS)
            .map(|client| {
                let context = ClientContext {
                    client,
                    gateways: clients.clone(),
                    rng: StdRng::seed_from_u64(seed.wrapping_add(client)),
                    stop: stop.clone(),
                    ledger: ledger.clone(),
                    problems: problems.clone(),
                    stats: stats.clone(),
                };
                tokio::spawn(context.run())
            })
            .collect();
        Self {
            stop,
            tasks,
            ledger,
            problems,
            stats,
        }
    }

    pub fn writes_acked(&self) -> u64 {
        self.stats.writes_acked.load(Ordering::SeqCst)
    }

    pub fn acked_by_gateway(&self, gateway: usize) -> u64 {
        self.stats.acked_by_gateway[gateway].load(Ordering::SeqCst)
    }

    /// Stops the clients (each finishes its operation in flight).
    pub async fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks.drain(..) {
            task.await.unwrap();
        }
    }

    pub fn summary(&self) -> String {
        let stats = &self.stats;
        format!(
            "{} writes acknowledged ({} via gateway-1, {} via gateway-2), {} failed; {} reads verified, {} failed; {} fail-overs",
            stats.writes_acked.load(Ordering::SeqCst),
            stats.acked_by_gateway[0].load(Ordering::SeqCst),
            stats.acked_by_gateway[1].load(Ordering::SeqCst),
            stats.writes_failed.load(Ordering::SeqCst),
            stats.reads_ok.load(Ordering::SeqCst),
            stats.reads_failed.load(Ordering::SeqCst),
            stats.failovers.load(Ordering::SeqCst),
        )
    }

    /// After the run: every key read through `client` gives its last acknowledged
    /// version (or an unacknowledged later attempt); returns what is wrong, and how many
    /// keys were checked and how many ended on an unacknowledged attempt.
    pub async fn verify(&self, client: &S3Client) -> (Vec<String>, usize, usize) {
        let mut problems = self.problems.lock().unwrap().clone();
        let histories: Vec<(String, Option<String>, Vec<String>)> = self
            .ledger
            .lock()
            .unwrap()
            .iter()
            .map(|(key, history)| (key.clone(), history.acked.clone(), history.unacked.clone()))
            .collect();
        let mut on_unacked = 0;
        for (key, acked, unacked) in &histories {
            match client.get_object(BUCKET, key, None).await {
                Ok(body) => {
                    let sha = hex::encode(Sha256::digest(&body));
                    if acked.as_deref() == Some(sha.as_str()) {
                        continue;
                    }
                    if unacked.contains(&sha) {
                        on_unacked += 1;
                    } else {
                        problems.push(format!(
                            "{key}: read sha256 {sha}, last acknowledged {acked:?}, unacknowledged after it {unacked:?}"
                        ));
                    }
                }
                Err(error) if acked.is_none() && error.status() == Some(404) => {}
                Err(error) => problems.push(format!("{key}: {error}")),
            }
        }
        (problems, histories.len(), on_unacked)
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct ClientContext {
    client: u64,
    gateways: Vec<S3Client>,
    rng: StdRng,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<BTreeMap<String, KeyHistory>>>,
    problems: Arc<Mutex<Vec<String>>>,
    stats: Arc<Stats>,
}

impl ClientContext {
    async fn run(mut self) {
        let preferred = usize::try_from(self.client).unwrap() % self.gateways.len();
        while !self.stop.load(Ordering::SeqCst) {
            let key = format!(
                "client-{}/key-{}",
                self.client,
                self.rng.random_range(0..KEYS_PER_CLIENT)
            );
            let written = self
                .ledger
                .lock()
                .unwrap()
                .get(&key)
                .and_then(|h| h.acked.clone());
            if written.is_some() && !self.rng.random_bool(WRITE_SHARE) {
                self.read(&key, preferred).await;
            } else {
                self.write(&key, preferred).await;
            }
            tokio::time::sleep(PAUSE).await;
        }
    }

    async fn write(&mut self, key: &str, preferred: usize) {
        let size = SIZES[self.rng.random_range(0..SIZES.len())];
        let mut body = vec![0u8; size];
        self.rng.fill_bytes(&mut body);
        let sha = hex::encode(Sha256::digest(&body));
        for attempt in 0..self.gateways.len() {
            let gateway = (preferred + attempt) % self.gateways.len();
            // Recorded before it is sent: from now on it may land.
            self.ledger
                .lock()
                .unwrap()
                .entry(key.to_string())
                .or_default()
                .unacked
                .push(sha.clone());
            match self.gateways[gateway]
                .put_object(BUCKET, key, body.clone(), None)
                .await
            {
                Ok(_) => {
                    let mut ledger = self.ledger.lock().unwrap();
                    let history = ledger.entry(key.to_string()).or_default();
                    history.acked = Some(sha);
                    history.unacked.clear();
                    self.stats.writes_acked.fetch_add(1, Ordering::SeqCst);
                    self.stats.acked_by_gateway[gateway].fetch_add(1, Ordering::SeqCst);
                    if attempt > 0 {
                        self.stats.failovers.fetch_add(1, Ordering::SeqCst);
                    }
                    return;
                }
                Err(_) => {
                    self.stats.writes_failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    async fn read(&mut self, key: &str, preferred: usize) {
        for attempt in 0..self.gateways.len() {
            let gateway = (preferred + attempt) % self.gateways.len();
            match self.gateways[gateway].get_object(BUCKET, key, None).await {
                Ok(body) => {
                    let sha = hex::encode(Sha256::digest(&body));
                    let ledger = self.ledger.lock().unwrap();
                    let allowed = ledger.get(key).is_some_and(|history| history.allows(&sha));
                    if !allowed {
                        self.problems.lock().unwrap().push(format!(
                            "{key}: a read during the run gave sha256 {sha}, which no write of it since the last acknowledged one had"
                        ));
                    }
                    self.stats.reads_ok.fetch_add(1, Ordering::SeqCst);
                    if attempt > 0 {
                        self.stats.failovers.fetch_add(1, Ordering::SeqCst);
                    }
                    return;
                }
                Err(_) => {
                    self.stats.reads_failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }
}
