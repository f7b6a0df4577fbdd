//! One simulated node: its disk model, its fate (failure mode and day), and its
//! day-by-day health. The parameters are documented in docs/predictor.md.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shardlet_predictor_api::schema::{index, FeatureValues, ALL_MISSING};

use super::config::{FailureMode, FailureRecord, SimulationConfig, FIRST_DAY};

/// A simulated disk model.
pub(super) struct DiskModel {
    pub(super) name: &'static str,
    share: f64,
    /// Annualised failure rate of a new drive, before `failure_rate_scale`.
    annual_failure_rate: f64,
    pub(super) capacity_bytes: u64,
    /// Which SMART features this model reports; the others are empty cells.
    reports_smart: fn(usize) -> bool,
    read_latency_ms: f32,
    write_latency_ms: f32,
}

fn all_smart(_: usize) -> bool {
    true
}
fn all_but_188(feature: usize) -> bool {
    feature != index::SMART_188
}
fn ssd_smart(feature: usize) -> bool {
    matches!(feature, index::SMART_5 | index::SMART_9 | index::SMART_194)
}
fn no_smart(_: usize) -> bool {
    false
}

const TERABYTE: u64 = 1_000_000_000_000;

const DISK_MODELS: [DiskModel; 5] = [
    DiskModel {
        name: "SIMHDD-A4",
        share: 0.30,
        annual_failure_rate: 0.06,
        capacity_bytes: 4 * TERABYTE,
        reports_smart: all_smart,
        read_latency_ms: 8.0,
        write_latency_ms: 10.0,
    },
    DiskModel {
        name: "SIMHDD-B8",
        share: 0.25,
        annual_failure_rate: 0.10,
        capacity_bytes: 8 * TERABYTE,
        reports_smart: all_smart,
        read_latency_ms: 7.0,
        write_latency_ms: 9.0,
    },
    DiskModel {
        name: "SIMHDD-C12",
        share: 0.20,
        annual_failure_rate: 0.16,
        capacity_bytes: 12 * TERABYTE,
        reports_smart: all_but_188,
        read_latency_ms: 6.5,
        write_latency_ms: 8.5,
    },
    DiskModel {
        name: "SIMSSD-N2",
        share: 0.15,
        annual_failure_rate: 0.04,
        capacity_bytes: 2 * TERABYTE,
        reports_smart: ssd_smart,
        read_latency_ms: 0.3,
        write_latency_ms: 0.6,
    },
    DiskModel {
        name: "SIMVIRT-V1",
        share: 0.10,
        annual_failure_rate: 0.08,
        capacity_bytes: TERABYTE,
        reports_smart: no_smart,
        read_latency_ms: 2.0,
        write_latency_ms: 3.0,
    },
];

pub(super) fn is_smart_feature(feature: usize) -> bool {
    feature >= index::SMART_5
}

pub(super) struct SimulatedNode {
    pub(super) serial: String,
    pub(super) model: &'static DiskModel,
    rng: ChaCha8Rng,
    failure: Option<(FailureMode, u32, u32)>, // mode, failure day offset, warning days
    power_on_hours: f32,
    temperature_celsius: f32,
    cpu_base: f32,
    memory_base: f32,
    io_base: f32,
    latency_factor: f32,
    network_latency_ms: f32,
    /// Cumulative SMART raw counters: 5, 187, 188, 197 (current), 198, 199.
    reallocated: f32,
    reported_uncorrectable: f32,
    command_timeouts: f32,
    offline_uncorrectable: f32,
    crc_errors: f32,
    /// Days left offline for maintenance, then one resync day.
    maintenance_offline_days: u32,
    resync_pending: bool,
}

fn pick<T>(rng: &mut ChaCha8Rng, items: &[T], share: impl Fn(&T) -> f64) -> usize {
    let mut draw: f64 = rng.random();
    for (position, item) in items.iter().enumerate() {
        draw -= share(item);
        if draw < 0.0 {
            return position;
        }
    }
    items.len() - 1
}

/// A standard normal draw (Box–Muller); enough for noise.
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// A Poisson draw for small means (Knuth), capped so a bad parameter cannot spin.
fn poisson(rng: &mut ChaCha8Rng, mean: f32) -> f32 {
    if mean <= 0.0 {
        return 0.0;
    }
    if mean > 30.0 {
        return (mean + mean.sqrt() * normal(rng)).max(0.0).round();
    }
    let limit = (-mean).exp();
    let mut product: f32 = rng.random();
    let mut count = 0.0;
    while product > limit && count < 200.0 {
        product *= rng.random::<f32>();
        count += 1.0;
    }
    count
}

impl SimulatedNode {
    pub(super) fn new(config: &SimulationConfig, node_index: u32) -> Self {
        let stream = config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(node_index);
        let mut rng = ChaCha8Rng::seed_from_u64(stream);
        let model = &DISK_MODELS[pick(&mut rng, &DISK_MODELS, |model| model.share)];
        let age_years: f32 = rng.random_range(0.0..5.0);
        // Older drives fail more often (the wear-out side of the bathtub curve).
        let daily_hazard = model.annual_failure_rate
            * config.failure_rate_scale
            * (1.0 + 0.15 * f64::from(age_years))
            / 365.0;
        let days_to_failure =
            -rng.random::<f64>().max(f64::MIN_POSITIVE).ln() / daily_hazard.max(1e-12);
        let mode_index = pick(&mut rng, &FailureMode::ALL, |mode| mode.share());
        let mode = FailureMode::ALL[mode_index];
        let (warning_min, warning_max) = mode.warning_days();
        let warning_days = rng.random_range(warning_min..=warning_max);
        let failure = (days_to_failure < f64::from(config.days)).then_some((
            mode,
            days_to_failure as u32,
            warning_days,
        ));
        // Healthy noise: some drives live for years with a few remapped sectors.
        // Healthy noise: 8% of drives live for years with remapped sectors, from a few
        // to a couple of thousand (log-uniform), so a high count alone is no verdict.
        let reallocated = if rng.random::<f32>() < 0.08 {
            rng.random_range(0.0f32..7.6).exp().round()
        } else {
            0.0
        };
        Self {
            serial: format!("SIM{node_index:08}"),
            model,
            failure,
            power_on_hours: age_years * 8766.0,
            temperature_celsius: rng.random_range(25.0..48.0),
            cpu_base: rng.random_range(0.1..0.6),
            memory_base: rng.random_range(0.3..0.8),
            io_base: rng.random_range(0.1..0.5),
            // Log-uniform 0.5–3×: some disks are slow all their lives and never fail.
            latency_factor: rng.random_range(0.5f32.ln()..3.0f32.ln()).exp(),
            network_latency_ms: rng.random_range(0.2..2.0),
            reallocated,
            reported_uncorrectable: 0.0,
            command_timeouts: 0.0,
            offline_uncorrectable: 0.0,
            crc_errors: 0.0,
            maintenance_offline_days: 0,
            resync_pending: false,
            rng,
        }
    }

    pub(super) fn failure_record(&self) -> Option<FailureRecord> {
        self.failure.map(|(mode, day, _)| FailureRecord {
            serial: self.serial.clone(),
            model: self.model.name.to_string(),
            mode,
            failure_day: FIRST_DAY + day as i32,
        })
    }

    /// Advances the node by one day. Returns `None` when it does not report (dead, or
    /// offline for maintenance), otherwise its row and whether it fails today.
    pub(super) fn step(&mut self, day: u32) -> Option<(FeatureValues, bool)> {
        if let Some((_, failure_day, _)) = self.failure {
            if day > failure_day {
                return None;
            }
        }
        let rng = &mut self.rng;
        self.power_on_hours += 24.0;
        // Maintenance: ~ once per 200 node-days, 1–2 days offline, then a resync day.
        if self.maintenance_offline_days > 0 {
            self.maintenance_offline_days -= 1;
            self.resync_pending = self.maintenance_offline_days == 0;
            return None;
        }
        let failing_today = self
            .failure
            .is_some_and(|(_, failure_day, _)| failure_day == day);
        if !failing_today && rng.random::<f32>() < 1.0 / 200.0 {
            self.maintenance_offline_days = rng.random_range(1..=2);
            self.maintenance_offline_days -= 1;
            self.resync_pending = self.maintenance_offline_days == 0;
            return None;
        }
        let resync = std::mem::take(&mut self.resync_pending);

        // Degradation progress in [0, 1]: 0 until the warning period starts, 1 on the
        // failure day. Modes without warning stay at 0.
        let (mode, progress) = match self.failure {
            Some((mode, failure_day, warning_days)) if warning_days > 0 => {
                let days_left = failure_day.saturating_sub(day);
                let progress = if days_left >= warning_days {
                    0.0
                } else {
                    1.0 - days_left as f32 / warning_days as f32
                };
                (Some(mode), progress)
            }
            Some((mode, _, _)) => (Some(mode), 0.0),
            None => (None, 0.0),
        };

        let weekday = day % 7;
        let weekly = if weekday >= 5 { -0.08 } else { 0.04 };
        let mut values = ALL_MISSING;
        let mut cpu = self.cpu_base + weekly + 0.05 * normal(rng);
        let memory = self.memory_base + 0.03 * normal(rng);
        let mut io = self.io_base + weekly + 0.05 * normal(rng);
        let mut latency_multiplier = self.latency_factor * (1.0 + 0.1 * normal(rng)).max(0.5);
        let mut temperature = self.temperature_celsius + 1.5 * normal(rng);
        let mut network_latency = self.network_latency_ms * (1.0 + 0.1 * normal(rng)).max(0.3);
        if rng.random::<f32>() < 0.02 {
            network_latency *= 3.0; // a congested day
        }
        let mut read_errors = if rng.random::<f32>() < 0.01 { 1.0 } else { 0.0 };
        let mut write_errors = 0.0;
        let mut checksum_failures = 0.0;
        let mut fsync_failures = 0.0;
        let mut pending_sectors = 0.0;
        // Healthy noise on the SMART counters the rule watches: false alarms happen.
        if rng.random::<f32>() < 0.0003 {
            self.command_timeouts += 1.0;
        }
        if rng.random::<f32>() < 0.001 {
            self.crc_errors += rng.random_range(1..5) as f32;
        }
        if self.reallocated > 0.0 && rng.random::<f32>() < 0.01 {
            self.reallocated += 1.0;
        }
        if resync {
            io = 0.9 + 0.05 * normal(rng);
            cpu += 0.3;
            latency_multiplier *= 2.0;
        }

        match mode {
            Some(FailureMode::MediaDecay) if progress > 0.0 => {
                let intensity = progress * progress;
                self.reallocated += poisson(rng, 0.3 + 40.0 * intensity);
                pending_sectors = poisson(rng, 25.0 * intensity);
                if progress > 0.3 && rng.random::<f32>() < 0.3 * progress {
                    self.reported_uncorrectable += poisson(rng, 3.0 * progress);
                }
                if progress > 0.5 {
                    self.offline_uncorrectable += poisson(rng, 2.0 * intensity);
                }
                read_errors += poisson(rng, 20.0 * intensity);
                checksum_failures += poisson(rng, 3.0 * intensity);
                latency_multiplier *= 1.0 + 2.0 * intensity;
            }
            Some(FailureMode::Thermal) if progress > 0.0 => {
                temperature += 15.0 * progress;
                if progress > 0.6 && rng.random::<f32>() < 0.4 * progress {
                    self.command_timeouts += 1.0;
                }
                latency_multiplier *= 1.0 + 0.8 * progress;
                io += 0.1 * progress;
            }
            Some(FailureMode::LatencyCreep) if progress > 0.0 => {
                latency_multiplier *= 1.0 + 4.0 * progress.powf(1.5);
                io += 0.3 * progress;
                if progress > 0.8 && rng.random::<f32>() < 0.3 {
                    write_errors += 1.0;
                }
            }
            Some(FailureMode::ControllerErrors) if progress > 0.0 => {
                if rng.random::<f32>() < 0.2 + 0.6 * progress {
                    self.crc_errors += rng.random_range(1..20) as f32;
                    write_errors += poisson(rng, 5.0 * progress);
                    fsync_failures += poisson(rng, 2.0 * progress);
                }
                if rng.random::<f32>() < 0.3 * progress {
                    self.command_timeouts += 1.0;
                }
            }
            _ => {}
        }

        values[index::CPU_UTILIZATION] = cpu.clamp(0.0, 1.0);
        values[index::MEMORY_UTILIZATION] = memory.clamp(0.0, 1.0);
        values[index::DISK_IO_UTILIZATION] = io.clamp(0.0, 1.0);
        values[index::DISK_READ_LATENCY_MS] = self.model.read_latency_ms * latency_multiplier;
        values[index::DISK_WRITE_LATENCY_MS] = self.model.write_latency_ms * latency_multiplier;
        values[index::READ_ERRORS] = read_errors;
        values[index::WRITE_ERRORS] = write_errors;
        values[index::CHECKSUM_FAILURES] = checksum_failures;
        values[index::FSYNC_FAILURES] = fsync_failures;
        values[index::NETWORK_LATENCY_MS] = network_latency;
        values[index::SMART_5] = self.reallocated;
        values[index::SMART_187] = self.reported_uncorrectable;
        values[index::SMART_188] = self.command_timeouts;
        values[index::SMART_197] = pending_sectors;
        values[index::SMART_198] = self.offline_uncorrectable;
        values[index::SMART_199] = self.crc_errors;
        values[index::SMART_9] = self.power_on_hours.floor();
        values[index::SMART_194] = temperature.round();
        for (feature, value) in values.iter_mut().enumerate() {
            if is_smart_feature(feature) && !(self.model.reports_smart)(feature) {
                *value = f32::NAN;
            }
        }
        Some((values, failing_today))
    }
}
