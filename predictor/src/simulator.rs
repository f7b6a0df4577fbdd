//! A fleet simulator producing labelled health traces in the Backblaze CSV format, so
//! that the importer is the one data path into training and evaluation.
//!
//! Every node draws from its own ChaCha8 stream seeded from (seed, node index): the
//! output depends only on the configuration, not on iteration order or thread timing.
//! Every disk model, failure mode and noise source is documented, with its parameters,
//! in docs/predictor.md ("The fleet simulator"); keep the two in step.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dates::format_day;
use crate::schema::{index, FeatureValues, ALL_MISSING, FEATURES, FEATURE_COUNT};

/// Side file naming each failed node's failure mode (not read by the importer).
pub const FAILURE_MODES_FILE: &str = "failure_modes.csv";

/// Day number of the first simulated day (2025-01-01).
pub const FIRST_DAY: i32 = 20_089;

/// Upper bounds so a typo on the command line cannot fill the disk.
pub const NODES_MAX: u32 = 1_000_000;
pub const DAYS_MAX: u32 = 3_650;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureMode {
    MediaDecay,
    SuddenDeath,
    Thermal,
    LatencyCreep,
    ControllerErrors,
}

impl FailureMode {
    pub const ALL: [FailureMode; 5] = [
        FailureMode::MediaDecay,
        FailureMode::SuddenDeath,
        FailureMode::Thermal,
        FailureMode::LatencyCreep,
        FailureMode::ControllerErrors,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FailureMode::MediaDecay => "media_decay",
            FailureMode::SuddenDeath => "sudden_death",
            FailureMode::Thermal => "thermal",
            FailureMode::LatencyCreep => "latency_creep",
            FailureMode::ControllerErrors => "controller_errors",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.name() == name)
    }

    /// Share of failures with this mode.
    fn share(self) -> f64 {
        match self {
            FailureMode::MediaDecay => 0.35,
            FailureMode::SuddenDeath => 0.25,
            FailureMode::Thermal => 0.12,
            FailureMode::LatencyCreep => 0.15,
            FailureMode::ControllerErrors => 0.13,
        }
    }

    /// Inclusive range of days of warning before the failure (0 for none).
    fn warning_days(self) -> (u32, u32) {
        match self {
            FailureMode::MediaDecay => (10, 40),
            FailureMode::SuddenDeath => (0, 0),
            FailureMode::Thermal => (5, 20),
            FailureMode::LatencyCreep => (15, 45),
            FailureMode::ControllerErrors => (3, 15),
        }
    }
}

/// A simulated disk model.
struct DiskModel {
    name: &'static str,
    share: f64,
    /// Annualised failure rate of a new drive, before `failure_rate_scale`.
    annual_failure_rate: f64,
    capacity_bytes: u64,
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

fn is_smart_feature(feature: usize) -> bool {
    feature >= index::SMART_5
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimulationConfig {
    pub nodes: u32,
    pub days: u32,
    pub seed: u64,
    /// Multiplies every model's failure rate (tests use more failures on tiny fleets).
    pub failure_rate_scale: f64,
}

/// One failed node, as recorded in the side file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureRecord {
    pub serial: String,
    pub model: String,
    pub mode: FailureMode,
    pub failure_day: i32,
}

struct SimulatedNode {
    serial: String,
    model: &'static DiskModel,
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
    fn new(config: &SimulationConfig, node_index: u32) -> Self {
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

    fn failure_record(&self) -> Option<FailureRecord> {
        self.failure.map(|(mode, day, _)| FailureRecord {
            serial: self.serial.clone(),
            model: self.model.name.to_string(),
            mode,
            failure_day: FIRST_DAY + day as i32,
        })
    }

    /// Advances the node by one day. Returns `None` when it does not report (dead, or
    /// offline for maintenance), otherwise its row and whether it fails today.
    fn step(&mut self, day: u32) -> Option<(FeatureValues, bool)> {
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

/// SMART attribute numbers written to the CSV, in column order.
const SMART_ATTRIBUTES: [(u32, usize); 8] = [
    (5, index::SMART_5),
    (9, index::SMART_9),
    (187, index::SMART_187),
    (188, index::SMART_188),
    (194, index::SMART_194),
    (197, index::SMART_197),
    (198, index::SMART_198),
    (199, index::SMART_199),
];

/// The non-SMART schema features, written as extra columns after the SMART ones.
fn extra_features() -> impl Iterator<Item = usize> {
    (0..FEATURE_COUNT).filter(|feature| !is_smart_feature(*feature))
}

fn header() -> String {
    let mut header = String::from("date,serial_number,model,capacity_bytes,failure");
    for (attribute, _) in SMART_ATTRIBUTES {
        header.push_str(&format!(
            ",smart_{attribute}_normalized,smart_{attribute}_raw"
        ));
    }
    for feature in extra_features() {
        header.push(',');
        header.push_str(FEATURES[feature].csv_column);
    }
    header
}

/// Backblaze's normalised value: 100 is healthy, lower is worse. Nothing reads it.
fn normalized(feature: usize, raw: f32) -> f32 {
    match feature {
        index::SMART_194 => raw,
        index::SMART_9 => (100.0 - raw / 1000.0).max(1.0).round(),
        _ => (100.0 - raw.min(99.0)).round(),
    }
}

fn write_row(
    out: &mut impl Write,
    date: &str,
    node: &SimulatedNode,
    values: &FeatureValues,
    failing: bool,
) -> std::io::Result<()> {
    write!(
        out,
        "{date},{},{},{},{}",
        node.serial,
        node.model.name,
        node.model.capacity_bytes,
        u8::from(failing)
    )?;
    for (_, feature) in SMART_ATTRIBUTES {
        let raw = values[feature];
        if raw.is_nan() {
            write!(out, ",,")?;
        } else {
            write!(out, ",{},{raw}", normalized(feature, raw))?;
        }
    }
    for feature in extra_features() {
        let value = values[feature];
        if value.is_nan() {
            write!(out, ",")?;
        } else if value.fract() == 0.0 {
            write!(out, ",{value}")?;
        } else {
            write!(out, ",{value:.4}")?;
        }
    }
    writeln!(out)
}

/// Writes `path` via a temporary file: after a crash either the complete file exists
/// or only a `.tmp` file does, which the importer ignores (it reads `*.csv` only).
/// The data is regenerable from the seed, so no directory fsync is needed; the file's
/// own fsync makes a completed run complete on disk.
fn write_atomically(
    path: &Path,
    contents: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut writer = BufWriter::with_capacity(1 << 20, File::create(&temporary)?);
    contents(&mut writer)?;
    let file = writer.into_inner().map_err(|error| error.into_error())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Simulates the fleet into `out` (created if needed): one `YYYY-MM-DD.csv` per day and
/// the `failure_modes.csv` side file. `on_day_done` is called after each day.
pub fn simulate(
    config: &SimulationConfig,
    out: &Path,
    mut on_day_done: impl FnMut(u32),
) -> anyhow::Result<Vec<FailureRecord>> {
    anyhow::ensure!(
        (1..=NODES_MAX).contains(&config.nodes),
        "--nodes must be 1 to {NODES_MAX}"
    );
    anyhow::ensure!(
        (1..=DAYS_MAX).contains(&config.days),
        "--days must be 1 to {DAYS_MAX}"
    );
    anyhow::ensure!(
        config.failure_rate_scale.is_finite() && (0.0..=100.0).contains(&config.failure_rate_scale),
        "failure rate scale must be 0 to 100"
    );
    std::fs::create_dir_all(out)?;
    let mut nodes: Vec<SimulatedNode> = (0..config.nodes)
        .map(|node_index| SimulatedNode::new(config, node_index))
        .collect();
    let header = header();
    for day in 0..config.days {
        let date = format_day(FIRST_DAY + day as i32);
        write_atomically(&out.join(format!("{date}.csv")), |writer| {
            writeln!(writer, "{header}")?;
            for node in nodes.iter_mut() {
                if let Some((values, failing)) = node.step(day) {
                    write_row(writer, &date, node, &values, failing)?;
                }
            }
            Ok(())
        })?;
        on_day_done(day);
    }
    let failures: Vec<FailureRecord> = nodes
        .iter()
        .filter_map(SimulatedNode::failure_record)
        .collect();
    write_atomically(&out.join(FAILURE_MODES_FILE), |writer| {
        writeln!(writer, "serial_number,model,failure_mode,failure_date")?;
        for record in &failures {
            writeln!(
                writer,
                "{},{},{},{}",
                record.serial,
                record.model,
                record.mode.name(),
                format_day(record.failure_day)
            )?;
        }
        Ok(())
    })?;
    Ok(failures)
}

/// Reads the side file; `Ok(None)` when the directory has none (real data).
pub fn read_failure_modes(
    directory: &Path,
) -> anyhow::Result<Option<std::collections::HashMap<String, FailureMode>>> {
    let path = directory.join(FAILURE_MODES_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let mut reader = csv::Reader::from_path(&path)?;
    let mut modes = std::collections::HashMap::new();
    for (position, record) in reader.records().enumerate() {
        let line = position + 2;
        let record =
            record.map_err(|error| anyhow::anyhow!("{}:{line}: {error}", path.display()))?;
        let (Some(serial), Some(mode)) = (record.get(0), record.get(2)) else {
            anyhow::bail!(
                "{}:{line}: expected serial_number,model,failure_mode,failure_date",
                path.display()
            );
        };
        let mode = FailureMode::from_name(mode).ok_or_else(|| {
            anyhow::anyhow!("{}:{line}: unknown failure mode {mode:?}", path.display())
        })?;
        modes.insert(serial.to_string(), mode);
    }
    Ok(Some(modes))
}
