//! Test data and small readers: deterministic bytes, fresh fragment ids, Prometheus
//! totals, file listings.

use std::path::{Path, PathBuf};

/// A fresh, valid fragment id (random object, so ids never collide across tests).
pub fn random_fragment_id() -> String {
    use shardlet_core::{FragmentId, FragmentIndex, Generation, ObjectId, ShardletId};
    FragmentId::new(
        ShardletId::new(ObjectId::random(), 0),
        Generation(0),
        FragmentIndex(0),
    )
    .to_string()
}

/// Deterministic pseudo-random bytes (xorshift), so a failing comparison is
/// reproducible; incompressible enough for transfer tests.
pub fn pattern_bytes(length: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The CRC32C of `bytes` as the node API writes it (`x-shardlet-crc32c`).
pub fn crc32c_hex(bytes: &[u8]) -> String {
    shardlet_core::Crc32c::of(bytes).to_string()
}

/// The sum of every sample of a Prometheus metric family (all label sets), or `None`
/// if the family has no sample in `text`.
pub fn metric_total(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next()?.parse::<f64>().ok()?;
        total = Some(total.unwrap_or(0.0) + value);
    }
    total
}

/// Every regular file under `root`, recursively, sorted (for "nothing else was
/// touched" checks).
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Writes a secret (a key file, a cluster secret) as an operator must: mode 0600, since
/// a secret file every user can read is refused by every Shardlet process.
pub fn write_private_file(path: &std::path::Path, contents: impl AsRef<[u8]>) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
    file.write_all(contents.as_ref())
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_bytes_depend_only_on_the_seed() {
        assert_eq!(pattern_bytes(1000, 7), pattern_bytes(1000, 7));
        assert_ne!(pattern_bytes(1000, 7), pattern_bytes(1000, 8));
        assert_eq!(pattern_bytes(10, 7), pattern_bytes(1000, 7)[..10]);
    }

    #[test]
    fn metric_total_sums_every_label_set_of_exactly_that_family() {
        let text = "# HELP requests_total Requests.\n\
                    requests_total{outcome=\"ok\"} 3\n\
                    requests_total{outcome=\"error\"} 2.5\n\
                    requests_total_created 99\n\
                    other 1\n";
        assert_eq!(metric_total(text, "requests_total"), Some(5.5));
        assert_eq!(metric_total(text, "missing_total"), None);
    }

    #[test]
    fn files_under_lists_nested_files_sorted() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("b/c")).unwrap();
        std::fs::write(root.path().join("b/c/two"), "2").unwrap();
        std::fs::write(root.path().join("a"), "1").unwrap();
        assert_eq!(
            files_under(root.path()),
            [root.path().join("a"), root.path().join("b/c/two")]
        );
    }
}
