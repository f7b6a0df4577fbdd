//! Modelled durability: mean time to data loss (MTTDL) of one shardlet.
//!
//! The standard Markov model of an (n, k) MDS code (Gibson 1992, "Redundant Disk Arrays";
//! Hafner & Rao 2006, "Notes on reliability models for non-MDS erasure codes", IBM
//! RJ10391): state `i` = fragments lost, `0 ≤ i ≤ m = n − k`; state `i` fails onward
//! at rate `(n − i)·λ` (every surviving fragment's node fails independently at `λ`) and
//! is repaired back to `i − 1` at rate `μ = 1 / repair time`; state `m + 1` is data
//! loss. When `μ ≫ nλ` the chain is absorbed almost only through the path
//! 0 → 1 → … → m + 1, and
//!
//! ```text
//! MTTDL ≈ μ^m / (λ^(m+1) · n · (n−1) · … · (n−m)) = μ^m · (n−m−1)! / (λ^(m+1) · n!)
//! ```
//!
//! Replication with `c` copies is the (c, 1) code: `μ^(c−1) / (λ^c · c!)`.
//! The formula assumes independent failures and one repair at a time per shardlet;
//! correlated failures (a whole zone) are handled by placement, not by this number.

use shardlet_core::Scheme;

pub const HOURS_PER_YEAR: f64 = 24.0 * 365.25;

/// The failure and repair rates the policy assumes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DurabilityModel {
    /// Annualised failure rate of one node, as a fraction (0.02 = 2 %/year).
    pub annual_failure_rate: f64,
    /// Time from a fragment's loss to its rebuilt copy being committed, including the
    /// detector's grace period.
    pub repair_hours: f64,
}

impl Default for DurabilityModel {
    /// AFR 2 % (typical fleet average of hard disks) and 24 h repair: deliberately
    /// slower than what the simulator measures (minutes to hours), so the targets hold
    /// on a cluster that repairs more slowly than the simulated one.
    fn default() -> Self {
        Self {
            annual_failure_rate: 0.02,
            repair_hours: 24.0,
        }
    }
}

impl DurabilityModel {
    /// MTTDL of one shardlet stored with `scheme`, in years.
    pub fn mttdl_years(&self, scheme: Scheme) -> f64 {
        mttdl_years(
            scheme.width(),
            scheme.tolerated_losses(),
            self.annual_failure_rate,
            HOURS_PER_YEAR / self.repair_hours.max(1e-9),
        )
    }
}

/// MTTDL in years of an MDS code of `width` fragments tolerating `tolerated` losses,
/// with per-node failure rate `lambda` and repair rate `mu` (both per year).
pub fn mttdl_years(width: usize, tolerated: usize, lambda: f64, mu: f64) -> f64 {
    // Computed in logarithms: μ^m overflows nothing at these sizes, but the product
    // form keeps every factor of the formula visible.
    let mut log_mttdl = tolerated as f64 * mu.ln() - (tolerated + 1) as f64 * lambda.ln();
    for lost in 0..=tolerated {
        log_mttdl -= ((width - lost.min(width)) as f64).max(1.0).ln();
    }
    log_mttdl.exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_matches_hand_computed_values() {
        let model = DurabilityModel::default();
        let mu = HOURS_PER_YEAR / 24.0;
        let lambda: f64 = 0.02;
        let three_copies = model.mttdl_years(Scheme::Replicated { copies: 3 });
        let expected = mu * mu / (lambda.powi(3) * 6.0);
        assert!((three_copies / expected - 1.0).abs() < 1e-9);
        let rs_8_4 = model.mttdl_years(Scheme::ErasureCoded { data: 8, parity: 4 });
        let expected = mu.powi(4) / (lambda.powi(5) * 12.0 * 11.0 * 10.0 * 9.0 * 8.0);
        assert!((rs_8_4 / expected - 1.0).abs() < 1e-9);
    }

    #[test]
    fn more_parity_or_faster_repair_is_more_durable() {
        let model = DurabilityModel::default();
        let rs = |data, parity| model.mttdl_years(Scheme::ErasureCoded { data, parity });
        assert!(rs(6, 3) > rs(6, 2));
        assert!(
            rs(4, 2) > rs(8, 2),
            "wider stripes with equal parity lose more"
        );
        let faster = DurabilityModel {
            repair_hours: 1.0,
            ..model
        };
        let two = Scheme::Replicated { copies: 2 };
        assert!(faster.mttdl_years(two) > 20.0 * model.mttdl_years(two));
    }
}
