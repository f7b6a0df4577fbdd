//! Bucket tagging (Put/Get/DeleteBucketTagging), as Terraform's `aws_s3_bucket` tags
//! and the aws CLI sets them: `integration/clients/bucket_tagging_suite.py` checks the
//! round trip, each of S3's rules (InvalidTag with S3's message, the stored tags left as
//! they were), NoSuchTagSet, owner-only access, NoSuchBucket and malformed bodies; then
//! the aws CLI's `s3api put-bucket-tagging` / `get-bucket-tagging` /
//! `delete-bucket-tagging`.

use std::time::Duration;

use shardlet_testkit::{clients_dir, shardlet_binary, Cluster};

use crate::tools::{self, Aws};

const SUITE_DEADLINE: Duration = Duration::from_secs(300);
const NODE_COUNT: usize = 6;
/// Round trip, limits, 6 invalid sets, 3 as a stranger, 3 on a missing bucket, the
/// stranger changed nothing, malformed bodies (`bucket_tagging_suite.py`).
const CHECKS_MIN: usize = 2 + 6 + 3 + 3 + 1 + 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_tags_are_stored_validated_and_owner_only() {
    let cluster = Cluster::start(&shardlet_binary!(), NODE_COUNT).await;
    let alice = cluster.create_key("alice");
    let bob = cluster.create_key("bob");

    let mut command = tools::client_command(&tools::python());
    command
        .arg(clients_dir().join("bucket_tagging_suite.py"))
        .args(["--endpoint", &cluster.access.endpoint])
        .args(["--region", &cluster.access.region])
        .arg("--owner")
        .arg(format!("{}:{}", alice.access_key, alice.secret_key))
        .arg("--stranger")
        .arg(format!("{}:{}", bob.access_key, bob.secret_key))
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let finished = tools::run(command, SUITE_DEADLINE);
    let stdout = finished.stdout();
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(
        finished.success() && failed.is_empty(),
        "bucket tagging checks failed:\n{}\n--- output ---\n{stdout}\n--- stderr ---\n{}",
        failed.join("\n"),
        finished.stderr()
    );
    let passed = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(passed >= CHECKS_MIN, "only {passed} checks ran:\n{stdout}");

    // The aws CLI, on a bucket of its own.
    let scratch = tempfile::tempdir().unwrap();
    let aws = Aws::new(&alice, scratch.path());
    aws.ok(&["s3api", "create-bucket", "--bucket", "cli-tagged"]);
    let none = aws.run(&["s3api", "get-bucket-tagging", "--bucket", "cli-tagged"]);
    assert!(
        !none.success()
            && none.stderr().contains("NoSuchTagSet")
            && none.stderr().contains("The TagSet does not exist"),
        "{}",
        none.stderr()
    );
    aws.ok(&[
        "s3api",
        "put-bucket-tagging",
        "--bucket",
        "cli-tagged",
        "--tagging",
        r#"{"TagSet":[{"Key":"team","Value":"storage"},{"Key":"env","Value":""}]}"#,
    ]);
    let tags = aws
        .ok(&["s3api", "get-bucket-tagging", "--bucket", "cli-tagged"])
        .json();
    assert_eq!(
        tags["TagSet"],
        serde_json::json!([{"Key": "team", "Value": "storage"}, {"Key": "env", "Value": ""}]),
        "{tags}"
    );
    let duplicate = aws.run(&[
        "s3api",
        "put-bucket-tagging",
        "--bucket",
        "cli-tagged",
        "--tagging",
        "TagSet=[{Key=team,Value=a},{Key=team,Value=b}]",
    ]);
    assert!(
        !duplicate.success()
            && duplicate.stderr().contains("InvalidTag")
            && duplicate
                .stderr()
                .contains("Cannot provide multiple Tags with the same key"),
        "{}",
        duplicate.stderr()
    );
    aws.ok(&["s3api", "delete-bucket-tagging", "--bucket", "cli-tagged"]);
    let gone = aws.run(&["s3api", "get-bucket-tagging", "--bucket", "cli-tagged"]);
    assert!(
        !gone.success() && gone.stderr().contains("NoSuchTagSet"),
        "{}",
        gone.stderr()
    );
}
