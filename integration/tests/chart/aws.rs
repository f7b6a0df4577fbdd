//! The aws CLI from the test process (the root namespace, over the bridge), configured
//! only by this test: no file or `AWS_*` variable of the machine's.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Aws {
    pub endpoint: String,
    access_key: String,
    secret_key: String,
    region: String,
    scratch: PathBuf,
}

impl Aws {
    pub fn new(
        endpoint: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
        scratch: &Path,
    ) -> Self {
        std::fs::create_dir_all(scratch).unwrap();
        std::fs::write(
            scratch.join("aws-config"),
            "[default]\ns3 =\n  addressing_style = path\n",
        )
        .unwrap();
        std::fs::write(scratch.join("aws-credentials"), "").unwrap();
        Self {
            endpoint: endpoint.to_string(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            region: region.to_string(),
            scratch: scratch.to_path_buf(),
        }
    }

    /// Runs `aws ARGUMENTS`; panics with its output (and `context`) unless it succeeds.
    pub fn ok(&self, arguments: &[&str], context: &dyn Fn() -> String) -> String {
        let started = std::time::Instant::now();
        let mut command = Command::new(crate::release::aws_cli());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AWS_") {
                command.env_remove(name);
            }
        }
        let output = command
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(["--no-cli-pager", "--output", "json"])
            .args(arguments)
            .env("AWS_CONFIG_FILE", self.scratch.join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.scratch.join("aws-credentials"),
            )
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_DEFAULT_REGION", &self.region)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HOME", &self.scratch)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("aws does not run: {error}"));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        eprintln!(
            "chart: aws {} ({:.1} s)",
            arguments.join(" "),
            started.elapsed().as_secs_f64()
        );
        assert!(
            output.status.success(),
            "aws {} failed ({}):\n{stdout}\n{}\n{}",
            arguments.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr),
            context()
        );
        stdout
    }
}
