//! `x-amz-storage-class` → redundancy level and the scheme new shardlets start with.
//!
//! | storage class | level | initial scheme | why |
//! |---|---|---|---|
//! | (none), `STANDARD`, `INTELLIGENT_TIERING` | bucket default (medium) | 3 copies | hot until the controller sees otherwise |
//! | `REDUCED_REDUNDANCY` | low | 2 copies | S3's "less durable" class |
//! | `ONEZONE_IA` | low | RS(4,2) | infrequent access: start cold, cheap |
//! | `STANDARD_IA`, `GLACIER_IR`, `GLACIER`, `DEEP_ARCHIVE` | medium | RS(6,3) | cold from day one |
//! | `SHARDLET_HIGH` (Shardlet-specific) | high | 3 copies over both regions | survives losing a region |
//!
//! Any other value (`EXPRESS_ONEZONE`, `OUTPOSTS`, typos) is `InvalidStorageClass`.
//! The controller re-codes shardlets later according to heat and risk; the level is
//! the promise that stays.

use shardlet_core::{RedundancyLevel, Scheme};

/// The Shardlet-specific class for the high level (cross-region).
pub const SHARDLET_HIGH: &str = "SHARDLET_HIGH";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoragePlan {
    pub level: RedundancyLevel,
    pub initial_scheme: Scheme,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage class {0:?} is not supported")]
pub struct InvalidStorageClass(pub String);

/// Replication width for a level when nothing says "start cold".
pub fn replicated_for(level: RedundancyLevel) -> Scheme {
    match level {
        RedundancyLevel::Low => Scheme::Replicated { copies: 2 },
        RedundancyLevel::Medium | RedundancyLevel::High => Scheme::Replicated { copies: 3 },
    }
}

/// Maps the header (if any) and the bucket's default level to a plan.
pub fn plan_for(
    storage_class: Option<&str>,
    bucket_default: RedundancyLevel,
) -> Result<StoragePlan, InvalidStorageClass> {
    let cold = |level, data, parity| StoragePlan {
        level,
        initial_scheme: Scheme::ErasureCoded { data, parity },
    };
    let hot = |level| StoragePlan {
        level,
        initial_scheme: replicated_for(level),
    };
    Ok(match storage_class {
        None | Some("STANDARD") | Some("INTELLIGENT_TIERING") => hot(bucket_default),
        Some("REDUCED_REDUNDANCY") => hot(RedundancyLevel::Low),
        Some("ONEZONE_IA") => cold(RedundancyLevel::Low, 4, 2),
        Some("STANDARD_IA") | Some("GLACIER_IR") | Some("GLACIER") | Some("DEEP_ARCHIVE") => {
            cold(RedundancyLevel::Medium, 6, 3)
        }
        Some(SHARDLET_HIGH) => hot(RedundancyLevel::High),
        Some(other) => return Err(InvalidStorageClass(other.chars().take(64).collect())),
    })
}

/// The class reported back on GET/HEAD/List: what the client asked for, `STANDARD`
/// when it asked for nothing.
pub fn reported(storage_class: Option<&str>) -> &str {
    storage_class.unwrap_or("STANDARD")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_documented_class_maps_to_its_level_and_scheme() {
        let medium = RedundancyLevel::Medium;
        let cases = [
            (
                None,
                RedundancyLevel::Medium,
                Scheme::Replicated { copies: 3 },
            ),
            (
                Some("STANDARD"),
                RedundancyLevel::Medium,
                Scheme::Replicated { copies: 3 },
            ),
            (
                Some("INTELLIGENT_TIERING"),
                RedundancyLevel::Medium,
                Scheme::Replicated { copies: 3 },
            ),
            (
                Some("REDUCED_REDUNDANCY"),
                RedundancyLevel::Low,
                Scheme::Replicated { copies: 2 },
            ),
            (
                Some("ONEZONE_IA"),
                RedundancyLevel::Low,
                Scheme::ErasureCoded { data: 4, parity: 2 },
            ),
            (
                Some("STANDARD_IA"),
                RedundancyLevel::Medium,
                Scheme::ErasureCoded { data: 6, parity: 3 },
            ),
            (
                Some("GLACIER"),
                RedundancyLevel::Medium,
                Scheme::ErasureCoded { data: 6, parity: 3 },
            ),
            (
                Some("GLACIER_IR"),
                RedundancyLevel::Medium,
                Scheme::ErasureCoded { data: 6, parity: 3 },
            ),
            (
                Some("DEEP_ARCHIVE"),
                RedundancyLevel::Medium,
                Scheme::ErasureCoded { data: 6, parity: 3 },
            ),
            (
                Some("SHARDLET_HIGH"),
                RedundancyLevel::High,
                Scheme::Replicated { copies: 3 },
            ),
        ];
        for (class, level, scheme) in cases {
            let plan = plan_for(class, medium).unwrap();
            assert_eq!(
                (plan.level, plan.initial_scheme),
                (level, scheme),
                "{class:?}"
            );
            plan.initial_scheme.validate().unwrap();
        }
    }

    #[test]
    fn no_class_follows_the_bucket_default() {
        let plan = plan_for(None, RedundancyLevel::High).unwrap();
        assert_eq!(plan.level, RedundancyLevel::High);
        let plan = plan_for(None, RedundancyLevel::Low).unwrap();
        assert_eq!(plan.initial_scheme, Scheme::Replicated { copies: 2 });
    }

    #[test]
    fn unknown_classes_are_refused() {
        for bad in ["EXPRESS_ONEZONE", "OUTPOSTS", "standard", "", "GOLD"] {
            assert_eq!(
                plan_for(Some(bad), RedundancyLevel::Medium),
                Err(InvalidStorageClass(bad.to_string()))
            );
        }
    }
}
