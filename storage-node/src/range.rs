//! `Range: bytes=…` parsing, single range only (RFC 9110 §14.1.2).

/// A parse failure: the header is not a single byte range we understand (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Range header: {0}")]
pub struct InvalidRange(pub &'static str);

/// A syntactically valid range that does not overlap the fragment (416).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("range not satisfiable for a fragment of {length} bytes")]
pub struct Unsatisfiable {
    pub length: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive) or `bytes=a-` (`last` = None).
    FromTo { first: u64, last: Option<u64> },
    /// `bytes=-n`: the last n bytes.
    Suffix { length: u64 },
}

/// Longest Range header accepted; real ones are a few dozen bytes.
const RANGE_HEADER_BYTES_MAX: usize = 128;

impl ByteRange {
    pub fn parse(header: &str) -> Result<Self, InvalidRange> {
        if header.len() > RANGE_HEADER_BYTES_MAX {
            return Err(InvalidRange("too long"));
        }
        let spec = header
            .trim()
            .strip_prefix("bytes=")
            .ok_or(InvalidRange("expected bytes=…"))?
            .trim();
        if spec.contains(',') {
            return Err(InvalidRange("only a single range is supported"));
        }
        let (first, last) = spec
            .split_once('-')
            .ok_or(InvalidRange("expected first-last"))?;
        let number = |text: &str| -> Result<u64, InvalidRange> {
            if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(InvalidRange("positions must be decimal numbers"));
            }
            text.parse()
                .map_err(|_| InvalidRange("position out of range"))
        };
        match (first.trim(), last.trim()) {
            ("", "") => Err(InvalidRange("empty range")),
            ("", suffix) => Ok(Self::Suffix {
                length: number(suffix)?,
            }),
            (first, "") => Ok(Self::FromTo {
                first: number(first)?,
                last: None,
            }),
            (first, last) => {
                let (first, last) = (number(first)?, number(last)?);
                if last < first {
                    return Err(InvalidRange("last position before first"));
                }
                Ok(Self::FromTo {
                    first,
                    last: Some(last),
                })
            }
        }
    }

    /// The half-open payload interval `start..end` this range selects from a fragment
    /// of `length` bytes (clamping `last` to the end, as RFC 9110 says).
    pub fn resolve(self, length: u64) -> Result<(u64, u64), Unsatisfiable> {
        match self {
            Self::FromTo { first, last } => {
                if first >= length {
                    return Err(Unsatisfiable { length });
                }
                let end = last.map_or(length, |last| last.saturating_add(1).min(length));
                Ok((first, end))
            }
            Self::Suffix { length: suffix } => {
                if suffix == 0 || length == 0 {
                    return Err(Unsatisfiable { length });
                }
                Ok((length - suffix.min(length), length))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn resolve(header: &str, length: u64) -> Result<(u64, u64), Unsatisfiable> {
        ByteRange::parse(header).unwrap().resolve(length)
    }

    #[test]
    fn the_three_forms_select_the_right_bytes() {
        assert_eq!(resolve("bytes=0-0", 10), Ok((0, 1)));
        assert_eq!(resolve("bytes=2-5", 10), Ok((2, 6)));
        assert_eq!(resolve("bytes=2-100", 10), Ok((2, 10)));
        assert_eq!(resolve("bytes=7-", 10), Ok((7, 10)));
        assert_eq!(resolve("bytes=-3", 10), Ok((7, 10)));
        assert_eq!(resolve("bytes=-30", 10), Ok((0, 10)));
        assert_eq!(resolve("bytes=65535-65536", 200_000), Ok((65_535, 65_537)));
    }

    #[test]
    fn ranges_outside_the_fragment_are_unsatisfiable() {
        assert_eq!(resolve("bytes=10-", 10), Err(Unsatisfiable { length: 10 }));
        assert_eq!(
            resolve("bytes=10-20", 10),
            Err(Unsatisfiable { length: 10 })
        );
        assert_eq!(resolve("bytes=-0", 10), Err(Unsatisfiable { length: 10 }));
        assert_eq!(resolve("bytes=0-", 0), Err(Unsatisfiable { length: 0 }));
        assert_eq!(resolve("bytes=-5", 0), Err(Unsatisfiable { length: 0 }));
    }

    #[test]
    fn malformed_ranges_are_rejected() {
        for bad in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=1-2,4-5",
            "bytes=5-2",
            "bytes=+1-2",
            "bytes=1--2",
            "items=0-1",
            "bytes=99999999999999999999999-",
            "bytes=0x10-",
            &format!("bytes=0-{}", "9".repeat(200)),
        ] {
            assert!(ByteRange::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
