//! Redundancy: the levels users ask for, and the schemes that implement them.
//!
//! A *level* (low / medium / high) is a promise about durability, chosen per bucket or
//! per object (S3 storage class). A *scheme* is how one shardlet keeps that promise right
//! now: whole replicas while it is hot, Reed-Solomon fragments once it is cold. The
//! controller picks the scheme; this module only describes it.

use std::fmt;

/// How one shardlet is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scheme {
    /// `copies` identical fragments; any one of them serves a read.
    Replicated { copies: u8 },
    /// `data + parity` fragments of `ceil(len / data)` bytes; any `data` of them rebuild
    /// the shardlet.
    ErasureCoded { data: u8, parity: u8 },
}

/// Why a scheme cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scheme {scheme}: {reason}")]
pub struct SchemeError {
    pub scheme: Scheme,
    pub reason: &'static str,
}

impl Scheme {
    /// More copies than this is a configuration mistake: erasure coding is cheaper.
    pub const COPIES_MAX: u8 = 16;
    /// Bounds on Reed-Solomon shapes. GF(2^8) allows 256 shards in total; beyond ~64
    /// data shards a read fans out so widely that latency, not storage, dominates.
    pub const DATA_MAX: u8 = 64;
    pub const PARITY_MAX: u8 = 32;

    /// Checks the scheme is one the codec and placement support.
    pub fn validate(self) -> Result<(), SchemeError> {
        let reason = match self {
            Scheme::Replicated { copies: 0 } => Some("copies must be at least 1"),
            Scheme::Replicated { copies } if copies > Self::COPIES_MAX => {
                Some("copies must be at most 16")
            }
            Scheme::Replicated { .. } => None,
            Scheme::ErasureCoded { data: 0, .. } => Some("data shards must be at least 1"),
            Scheme::ErasureCoded { parity: 0, .. } => Some("parity shards must be at least 1"),
            Scheme::ErasureCoded { data, .. } if data > Self::DATA_MAX => {
                Some("data shards must be at most 64")
            }
            Scheme::ErasureCoded { parity, .. } if parity > Self::PARITY_MAX => {
                Some("parity shards must be at most 32")
            }
            Scheme::ErasureCoded { .. } => None,
        };
        match reason {
            Some(reason) => Err(SchemeError {
                scheme: self,
                reason,
            }),
            None => Ok(()),
        }
    }

    /// How many fragments (and so how many distinct nodes) the scheme writes.
    pub fn width(self) -> usize {
        match self {
            Scheme::Replicated { copies } => usize::from(copies),
            Scheme::ErasureCoded { data, parity } => usize::from(data) + usize::from(parity),
        }
    }

    /// How many fragments are needed to read the shardlet back.
    pub fn required_fragments(self) -> usize {
        match self {
            Scheme::Replicated { .. } => 1,
            Scheme::ErasureCoded { data, .. } => usize::from(data),
        }
    }

    /// How many fragments can be lost without losing data.
    pub fn tolerated_losses(self) -> usize {
        self.width() - self.required_fragments()
    }

    /// Bytes stored per byte of user data.
    pub fn storage_overhead(self) -> f64 {
        match self {
            Scheme::Replicated { copies } => f64::from(copies),
            Scheme::ErasureCoded { data, parity } => {
                f64::from(u16::from(data) + u16::from(parity)) / f64::from(data)
            }
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scheme::Replicated { copies } => write!(f, "replicated({copies})"),
            Scheme::ErasureCoded { data, parity } => write!(f, "rs({data},{parity})"),
        }
    }
}

/// The erasure code that produced a shardlet's fragments. Recorded in metadata because
/// GF(2^8) and GF(2^16) Reed-Solomon fragments are not interchangeable.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// Plain copies (replication): no code.
    #[default]
    None,
    /// `reed-solomon-erasure` 6.x over GF(2^8), Vandermonde-derived systematic matrix.
    ReedSolomonGf8,
}

/// The durability a user asks for.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RedundancyLevel {
    Low,
    #[default]
    Medium,
    High,
}

/// How often a shardlet (or object) is read, as the sizing rule and the policy see it.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AccessClass {
    Cold,
    #[default]
    Warm,
    Hot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_and_losses() {
        let replicated = Scheme::Replicated { copies: 3 };
        assert_eq!(
            (
                replicated.width(),
                replicated.required_fragments(),
                replicated.tolerated_losses()
            ),
            (3, 1, 2)
        );
        let coded = Scheme::ErasureCoded { data: 8, parity: 4 };
        assert_eq!(
            (
                coded.width(),
                coded.required_fragments(),
                coded.tolerated_losses()
            ),
            (12, 8, 4)
        );
        assert!((coded.storage_overhead() - 1.5).abs() < 1e-9);
    }

    #[test]
    fn insane_schemes_are_rejected() {
        for bad in [
            Scheme::Replicated { copies: 0 },
            Scheme::Replicated { copies: 17 },
            Scheme::ErasureCoded { data: 0, parity: 2 },
            Scheme::ErasureCoded { data: 4, parity: 0 },
            Scheme::ErasureCoded {
                data: 65,
                parity: 2,
            },
            Scheme::ErasureCoded {
                data: 4,
                parity: 33,
            },
        ] {
            let Err(error) = bad.validate() else {
                panic!("{bad} accepted");
            };
            assert!(error.to_string().contains(&bad.to_string()), "{error}");
        }
        for good in [
            Scheme::Replicated { copies: 1 },
            Scheme::Replicated { copies: 16 },
            Scheme::ErasureCoded { data: 1, parity: 1 },
            Scheme::ErasureCoded {
                data: 64,
                parity: 32,
            },
        ] {
            assert_eq!(good.validate(), Ok(()));
        }
    }
}
