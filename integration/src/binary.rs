//! What only the calling test or bench target knows: the `shardlet` binary under test
//! and that target's scratch directory (Cargo sets `CARGO_BIN_EXE_shardlet` and
//! `CARGO_TARGET_TMPDIR` for the `shardlet` package's own tests and benches only).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable that makes a Shardlet process serve and connect over plain
/// HTTP (`--insecure-plaintext`).
pub const PLAINTEXT_VARIABLE: &str = "SHARDLET_INSECURE_PLAINTEXT";

/// The `shardlet` binary under test and the scratch directory of the test or bench
/// target that runs it: what only that target knows (see the crate documentation).
#[derive(Clone, Debug)]
pub struct ShardletBinary {
    executable: PathBuf,
    target_tmp_dir: PathBuf,
}

/// The [`ShardletBinary`] of the calling test or bench target of the `shardlet`
/// package: expands `env!("CARGO_BIN_EXE_shardlet")` and `env!("CARGO_TARGET_TMPDIR")`
/// where it is written, which is the only place Cargo sets them.
#[macro_export]
macro_rules! shardlet_binary {
    () => {
        $crate::binary::ShardletBinary::new(
            env!("CARGO_BIN_EXE_shardlet"),
            env!("CARGO_TARGET_TMPDIR"),
        )
    };
}

impl ShardletBinary {
    pub fn new(executable: impl Into<PathBuf>, target_tmp_dir: impl Into<PathBuf>) -> Self {
        Self {
            executable: executable.into(),
            target_tmp_dir: target_tmp_dir.into(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.executable
    }

    /// `shardlet` with no arguments yet, told to run plain HTTP
    /// (`SHARDLET_INSECURE_PLAINTEXT=true`): the kit's clusters live on loopback, and
    /// most suites stay plaintext for speed. A TLS test removes the variable and passes
    /// certificates ([`crate::local_tls`]).
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.executable);
        command.env(PLAINTEXT_VARIABLE, "true");
        command
    }

    /// Records that `test` could not run here and why: a loud line on stderr, and a
    /// file `target/tmp/skipped/<test>` holding the reason. `make test`
    /// (`scripts/test.sh`) fails when it finds one, unless `SHARDLET_ALLOW_SKIPS=1`: a
    /// skipped test proves nothing, and a green run must not hide that (a test that
    /// skips where it cannot run still passes in `cargo test`, so that a developer
    /// without root can run the rest).
    pub fn skipped(&self, test: &str, reason: &str) {
        eprintln!("\n!!!!! SKIPPED {test}: {reason} !!!!!\n");
        let directory = self.target_tmp_dir.join("skipped");
        let written = std::fs::create_dir_all(&directory)
            .and_then(|()| std::fs::write(directory.join(test), format!("{reason}\n")));
        if let Err(error) = written {
            eprintln!(
                "(could not record the skip in {}: {error})",
                directory.display()
            );
        }
    }

    /// Where process tests and benchmarks put whole clusters: `target/tmp/clusters`
    /// (`make clean-cache` empties it), marked as a top of directory hierarchies
    /// (`chattr +T`), so that ext4 places each cluster's directory in a different block
    /// group. Why: this machine class's root file system is ext4 without a journal,
    /// where creating a file scans every free inode of its group that was deleted in the
    /// last ~30 s; in `/tmp`, whose groups hold the inodes every test run just deleted,
    /// one create measured 190–760 µs against ~20 µs in a fresh group — most of a small
    /// PUT's CPU. Best effort: where the flag cannot be set, plain subdirectories.
    pub fn clusters_root(&self) -> PathBuf {
        let root = self.target_tmp_dir.join("clusters");
        std::fs::create_dir_all(&root)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", root.display()));
        if let Ok(directory) = std::fs::File::open(&root) {
            if let Ok(flags) = rustix::fs::ioctl_getflags(&directory) {
                let _ = rustix::fs::ioctl_setflags(&directory, flags | rustix::fs::IFlags::TOPDIR);
            }
        }
        root
    }
}

/// The S3 client programs and scripts the gateway suites run (`integration/clients/`).
pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}
