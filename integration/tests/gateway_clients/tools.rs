//! Running real client programs (aws, rclone, s3cmd, python3 + boto3, curl) from the
//! tests: found by a documented path, bounded in time, their output kept for the
//! failure message. A missing client fails the test with the command that installs
//! it; a test that skips itself silently would prove nothing.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use shardlet_testkit::poll::{poll_until_blocking, POLL_INTERVAL};
use shardlet_testkit::process::ChildProcess;
use shardlet_testkit::{clients_dir, S3Access};

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

/// Runs `command` to completion or kills it (with anything it started) at `deadline`,
/// then panics with its output. Output goes to files, not pipes, so a chatty child
/// never blocks on a full pipe and a daemon it leaves behind cannot hold the test.
pub fn run(command: Command, deadline: Duration) -> Finished {
    let description = format!("{command:?}");
    let stdout = tempfile::tempfile().expect("a file for stdout");
    let stderr = tempfile::tempfile().expect("a file for stderr");
    let mut process = ChildProcess::spawn_with_output(
        &description,
        command,
        stdout.try_clone().expect("stdout file").into(),
        stderr.try_clone().expect("stderr file").into(),
    )
    .unwrap_or_else(|error| panic!("cannot start {description}: {error}"));
    let give_up = Instant::now() + deadline;
    let status = poll_until_blocking(give_up, POLL_INTERVAL, || process.exit_status());
    process.kill();
    let (stdout, stderr) = (read_all(stdout), read_all(stderr));
    let Ok(status) = status else {
        panic!(
            "{description} did not finish within {deadline:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    Finished {
        output: Output {
            status,
            stdout,
            stderr,
        },
        description,
    }
}

/// Everything written to `file` from its start.
fn read_all(mut file: File) -> Vec<u8> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .expect("an output file is readable");
    bytes
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
    let mut files: Vec<PathBuf> = shardlet_testkit::files_under(root)
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

/// Bounds each aws invocation; the 100 MiB copies are the slow ones.
pub const AWS_DEADLINE: Duration = Duration::from_secs(240);

/// The aws CLI (Debian's v2) as one key: it reads no file of the user's (~/.aws) and
/// talks path-style.
pub struct Aws {
    access: S3Access,
    scratch: PathBuf,
}

impl Aws {
    /// An aws CLI that reads no file of the user's (~/.aws) and talks path-style.
    pub fn new(access: &S3Access, scratch: &Path) -> Self {
        std::fs::write(
            scratch.join("aws-config"),
            "[default]\ns3 =\n  addressing_style = path\n",
        )
        .unwrap();
        std::fs::write(scratch.join("aws-credentials"), "").unwrap();
        Self {
            access: access.clone(),
            scratch: scratch.to_path_buf(),
        }
    }

    pub fn command(&self, arguments: &[&str]) -> Command {
        let mut command = client_command(&aws());
        command
            .arg("--endpoint-url")
            .arg(&self.access.endpoint)
            .args(["--no-cli-pager", "--output", "json"])
            .args(arguments)
            .env("AWS_CONFIG_FILE", self.scratch.join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.scratch.join("aws-credentials"),
            )
            .env("AWS_ACCESS_KEY_ID", &self.access.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.access.secret_key)
            .env("AWS_DEFAULT_REGION", &self.access.region)
            .env("AWS_EC2_METADATA_DISABLED", "true");
        command
    }

    pub fn run(&self, arguments: &[&str]) -> Finished {
        run(self.command(arguments), AWS_DEADLINE)
    }

    pub fn ok(&self, arguments: &[&str]) -> Finished {
        let finished = self.run(arguments);
        finished.assert_success();
        finished
    }

    /// `s3api head-object`'s JSON answer (must succeed).
    pub fn head_object(&self, bucket: &str, key: &str) -> serde_json::Value {
        self.ok(&["s3api", "head-object", "--bucket", bucket, "--key", key])
            .json()
    }
}
