//! The bucket configurations Shardlet does not have (encryption, replication, object
//! lock, website, logging, notification, ownership controls, public access block,
//! acceleration, request payment, CORS, lifecycle, bucket policy, ACLs), asked by
//! boto3 and the aws CLI the way Terraform and the SDKs ask: each answers what S3
//! answers for a bucket without the configuration, never a bare 501 for a read.
//! `integration/clients/configuration_suite.py` checks every operation's status, code
//! and message as the owner, as another owner's key (AccessDenied) and on a missing
//! bucket (NoSuchBucket).

use std::time::Duration;

use shardlet_testkit::{clients_dir, shardlet_binary, Cluster};

use crate::tools::{self, Aws};

const SUITE_DEADLINE: Duration = Duration::from_secs(300);
const NODE_COUNT: usize = 6;
/// 42 operations as the owner, 15 GETs again, 42 as a stranger, 42 on a missing
/// bucket, a missing key, the malformed values and the malformed bodies
/// (`configuration_suite.py`).
const CHECKS_MIN: usize = 42 + 15 + 42 + 42 + 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configurations_answer_as_s3_does_for_a_bucket_without_them() {
    let cluster = Cluster::start(&shardlet_binary!(), NODE_COUNT).await;
    let alice = cluster.create_key("alice");
    let bob = cluster.create_key("bob");

    let mut command = tools::client_command(&tools::python());
    command
        .arg(clients_dir().join("configuration_suite.py"))
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
        "configuration checks failed:\n{}\n--- output ---\n{stdout}\n--- stderr ---\n{}",
        failed.join("\n"),
        finished.stderr()
    );
    let passed = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(passed >= CHECKS_MIN, "only {passed} checks ran:\n{stdout}");

    // The aws CLI's s3api, as a Terraform user would try by hand: the suite made
    // alice's bucket `configured`.
    let scratch = tempfile::tempdir().unwrap();
    let aws = Aws::new(&alice, scratch.path());
    let refused = |arguments: &[&str], code: &str, message: &str| {
        let finished = aws.run(arguments);
        let stderr = finished.stderr();
        assert!(
            !finished.success() && stderr.contains(code) && stderr.contains(message),
            "{arguments:?} should fail with {code} ({message}):\n{stderr}"
        );
    };
    refused(
        &["s3api", "get-bucket-encryption", "--bucket", "configured"],
        "ServerSideEncryptionConfigurationNotFoundError",
        "The server side encryption configuration was not found",
    );
    refused(
        &["s3api", "get-public-access-block", "--bucket", "configured"],
        "NoSuchPublicAccessBlockConfiguration",
        "The public access block configuration was not found",
    );
    refused(
        &["s3api", "get-bucket-website", "--bucket", "nowhere-bucket"],
        "NoSuchBucket",
        "The specified bucket does not exist",
    );
    refused(
        &[
            "s3api",
            "put-bucket-versioning",
            "--bucket",
            "configured",
            "--versioning-configuration",
            "Status=Enabled",
        ],
        "NotImplemented",
        "",
    );
    refused(
        &[
            "s3api",
            "put-object-lock-configuration",
            "--bucket",
            "configured",
            "--object-lock-configuration",
            "ObjectLockEnabled=Enabled",
        ],
        "NotImplemented",
        "Shardlet does not support object lock",
    );
    refused(
        &["s3api", "get-bucket-cors", "--bucket", "configured"],
        "NoSuchCORSConfiguration",
        "The CORS configuration does not exist",
    );
    refused(
        &[
            "s3api",
            "get-bucket-lifecycle-configuration",
            "--bucket",
            "configured",
        ],
        "NoSuchLifecycleConfiguration",
        "The lifecycle configuration does not exist",
    );
    refused(
        &["s3api", "get-bucket-policy", "--bucket", "configured"],
        "NoSuchBucketPolicy",
        "The bucket policy does not exist",
    );
    let status = aws
        .ok(&[
            "s3api",
            "get-bucket-policy-status",
            "--bucket",
            "configured",
        ])
        .json();
    assert_eq!(status["PolicyStatus"]["IsPublic"], false, "{status}");
    let payment = aws
        .ok(&[
            "s3api",
            "get-bucket-request-payment",
            "--bucket",
            "configured",
        ])
        .json();
    assert_eq!(payment["Payer"], "BucketOwner", "{payment}");
    let logging = aws
        .ok(&["s3api", "get-bucket-logging", "--bucket", "configured"])
        .stdout();
    assert!(!logging.contains("LoggingEnabled"), "{logging}");
    aws.ok(&[
        "s3api",
        "delete-bucket-replication",
        "--bucket",
        "configured",
    ]);
    let acl = aws
        .ok(&[
            "s3api",
            "get-object-acl",
            "--bucket",
            "configured",
            "--key",
            "doc.txt",
        ])
        .json();
    assert_eq!(acl["Grants"][0]["Permission"], "FULL_CONTROL", "{acl}");
}
