//! One timed phase of a load benchmark: `concurrency` tasks repeat an operation until a
//! deadline passes or an operation count was started; latencies, bytes moved and,
//! where the bench can measure it, the CPU the system under test spent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Phase {
    pub operations: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub latencies_ms: Vec<f64>,
    /// CPU seconds the system under test spent during the phase, when the bench can
    /// read them: less sensitive to other work on the shared cores than throughput is.
    pub cpu_seconds: Option<f64>,
}

impl Phase {
    pub fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64()
    }

    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }

    pub fn latency_ms(&self, quantile: f64) -> f64 {
        quantile_of(&self.latencies_ms, quantile)
    }
}

/// The value at `quantile` (0..=1) of `values`, NaN for none.
pub fn quantile_of(values: &[f64], quantile: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * quantile).round() as usize]
}

/// Runs `concurrency` tasks that each repeat `operation` (which returns the bytes it
/// moved) until `deadline` passes or `operations_max` were started; `cpu_seconds` is read
/// before and after. Any failed operation aborts the run with its error after the phase.
pub async fn run_phase<F, Fut>(
    name: &str,
    concurrency: usize,
    operations_max: u64,
    deadline: Duration,
    cpu_seconds: fn() -> Option<f64>,
    operation: F,
) -> Phase
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<u64, String>> + Send,
{
    let operation = Arc::new(operation);
    let started = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_seconds();
    let begin = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (operation, started) = (operation.clone(), started.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies_ms = Vec::new();
            let mut bytes = 0;
            loop {
                let number = started.fetch_add(1, Ordering::Relaxed);
                if number >= operations_max || begin.elapsed() >= deadline {
                    return Ok((latencies_ms, bytes));
                }
                let one = Instant::now();
                bytes += operation(number).await?;
                latencies_ms.push(one.elapsed().as_secs_f64() * 1e3);
            }
        }));
    }
    let mut latencies_ms = Vec::new();
    let mut bytes = 0;
    for task in tasks {
        let result: Result<(Vec<f64>, u64), String> = task.await.expect("a load task panicked");
        match result {
            Ok((latencies, moved)) => {
                latencies_ms.extend(latencies);
                bytes += moved;
            }
            Err(error) => panic!("{name}: a request failed, so no result is reported: {error}"),
        }
    }
    Phase {
        operations: latencies_ms.len() as u64,
        bytes,
        elapsed: begin.elapsed(),
        latencies_ms,
        cpu_seconds: cpu_before
            .zip(cpu_seconds())
            .map(|(before, after)| after - before),
    }
}
