//! `/health`: real measurements of this machine, sampled in the background from `/proc`
//! (CPU from `/proc/stat`, memory from `/proc/meminfo`, disk activity from
//! `/proc/diskstats` for the data directory's block device) plus `statvfs` for capacity.
//!
//! Rates and utilisations are over the last sampling interval. When the data directory
//! is not on a block device listed in `/proc/diskstats` (overlayfs, tmpfs: common in
//! containers), disk rates fall back to the node's own byte counters and the write
//! latency to its measured fsync latency. `smart` is always null: SMART counters are
//! not exposed to VMs and containers.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use shardlet_core::health_report::{
    DiskReport, ErrorReport, FragmentReport, HealthReport, WritesRefused,
};

use crate::config::NodeConfig;
use crate::metrics::NodeMetrics;
use crate::store::FragmentStore;

/// Cumulative counters read at one instant; rates come from two of these.
#[derive(Debug, Clone, Copy, Default)]
struct RawSample {
    cpu_busy_ticks: u64,
    cpu_total_ticks: u64,
    disk: Option<DiskCounters>,
    own_read_bytes: u64,
    own_written_bytes: u64,
    own_fsync_seconds: f64,
    own_fsync_count: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct DiskCounters {
    reads_completed: u64,
    sectors_read: u64,
    read_milliseconds: u64,
    writes_completed: u64,
    sectors_written: u64,
    write_milliseconds: u64,
    io_milliseconds: u64,
}

#[derive(Debug, Clone, Default)]
struct Sampled {
    cpu_utilization: f64,
    memory_used_bytes: u64,
    memory_total_bytes: u64,
    disk: DiskReport,
}

pub struct HealthSampler {
    started: Instant,
    data_dir: std::path::PathBuf,
    /// `(major, minor)` of the data directory's device, if /proc/diskstats lists it.
    device: Option<(u32, u32)>,
    latest: Mutex<Sampled>,
    previous: Mutex<Option<(Instant, RawSample)>>,
    metrics: Arc<NodeMetrics>,
}

impl HealthSampler {
    pub fn new(data_dir: &Path, metrics: Arc<NodeMetrics>) -> Arc<Self> {
        let device = rustix::fs::stat(data_dir)
            .ok()
            .map(|stat| {
                (
                    rustix::fs::major(stat.st_dev),
                    rustix::fs::minor(stat.st_dev),
                )
            })
            .filter(|&(major, minor)| read_diskstats(major, minor).is_some());
        let sampler = Arc::new(Self {
            started: Instant::now(),
            data_dir: data_dir.to_path_buf(),
            device,
            latest: Mutex::new(Sampled::default()),
            previous: Mutex::new(None),
            metrics,
        });
        sampler.sample();
        sampler
    }

    /// Samples every `interval` until the returned task is aborted.
    pub fn spawn(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let sampler = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let sampler = Arc::clone(&sampler);
                // /proc reads are quick but still file I/O: keep them off the runtime.
                let _ = tokio::task::spawn_blocking(move || sampler.sample()).await;
            }
        })
    }

    fn sample(&self) {
        let now = Instant::now();
        if let Ok(stats) = rustix::fs::statvfs(&self.data_dir) {
            let capacity = stats.f_blocks.saturating_mul(stats.f_frsize);
            let free = stats.f_bavail.saturating_mul(stats.f_frsize);
            self.metrics
                .disk_capacity_bytes
                .set(i64::try_from(capacity).unwrap_or(i64::MAX));
            self.metrics
                .disk_free_bytes
                .set(i64::try_from(free).unwrap_or(i64::MAX));
        }
        let (cpu_busy_ticks, cpu_total_ticks) = read_cpu_ticks().unwrap_or_default();
        let fsync = self.metrics.fsync_seconds.with_label_values(&["file"]);
        let raw = RawSample {
            cpu_busy_ticks,
            cpu_total_ticks,
            disk: self
                .device
                .and_then(|(major, minor)| read_diskstats(major, minor)),
            own_read_bytes: self.metrics.sent_bytes_total.get(),
            own_written_bytes: self.metrics.received_bytes_total.get(),
            own_fsync_seconds: fsync.get_sample_sum(),
            own_fsync_count: fsync.get_sample_count(),
        };
        let (memory_used_bytes, memory_total_bytes) = read_memory().unwrap_or_default();
        let mut sampled = Sampled {
            memory_used_bytes,
            memory_total_bytes,
            ..Sampled::default()
        };
        let mut previous = self.previous.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((then, before)) = *previous {
            let seconds = now.duration_since(then).as_secs_f64().max(1e-3);
            let delta = |after: u64, before: u64| after.saturating_sub(before) as f64;
            let total = delta(raw.cpu_total_ticks, before.cpu_total_ticks);
            if total > 0.0 {
                sampled.cpu_utilization =
                    (delta(raw.cpu_busy_ticks, before.cpu_busy_ticks) / total).clamp(0.0, 1.0);
            }
            sampled.disk = match (raw.disk, before.disk) {
                (Some(after), Some(before)) => {
                    let reads = delta(after.reads_completed, before.reads_completed);
                    let writes = delta(after.writes_completed, before.writes_completed);
                    DiskReport {
                        read_bytes_per_second: delta(after.sectors_read, before.sectors_read)
                            * 512.0
                            / seconds,
                        write_bytes_per_second: delta(
                            after.sectors_written,
                            before.sectors_written,
                        ) * 512.0
                            / seconds,
                        io_utilization: (delta(after.io_milliseconds, before.io_milliseconds)
                            / (seconds * 1000.0))
                            .clamp(0.0, 1.0),
                        read_latency_ms: average(
                            delta(after.read_milliseconds, before.read_milliseconds),
                            reads,
                        ),
                        write_latency_ms: average(
                            delta(after.write_milliseconds, before.write_milliseconds),
                            writes,
                        ),
                        ..DiskReport::default()
                    }
                }
                _ => DiskReport {
                    read_bytes_per_second: delta(raw.own_read_bytes, before.own_read_bytes)
                        / seconds,
                    write_bytes_per_second: delta(raw.own_written_bytes, before.own_written_bytes)
                        / seconds,
                    write_latency_ms: average(
                        (raw.own_fsync_seconds - before.own_fsync_seconds).max(0.0) * 1000.0,
                        delta(raw.own_fsync_count, before.own_fsync_count),
                    ),
                    ..DiskReport::default()
                },
            };
        }
        *previous = Some((now, raw));
        drop(previous);
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = sampled;
    }

    /// The report for `/health`: sampled values plus live capacity and counters of
    /// `store`, the node's name and reserve from `config`, its id as far as it knows
    /// (`node_id`, 0 while it has none).
    pub fn report(&self, store: &FragmentStore, config: &NodeConfig, node_id: u32) -> HealthReport {
        let sampled = self
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut disk = sampled.disk;
        if let Ok(capacity) = store.capacity() {
            disk.capacity_bytes = capacity.capacity_bytes;
            disk.free_bytes = capacity.free_bytes;
            self.metrics
                .disk_capacity_bytes
                .set(capacity.capacity_bytes as i64);
            self.metrics.disk_free_bytes.set(capacity.free_bytes as i64);
        }
        disk.reserve_bytes = config.reserve_bytes;
        HealthReport {
            node_id,
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            cpu_utilization: sampled.cpu_utilization,
            memory_used_bytes: sampled.memory_used_bytes,
            memory_total_bytes: sampled.memory_total_bytes,
            disk,
            errors: ErrorReport {
                read_errors: self.metrics.read_errors_total.get(),
                write_errors: self.metrics.write_errors_total.get(),
                checksum_failures: self.metrics.checksum_failures_total.get(),
                fsync_failures: self.metrics.fsync_failures_total.get(),
            },
            smart: None,
            fragments: FragmentReport {
                count: store.fragment_count(),
                bytes: store.fragment_bytes(),
            },
            writes_refused: store.write_fence().refusal().map(|refusal| WritesRefused {
                reason: refusal.reason.clone(),
                since_unix_ms: refusal.since_unix_ms,
            }),
            name: config.name.to_string(),
        }
    }
}

fn average(total: f64, count: f64) -> f64 {
    if count > 0.0 {
        total / count
    } else {
        0.0
    }
}

/// `(busy, total)` jiffies of all CPUs; idle and iowait count as not busy.
fn read_cpu_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_ticks(&text)
}

fn parse_cpu_ticks(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|field| field.parse().ok())
        .collect();
    if ticks.len() < 5 {
        return None;
    }
    let total: u64 = ticks.iter().sum();
    let idle = ticks[3] + ticks[4];
    Some((total.saturating_sub(idle), total))
}

/// `(used, total)` bytes; used = total − available.
fn read_memory() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_memory(&text)
}

fn parse_memory(text: &str) -> Option<(u64, u64)> {
    let kibibytes = |name: &str| -> Option<u64> {
        text.lines()
            .find(|line| line.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let total = kibibytes("MemTotal:")? * 1024;
    let available = kibibytes("MemAvailable:")? * 1024;
    Some((total.saturating_sub(available), total))
}

fn read_diskstats(major: u32, minor: u32) -> Option<DiskCounters> {
    let text = std::fs::read_to_string("/proc/diskstats").ok()?;
    parse_diskstats(&text, major, minor)
}

fn parse_diskstats(text: &str, major: u32, minor: u32) -> Option<DiskCounters> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 14 || fields[0].parse() != Ok(major) || fields[1].parse() != Ok(minor) {
            return None;
        }
        let number = |index: usize| fields[index].parse::<u64>().unwrap_or(0);
        Some(DiskCounters {
            reads_completed: number(3),
            sectors_read: number(5),
            read_milliseconds: number(6),
            writes_completed: number(7),
            sectors_written: number(9),
            write_milliseconds: number(10),
            io_milliseconds: number(12),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n";
        assert_eq!(parse_cpu_ticks(stat), Some((150, 1000)));
        let meminfo = "MemTotal:       1000 kB\nMemFree:   10 kB\nMemAvailable:    400 kB\n";
        assert_eq!(parse_memory(meminfo), Some((600 * 1024, 1000 * 1024)));
        let diskstats = "   8       0 sda 10 0 80 5 20 0 160 40 0 30 45 0 0 0 0\n 259 1 nvme0n1p1 1 2 3 4 5 6 7 8 9 10 11\n";
        let disk = parse_diskstats(diskstats, 8, 0);
        assert_eq!(
            disk.map(|disk| (disk.sectors_written, disk.io_milliseconds)),
            Some((160, 30))
        );
        assert!(parse_diskstats(diskstats, 8, 1).is_none());
        assert!(parse_cpu_ticks("garbage").is_none());
    }
}
