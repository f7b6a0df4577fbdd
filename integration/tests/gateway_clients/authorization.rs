//! Authorization with real keys of three owners through boto3 and the aws CLI, against
//! a cluster of real processes: a stranger is denied every operation on another owner's
//! buckets, `shardlet admin bucket grant` opens exactly read or read-write to one key,
//! and `revoke` closes it again. `integration/clients/authorization_suite.py` tries
//! every operation the gateway serves as each key and names each answer that does not
//! match the key's access.

use std::time::Duration;

use shardlet_testkit::service::run_to_completion;
use shardlet_testkit::{
    clients_dir, metric_total, shardlet_binary, wait_until, Cluster, S3Access, S3Client,
};

use crate::tools::{self, Aws};

const SUITE_DEADLINE: Duration = Duration::from_secs(300);
/// A grant or revocation made through the metadata service reaches a gateway within
/// its bucket cache's TTL (1 s); generous for a loaded machine.
const GRANT_VISIBLE_DEADLINE: Duration = Duration::from_secs(30);
const NODE_COUNT: usize = 6;

struct Key {
    name: &'static str,
    access: S3Access,
}

fn create_key(cluster: &Cluster, owner: &'static str) -> Key {
    Key {
        name: owner,
        access: cluster.create_key(owner),
    }
}

/// `shardlet admin bucket grant|revoke`; returns what it printed.
fn admin_bucket(cluster: &Cluster, arguments: &[&str]) -> String {
    let mut all: Vec<String> = vec![
        "admin".into(),
        "bucket".into(),
        arguments[0].into(),
        "--meta".into(),
        cluster.meta.address.to_string(),
    ];
    all.extend(arguments[1..].iter().map(|argument| argument.to_string()));
    run_to_completion(&cluster.binary, &all, &cluster.secret)
}

fn suite(cluster: &Cluster, owner: &Key, keys: &[(&Key, &str)]) {
    let mut command = tools::client_command(&tools::python());
    command
        .arg(clients_dir().join("authorization_suite.py"))
        .args(["--endpoint", &cluster.access.endpoint])
        .args(["--region", &cluster.access.region])
        .arg("--owner")
        .arg(format!(
            "{}:{}:{}",
            owner.name, owner.access.access_key, owner.access.secret_key
        ))
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (key, level) in keys {
        command.arg("--key").arg(format!(
            "{}:{}:{}:{level}",
            key.name, key.access.access_key, key.access.secret_key
        ));
    }
    let finished = tools::run(command, SUITE_DEADLINE);
    let stdout = finished.stdout();
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL ")).collect();
    let passed = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(
        finished.success() && failed.is_empty(),
        "authorization checks failed:\n{}\n--- output ---\n{stdout}\n--- stderr ---\n{}",
        failed.join("\n"),
        finished.stderr()
    );
    // Every key ran every operation (27 each), not an early exit.
    assert!(
        passed >= 27 * (keys.len() + 1),
        "only {passed} checks ran:\n{stdout}"
    );
}

/// Waits until `key` can (or cannot) list the shared bucket: a grant made through the
/// metadata service has reached the gateway.
async fn wait_for_listing(key: &Key, allowed: bool) {
    let client = S3Client::new(key.access.clone());
    wait_until(
        GRANT_VISIBLE_DEADLINE,
        &format!("{} may list `shared`: {allowed}", key.name),
        || {
            let client = client.clone();
            async move {
                match client.list_keys("shared").await {
                    Ok(_) => allowed,
                    Err(error) => !allowed && error.status() == Some(403),
                }
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_denied_and_grants_open_exactly_read_or_read_write() {
    let cluster = Cluster::start(&shardlet_binary!(), NODE_COUNT).await;
    let alice = create_key(&cluster, "alice");
    let bob = create_key(&cluster, "bob");
    let carol = create_key(&cluster, "carol");

    // No grants: bob and carol are strangers to alice's buckets.
    suite(&cluster, &alice, &[(&bob, "none"), (&carol, "none")]);
    let metrics = cluster.gateway_metrics().await;
    assert!(
        metric_total(&metrics, "shardlet_gateway_access_denied_total").unwrap_or(0.0) >= 40.0,
        "denials are counted:\n{metrics}"
    );

    // Read for bob, on both of alice's buckets; carol stays a stranger.
    for bucket in ["shared", "shared-source"] {
        let printed = admin_bucket(&cluster, &["grant", bucket, &bob.access.access_key, "read"]);
        assert!(
            printed.contains(&format!("{} read", bob.access.access_key)),
            "{printed}"
        );
    }
    wait_for_listing(&bob, true).await;
    suite(&cluster, &alice, &[(&bob, "read"), (&carol, "none")]);

    // Read-write replaces read.
    for bucket in ["shared", "shared-source"] {
        let printed = admin_bucket(
            &cluster,
            &["grant", bucket, &bob.access.access_key, "read-write"],
        );
        assert!(printed.contains("read-write"), "{printed}");
    }
    suite(&cluster, &alice, &[(&bob, "read-write"), (&carol, "none")]);

    // The aws CLI as bob (read-write) and carol (stranger), as a user types it.
    let scratch = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(scratch.path().join("bob")).unwrap();
    std::fs::create_dir_all(scratch.path().join("carol")).unwrap();
    let bob_cli = Aws::new(&bob.access, &scratch.path().join("bob"));
    let carol_cli = Aws::new(&carol.access, &scratch.path().join("carol"));
    let file = scratch.path().join("upload.txt");
    std::fs::write(&file, b"written by bob\n").unwrap();
    let file_text = file.to_str().unwrap();
    bob_cli.ok(&["s3", "cp", file_text, "s3://shared/by-bob.txt"]);
    let listed = bob_cli.ok(&["s3", "ls", "s3://shared/"]).stdout();
    assert!(listed.contains("by-bob.txt"), "{listed}");
    let removed = bob_cli.run(&["s3", "rb", "s3://shared", "--force"]);
    assert!(
        !removed.success() && removed.stderr().contains("AccessDenied"),
        "a read-write grant must not delete the bucket: {}",
        removed.stderr()
    );
    // `rb --force` first deleted the objects (bob may), then was refused the bucket.
    for arguments in [
        vec!["s3", "ls", "s3://shared/"],
        vec!["s3", "cp", "s3://shared/doc.txt", "-"],
        vec!["s3", "cp", file_text, "s3://shared/by-carol.txt"],
        vec!["s3api", "get-bucket-acl", "--bucket", "shared"],
        vec![
            "s3api",
            "head-object",
            "--bucket",
            "shared",
            "--key",
            "doc.txt",
        ],
    ] {
        let refused = carol_cli.run(&arguments);
        assert!(!refused.success(), "carol ran {arguments:?}");
        let said = refused.stderr();
        assert!(
            said.contains("AccessDenied") || said.contains("403") || said.contains("Forbidden"),
            "carol's {arguments:?} was refused for another reason: {said}"
        );
        assert!(
            !said.contains("alice"),
            "the refusal names the owner: {said}"
        );
    }
    let acl = tools::Aws::new(&alice.access, &scratch.path().join("carol"))
        .ok(&["s3api", "get-bucket-acl", "--bucket", "shared"])
        .json();
    let grants = acl["Grants"].to_string();
    assert!(
        grants.contains(&bob.access.access_key) && grants.contains("WRITE"),
        "the owner's ACL shows bob's grant: {acl}"
    );

    // Revoked: bob is a stranger again.
    for bucket in ["shared", "shared-source"] {
        let printed = admin_bucket(&cluster, &["revoke", bucket, &bob.access.access_key]);
        assert!(printed.contains("(no grants)"), "{printed}");
    }
    wait_for_listing(&bob, false).await;
    suite(&cluster, &alice, &[(&bob, "none")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_names_an_existing_bucket_and_key_and_is_refused_otherwise() {
    let cluster = Cluster::start(&shardlet_binary!(), 4).await;
    let alice = create_key(&cluster, "alice");
    S3Client::new(alice.access.clone())
        .create_bucket("mine")
        .await
        .unwrap();
    let run = |arguments: &[&str]| {
        let mut command = cluster.binary.command();
        command
            .args(["admin", "bucket"])
            .args(arguments)
            .args(["--meta", &cluster.meta.address.to_string()])
            .env("SHARDLET_CLUSTER_SECRET", &cluster.secret);
        command.output().unwrap()
    };
    let unknown_key = run(&["grant", "mine", "NOSUCHKEY0000000000", "read"]);
    let said = String::from_utf8_lossy(&unknown_key.stderr).into_owned();
    assert!(!unknown_key.status.success());
    assert!(
        said.contains("NOSUCHKEY0000000000") && said.contains("does not exist"),
        "{said}"
    );

    let unknown_bucket = run(&["grant", "nobucket", &alice.access.access_key, "read"]);
    let said = String::from_utf8_lossy(&unknown_bucket.stderr).into_owned();
    assert!(!unknown_bucket.status.success());
    assert!(said.contains("nobucket"), "{said}");

    let bad_level = run(&["grant", "mine", &alice.access.access_key, "everything"]);
    let said = String::from_utf8_lossy(&bad_level.stderr).into_owned();
    assert!(!bad_level.status.success());
    assert!(
        said.contains("everything") && said.contains("read-write"),
        "{said}"
    );
}

/// A leaked or retired S3 key is deleted (`shardlet admin key delete`): every request
/// signed with it is refused once the gateway's credential cache lets go of it, while
/// the owner's buckets, objects and other keys stay. Deleting an unknown key, or the
/// same key twice, is refused naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_key_is_refused_and_its_owners_data_stays() {
    let cluster = Cluster::start(&shardlet_binary!(), 4).await;
    let leaked = create_key(&cluster, "carol");
    let spare = create_key(&cluster, "carol");
    let leaked_client = S3Client::new(leaked.access.clone());
    leaked_client.create_bucket("carols").await.unwrap();
    leaked_client
        .put_object("carols", "kept", b"carol's data".to_vec(), None)
        .await
        .unwrap();

    let run = |arguments: &[&str]| {
        let mut command = cluster.binary.command();
        command
            .args(["admin", "key", "delete"])
            .args(arguments)
            .args(["--meta", &cluster.meta.address.to_string()])
            .env("SHARDLET_CLUSTER_SECRET", &cluster.secret)
            .env_remove("SHARDLET_KEYS");
        command.output().unwrap()
    };
    let deleted = run(&[&leaked.access.access_key]);
    let said = String::from_utf8_lossy(&deleted.stdout).into_owned();
    assert!(
        deleted.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    assert!(
        said.contains(&leaked.access.access_key) && said.contains("carol"),
        "{said}"
    );
    assert!(
        !said.contains(&leaked.access.secret_key),
        "the secret is never printed: {said}"
    );

    wait_until(SUITE_DEADLINE, "the deleted key is refused", || async {
        matches!(
            leaked_client.list_keys("carols").await,
            Err(error) if error.status() == Some(403)
        )
    })
    .await;
    let refused = leaked_client
        .put_object("carols", "after", b"x".to_vec(), None)
        .await
        .err()
        .map(|error| format!("{error:?}"))
        .unwrap_or_default();
    assert!(refused.contains("InvalidAccessKeyId"), "{refused}");

    let spare_client = S3Client::new(spare.access.clone());
    assert_eq!(
        spare_client
            .get_object("carols", "kept", None)
            .await
            .unwrap(),
        b"carol's data".to_vec(),
        "the owner's data and other keys stay"
    );
    assert_eq!(
        spare_client.list_keys("carols").await.unwrap(),
        vec!["kept".to_string()],
        "the refused write left nothing"
    );

    for unknown in [leaked.access.access_key.as_str(), "NOSUCHKEY0000000000"] {
        let again = run(&[unknown]);
        let said = String::from_utf8_lossy(&again.stderr).into_owned();
        assert!(
            !again.status.success(),
            "deleting {unknown} again succeeded"
        );
        assert!(
            said.contains(unknown) && said.contains("no access key"),
            "{said}"
        );
    }
}
