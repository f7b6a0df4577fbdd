//! `shardlet admin key import --file FILE [--replace]` against a cluster of real
//! processes: keys declared in a file are created once and "unchanged" after; an
//! existing key with another secret is refused (nothing of the file written) unless
//! `--replace`; `key list` shows each key's owner and never a secret; a bad file is refused naming the line and column, a bad entry naming its
//! index, before anything is written; and an imported key signs for the aws CLI.

use std::path::Path;

use shardlet_testkit::{shardlet_binary, Cluster, S3Access};

use crate::tools::Aws;

const ALICE: &str = "AKIAIMPORTEDALICE001";
const BOB: &str = "AKIAIMPORTEDBOB00001";
const CAROL: &str = "AKIAIMPORTEDCAROL001";
const SECRET_ONE: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYimportedKEY1";
const SECRET_TWO: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYimportedKEY2";

fn write_keys(path: &Path, keys: &[(&str, &str, &str)]) {
    let entries: Vec<serde_json::Value> = keys
        .iter()
        .map(|(access, secret, owner)| {
            serde_json::json!({"access_key": access, "secret_key": secret, "owner": owner})
        })
        .collect();
    std::fs::write(path, serde_json::to_string_pretty(&entries).unwrap()).unwrap();
}

fn import(cluster: &Cluster, file: &Path, replace: bool) -> String {
    let file = file.to_str().unwrap();
    let mut arguments = vec!["admin", "key", "import", "--file", file];
    if replace {
        arguments.push("--replace");
    }
    cluster.admin(&arguments)
}

fn import_refused(cluster: &Cluster, file: &Path) -> String {
    cluster.admin_refused(&["admin", "key", "import", "--file", file.to_str().unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_keys_are_idempotent_refuse_a_changed_secret_and_sign_for_the_aws_cli() {
    let cluster = Cluster::start(&shardlet_binary!(), 4).await;
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("keys.json");
    write_keys(
        &file,
        &[(ALICE, SECRET_ONE, "alice"), (BOB, SECRET_ONE, "bob")],
    );

    let first = import(&cluster, &file, false);
    assert!(
        first.contains(&format!("created access key {ALICE} (owner alice)"))
            && first.contains(&format!("created access key {BOB} (owner bob)")),
        "{first}"
    );
    assert!(
        !first.contains(SECRET_ONE),
        "the secret is never printed: {first}"
    );
    let again = import(&cluster, &file, false);
    assert_eq!(
        again.matches("unchanged access key").count(),
        2,
        "a second run changes nothing: {again}"
    );

    // A new key, then Alice's secret changed: refused before anything is written (not
    // even the new key before it), naming the file, the entry and the key.
    write_keys(
        &file,
        &[(CAROL, SECRET_ONE, "carol"), (ALICE, SECRET_TWO, "alice")],
    );
    let refused = import_refused(&cluster, &file);
    assert!(
        refused.contains("keys.json: entry 1")
            && refused.contains(ALICE)
            && refused.contains("different secret")
            && refused.contains("--replace"),
        "{refused}"
    );
    assert!(!refused.contains(SECRET_TWO), "{refused}");
    let replaced = import(&cluster, &file, true);
    assert!(
        replaced.contains(&format!("replaced access key {ALICE} (owner alice)"))
            && replaced.contains(&format!("created access key {CAROL} (owner carol)")),
        "carol was not written by the refused run, alice is replaced now: {replaced}"
    );

    // JSON that does not parse: the line and column.
    let broken = scratch.path().join("broken.json");
    std::fs::write(
        &broken,
        format!("[\n  {{\"access_key\": \"{ALICE}\",\n  \"secret_key\": }}\n]\n"),
    )
    .unwrap();
    let refused = import_refused(&cluster, &broken);
    assert!(
        refused.contains("broken.json") && refused.contains("line 3 column"),
        "{refused}"
    );
    // A bad entry after a good new one: nothing written, the index and field named.
    let bad = scratch.path().join("bad-entry.json");
    const DAVE: &str = "AKIAIMPORTEDDAVE0001";
    write_keys(
        &bad,
        &[(DAVE, SECRET_ONE, "dave"), ("AKIA-BAD", SECRET_ONE, "eve")],
    );
    let refused = import_refused(&cluster, &bad);
    assert!(
        refused.contains("bad-entry.json: entry 1: access_key"),
        "{refused}"
    );
    write_keys(&bad, &[(DAVE, SECRET_ONE, "dave")]);
    let dave = import(&cluster, &bad, false);
    assert!(
        dave.contains(&format!("created access key {DAVE}")),
        "the refused file wrote nothing: {dave}"
    );

    // `key list`: every key with its owner, never a secret; `--owner` narrows it.
    let listed = cluster.admin(&["admin", "key", "list"]);
    for (access, owner) in [
        (ALICE, "alice"),
        (BOB, "bob"),
        (CAROL, "carol"),
        (DAVE, "dave"),
    ] {
        assert!(
            listed
                .lines()
                .any(|line| line.starts_with(access)
                    && line.split_whitespace().nth(1) == Some(owner)),
            "{access} of {owner} listed: {listed}"
        );
    }
    assert!(
        !listed.contains(SECRET_ONE) && !listed.contains(SECRET_TWO),
        "no secret listed: {listed}"
    );
    let bobs = cluster.admin(&["admin", "key", "list", "--owner", "bob"]);
    assert!(
        bobs.contains(BOB) && !bobs.contains(ALICE) && bobs.contains("1 access key(s)"),
        "{bobs}"
    );
    let refused = cluster.admin_refused(&["admin", "key", "list", "--owner", "no/slash"]);
    assert!(refused.contains("--owner"), "{refused}");

    // The imported (replaced) key signs for the aws CLI; its old secret does not.
    let alice = S3Access {
        access_key: ALICE.into(),
        secret_key: SECRET_TWO.into(),
        ..cluster.access.clone()
    };
    let aws = Aws::new(&alice, scratch.path());
    aws.ok(&["s3", "mb", "s3://imported"]);
    let object = scratch.path().join("object");
    std::fs::write(&object, b"written with an imported key").unwrap();
    aws.ok(&["s3", "cp", object.to_str().unwrap(), "s3://imported/object"]);
    let listed = aws.ok(&["s3", "ls", "s3://imported/"]).stdout();
    assert!(listed.contains(" object"), "{listed}");
    let old = Aws::new(
        &S3Access {
            secret_key: SECRET_ONE.into(),
            ..alice
        },
        scratch.path(),
    );
    let refused = old.run(&["s3", "ls", "s3://imported/"]);
    assert!(
        !refused.success() && refused.stderr().contains("SignatureDoesNotMatch"),
        "the replaced secret is refused: {}",
        refused.stderr()
    );
}
