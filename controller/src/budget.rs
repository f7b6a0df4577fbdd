//! The I/O budget of background work: a token bucket in bytes.
//!
//! Transitions, proactive repair and evacuation take tokens before they move bytes;
//! by default the rate is 5 % of the cluster's measured bandwidth, so foreground
//! traffic keeps 95 %. Repair of *endangered* data (a shardlet at or below its last
//! spare fragment) is never made to wait: it takes what it needs and drives the
//! bucket into debt, which later background work pays back.

/// Bursts are bounded to this many seconds of the rate.
pub const BURST_SECONDS: f64 = 10.0;
/// Debt from urgent repair is bounded so a storm of it cannot starve background work
/// forever.
pub const DEBT_SECONDS_MAX: f64 = 600.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urgency {
    /// Transitions, proactive repair, evacuation: wait for tokens.
    Background,
    /// Data one more loss away from being unreadable: never waits.
    Endangered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    Granted,
    /// Come back at this time; the tokens will be there if nothing else takes them.
    WaitUntil {
        at_ms: u64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct IoBudget {
    bytes_per_second: f64,
    burst_bytes: f64,
    tokens: f64,
    updated_ms: u64,
}

impl IoBudget {
    pub const DEFAULT_SHARE: f64 = 0.05;

    pub fn new(bytes_per_second: f64, now_ms: u64) -> Self {
        let bytes_per_second = bytes_per_second.max(1.0);
        let burst_bytes = bytes_per_second * BURST_SECONDS;
        Self {
            bytes_per_second,
            burst_bytes,
            tokens: burst_bytes,
            updated_ms: now_ms,
        }
    }

    /// `share` (default 5 %) of the measured cluster bandwidth.
    pub fn from_cluster_bandwidth(cluster_bytes_per_second: f64, share: f64, now_ms: u64) -> Self {
        Self::new(cluster_bytes_per_second * share.clamp(0.0, 1.0), now_ms)
    }

    pub fn bytes_per_second(&self) -> f64 {
        self.bytes_per_second
    }

    /// Takes `bytes` at `now_ms` or says when to come back.
    pub fn request(&mut self, bytes: u64, urgency: Urgency, now_ms: u64) -> Grant {
        self.refill(now_ms);
        let bytes = bytes as f64;
        let debt_max = self.bytes_per_second * DEBT_SECONDS_MAX;
        match urgency {
            Urgency::Endangered => {
                self.tokens = (self.tokens - bytes).max(-debt_max);
                Grant::Granted
            }
            // A request larger than the burst would never fit: let it through when the
            // bucket is full, paid for as debt.
            // Background debt is never forgiven: a large grant is paid back in full
            // before the next one, so the long-run rate stays at the budget.
            Urgency::Background if self.tokens >= bytes.min(self.burst_bytes) => {
                self.tokens -= bytes;
                Grant::Granted
            }
            Urgency::Background => {
                let missing = bytes.min(self.burst_bytes) - self.tokens;
                let wait_ms = (missing / self.bytes_per_second * 1000.0).ceil() as u64;
                Grant::WaitUntil {
                    at_ms: now_ms + wait_ms.max(1),
                }
            }
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed_seconds = now_ms.saturating_sub(self.updated_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed_seconds * self.bytes_per_second).min(self.burst_bytes);
        self.updated_ms = self.updated_ms.max(now_ms);
    }
}
