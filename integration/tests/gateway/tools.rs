//! Running real client programs (aws, rclone, s3cmd, python3 + boto3, curl) from the
//! tests: found by a documented path, bounded in time, their output kept for the
//! failure message. A missing client fails the test with the command that installs
//! it; a test that skips itself silently would prove nothing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The client scripts in `integration/clients/`.
pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../integration/clients")
}

/// A client program: `$variable` if set, else the first of `candidates` that exists
/// (absolute paths) or is found on PATH (bare names).
pub fn program(variable: &str, candidates: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    for candidate in candidates {
        let path = Path::new(candidate);
        if path.is_absolute() {
            if path.exists() {
                return path.to_path_buf();
            }
            continue;
        }
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|directory| directory.join(candidate))
                .find(|full| full.exists())
        });
        if let Some(full) = on_path {
            return full;
        }
    }
    panic!(
        "none of {candidates:?} found (set {variable} to override); \
         install the clients with `scripts/install-deps.sh test`"
    );
}

/// Debian's aws CLI v2. A pip-installed v1 may shadow it on PATH, so its path comes
/// first.
pub fn aws() -> PathBuf {
    program("SHARDLET_TEST_AWS", &["/usr/bin/aws", "aws"])
}

pub fn python() -> PathBuf {
    program("SHARDLET_TEST_PYTHON", &["python3"])
}

/// A command for a client program that inherits no `AWS_*` variable of this machine
/// (profiles, CA bundles, endpoints): each test configures its client completely.
pub fn client_command(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
}

/// The finished process: status and both outputs as text.
pub struct Finished {
    pub output: Output,
    pub description: String,
}

impl Finished {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn success(&self) -> bool {
        self.output.status.success()
    }

    /// Panics with everything the program said unless it exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.success(),
            "{} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.description,
            self.output.status,
            self.stdout(),
            self.stderr()
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout()).unwrap_or_else(|error| {
            panic!(
                "{} printed no JSON ({error}):\n{}",
                self.description,
                self.stdout()
            )
        })
    }
}

/// Runs `command` to completion or kills it at `deadline` (then panics, with output).
pub fn run(mut command: Command, deadline: Duration) -> Finished {
    let description = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {description}: {error}"));
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let give_up = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break status;
        }
        if Instant::now() >= give_up {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = stdout.join().unwrap_or_default();
            let stderr = stderr.join().unwrap_or_default();
            panic!(
                "{description} did not finish within {deadline:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    Finished {
        output: Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        },
        description,
    }
}

/// Deterministic bytes for test files (xorshift; incompressible enough).
pub fn pattern_bytes(length: usize, seed: u64) -> Vec<u8> {
    crate::harness::pattern_bytes(length, seed)
}

/// The S3 ETag of a file as computed by `integration/clients/s3_etag.py` (hashlib),
/// independently of the gateway's code: `part_bytes` 0 for a single PUT.
pub fn expected_etag(file: &Path, part_bytes: u64) -> String {
    let mut command = client_command(&python());
    command
        .arg(clients_dir().join("s3_etag.py"))
        .arg(file)
        .arg("--part-bytes")
        .arg(part_bytes.to_string());
    let finished = run(command, Duration::from_secs(120));
    finished.assert_success();
    format!("\"{}\"", finished.stdout().trim())
}

/// Every regular file under `root`, as paths relative to it, sorted.
pub fn relative_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = crate::harness::files_under(root)
        .into_iter()
        .map(|path| path.strip_prefix(root).expect("under root").to_path_buf())
        .collect();
    files.sort();
    files
}

/// Asserts two directory trees hold the same files with identical bytes; names the
/// first difference.
pub fn assert_same_tree(expected: &Path, actual: &Path, what: &str) {
    let expected_files = relative_files(expected);
    let actual_files = relative_files(actual);
    let missing: Vec<_> = expected_files
        .iter()
        .filter(|file| !actual_files.contains(file))
        .collect();
    let extra: Vec<_> = actual_files
        .iter()
        .filter(|file| !expected_files.contains(file))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, unexpected {extra:?}"
    );
    for file in &expected_files {
        let want = std::fs::read(expected.join(file)).unwrap();
        let got = std::fs::read(actual.join(file)).unwrap();
        assert!(
            want == got,
            "{what}: {} differs ({} bytes expected, {} bytes received)",
            file.display(),
            want.len(),
            got.len()
        );
    }
}
