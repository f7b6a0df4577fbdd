//! Which shardlets (and which bytes of each) a byte range of an object covers.
//!
//! Shardlets of one object may differ in size (multipart parts are cut separately), so
//! the plan walks the object's shardlet list with running offsets instead of dividing.

use std::ops::Range;

use shardlet_model::schema::ShardletReference;

/// Part of one shardlet that a read needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Position in the object's shardlet list.
    pub position: usize,
    pub reference: ShardletReference,
    /// Bytes of the shardlet to read.
    pub within: Range<u64>,
}

/// The pieces covering `range` (already checked against the object size), in order.
pub fn pieces(shardlets: &[ShardletReference], range: Range<u64>) -> Vec<Piece> {
    let mut out = Vec::new();
    if range.is_empty() {
        return out;
    }
    let mut start = 0u64;
    for (position, reference) in shardlets.iter().enumerate() {
        let end = start + reference.size_bytes;
        if end > range.start && start < range.end {
            let first = range.start.max(start) - start;
            let last = range.end.min(end) - start;
            out.push(Piece {
                position,
                reference: reference.clone(),
                within: first..last,
            });
        }
        if end >= range.end {
            break;
        }
        start = end;
    }
    out
}

/// A `Range` header that no byte of the object satisfies (416 InvalidRange).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Checks a `Range` header value against the object size: `None` for no header. A
/// resolved range is never empty. s3s resolves `bytes=-N` on an empty object to `0..0`,
/// which answered 206 with `Content-Range: bytes 0-0/0` (a byte that does not exist)
/// and no body (found by the `s3_range` fuzz target); an empty object has no byte to
/// send, so every range on it is unsatisfiable, as S3 answers.
pub fn resolve(
    range: Option<&s3s::dto::Range>,
    object_size_bytes: u64,
) -> Result<Option<Range<u64>>, Unsatisfiable> {
    match range {
        None => Ok(None),
        Some(range) => match range.check(object_size_bytes) {
            Ok(resolved) if !resolved.is_empty() => Ok(Some(resolved)),
            _ => Err(Unsatisfiable),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use shardlet_core::{ObjectId, ShardletId};

    fn refs(sizes: &[u64]) -> Vec<ShardletReference> {
        sizes
            .iter()
            .enumerate()
            .map(|(index, size)| ShardletReference {
                id: ShardletId::new(ObjectId([1; 16]), index as u32),
                size_bytes: *size,
            })
            .collect()
    }

    fn shape(pieces: &[Piece]) -> Vec<(usize, u64, u64)> {
        pieces
            .iter()
            .map(|piece| (piece.position, piece.within.start, piece.within.end))
            .collect()
    }

    #[test]
    fn a_range_reads_only_the_shardlets_it_covers() {
        let shardlets = refs(&[10, 10, 10]);
        assert_eq!(
            shape(&pieces(&shardlets, 0..30)),
            [(0, 0, 10), (1, 0, 10), (2, 0, 10)]
        );
        assert_eq!(shape(&pieces(&shardlets, 12..15)), [(1, 2, 5)]);
        assert_eq!(shape(&pieces(&shardlets, 9..11)), [(0, 9, 10), (1, 0, 1)]);
        assert_eq!(shape(&pieces(&shardlets, 20..30)), [(2, 0, 10)]);
    }

    #[test]
    fn uneven_shardlets_from_multipart_objects() {
        let shardlets = refs(&[5, 3, 7]);
        assert_eq!(
            shape(&pieces(&shardlets, 4..9)),
            [(0, 4, 5), (1, 0, 3), (2, 0, 1)]
        );
    }

    #[test]
    fn empty_object_and_empty_range_read_nothing() {
        assert!(pieces(&[], 0..0).is_empty());
        assert!(pieces(&refs(&[4]), 2..2).is_empty());
    }

    #[test]
    fn header_ranges_resolve_or_are_invalid() {
        use s3s::dto::Range as Header;
        let bounded = Header::Int {
            first: 2,
            last: Some(5),
        };
        assert_eq!(resolve(Some(&bounded), 10), Ok(Some(2..6)));
        let open = Header::Int {
            first: 7,
            last: None,
        };
        assert_eq!(resolve(Some(&open), 10), Ok(Some(7..10)));
        let suffix = Header::Suffix { length: 3 };
        assert_eq!(resolve(Some(&suffix), 10), Ok(Some(7..10)));
        let past_end = Header::Int {
            first: 10,
            last: None,
        };
        assert_eq!(resolve(Some(&past_end), 10), Err(Unsatisfiable));
        let clipped = Header::Int {
            first: 8,
            last: Some(100),
        };
        assert_eq!(resolve(Some(&clipped), 10), Ok(Some(8..10)));
        assert_eq!(resolve(None, 10), Ok(None));
        assert_eq!(
            resolve(Some(&Header::Suffix { length: 0 }), 10),
            Err(Unsatisfiable)
        );
        assert_eq!(resolve(Some(&bounded), 0), Err(Unsatisfiable));
    }

    #[test]
    fn no_range_of_an_empty_object_is_satisfiable() {
        use s3s::dto::Range as Header;
        for header in [
            Header::Suffix { length: 1 },
            Header::Suffix { length: 5 },
            Header::Int {
                first: 0,
                last: None,
            },
            Header::Int {
                first: 0,
                last: Some(0),
            },
        ] {
            assert_eq!(resolve(Some(&header), 0), Err(Unsatisfiable), "{header:?}");
        }
        assert_eq!(resolve(None, 0), Ok(None));
    }
}
