//! What the simulator is asked for and what it records about failures: the types the
//! driver (`mod.rs`), the nodes and the output all share, so none of them imports
//! another for them.

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
    pub(super) fn share(self) -> f64 {
        match self {
            FailureMode::MediaDecay => 0.35,
            FailureMode::SuddenDeath => 0.25,
            FailureMode::Thermal => 0.12,
            FailureMode::LatencyCreep => 0.15,
            FailureMode::ControllerErrors => 0.13,
        }
    }

    /// Inclusive range of days of warning before the failure (0 for none).
    pub(super) fn warning_days(self) -> (u32, u32) {
        match self {
            FailureMode::MediaDecay => (10, 40),
            FailureMode::SuddenDeath => (0, 0),
            FailureMode::Thermal => (5, 20),
            FailureMode::LatencyCreep => (15, 45),
            FailureMode::ControllerErrors => (3, 15),
        }
    }
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
