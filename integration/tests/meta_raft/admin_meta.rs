//! `shardlet admin meta status|add|promote|remove` run as an operator runs them, against
//! real members: growing from one member to three, and every refusal the rules make
//! (an even voter count without --force, a member at another address, a member of
//! another cluster, an unknown member).

use std::process::Output;

use shardlet_testkit::shardlet_binary;

use super::formation::{ready, wait_ready};
use super::members::{start_member, status, SECRET};

/// `shardlet admin meta ARGUMENTS --meta META` with the cluster secret in the
/// environment.
fn admin(arguments: &[&str], meta: &str) -> Output {
    shardlet_binary!()
        .command()
        .args(["admin", "meta"])
        .args(arguments)
        .args(["--meta", meta])
        .env("SHARDLET_CLUSTER_SECRET", SECRET)
        .env_remove("SHARDLET_KEYS")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn succeeds(arguments: &[&str], meta: &str) -> String {
    let output = admin(arguments, meta);
    assert!(output.status.success(), "{arguments:?}: {}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn refused(arguments: &[&str], meta: &str, because: &str) {
    let output = admin(arguments, meta);
    let all = text(&output);
    assert!(
        !output.status.success(),
        "{arguments:?} must be refused: {all}"
    );
    assert!(
        all.contains(because),
        "{arguments:?}: expected {because:?} in {all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_grows_one_member_to_three_and_every_unsafe_change_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let first = start_member(1, root.path(), true, &[]).await;
    let second = start_member(2, root.path(), false, &[]).await;
    let third = start_member(3, root.path(), false, &[]).await;
    wait_ready(&first).await;
    let meta = first.address.clone();
    let meta_for_blocking = meta.clone();
    let run = move |arguments: Vec<String>| {
        let meta = meta_for_blocking.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
                admin(&arguments, &meta)
            })
            .await
            .unwrap()
        }
    };
    let owned = |arguments: &[&str]| arguments.iter().map(|a| a.to_string()).collect::<Vec<_>>();

    let shown = succeeds(&["status"], &meta);
    assert!(
        shown.contains("leader 1") && shown.contains("1 voter(s)"),
        "{shown}"
    );

    // A member waiting to be added is live but not ready.
    let (code, _) = ready(&second.address).await.unwrap();
    assert_eq!(code, 503);
    let added = run(owned(&["add", "2", &second.address])).await;
    assert!(added.status.success(), "{}", text(&added));
    assert!(
        String::from_utf8_lossy(&added.stdout).contains("has caught up"),
        "{}",
        text(&added)
    );
    wait_ready(&second).await;
    succeeds(&["promote", "2"], &meta);
    let added = run(owned(&["add", "3", &third.address])).await;
    assert!(added.status.success(), "{}", text(&added));
    succeeds(&["promote", "3"], &meta);
    let after = status(&meta).await.unwrap();
    assert_eq!(after.voters.len(), 3, "{after:?}");
    let shown = succeeds(&["status"], &meta);
    for member in ["1", "2", "3"] {
        assert!(
            shown
                .lines()
                .any(|line| line.starts_with(member) && line.contains("voter")),
            "member {member} listed as a voter: {shown}"
        );
    }

    // Refusals: each names why, and changes nothing.
    refused(&["remove", "3"], &meta, "--force");
    refused(&["promote", "3"], &meta, "already a voter");
    refused(&["promote", "9"], &meta, "not in this cluster");
    refused(
        &["add", "2", "127.0.0.1:1"],
        &meta,
        "already in the cluster at",
    );
    let stranger = start_member(4, &root.path().join("other"), true, &[]).await;
    wait_ready(&stranger).await;
    refused(
        &["add", "4", &stranger.address],
        &meta,
        "already belongs to",
    );
    refused(&["add", "5", "not-an-address"], &meta, "");
    assert_eq!(
        status(&meta).await.unwrap().voters.len(),
        3,
        "nothing changed"
    );

    // With --force the operator may go to an even count.
    let removed = succeeds(&["remove", "3", "--force"], &meta);
    assert!(removed.contains("no longer in the cluster"), "{removed}");
    let after = status(&meta).await.unwrap();
    assert_eq!(after.voters.into_iter().collect::<Vec<_>>(), vec![1, 2]);
    assert!(after.learners.is_empty());
}
