//! rclone and s3cmd sync a directory tree (nested directories, a few hundred files of
//! 0 bytes to a few MiB, names with spaces and non-ASCII letters) up to the gateway and
//! back into an empty directory; every file must come back byte-identical.

use std::path::Path;
use std::time::Duration;

use shardlet_testkit::{pattern_bytes, shardlet_binary, Cluster, S3Access};

use crate::tools;

const FILE_COUNT: usize = 300;
const SYNC_DEADLINE: Duration = Duration::from_secs(240);
const NODE_COUNT: usize = 12;

/// Writes the tree: mostly small files, some empty, some of 1–3 MiB (several shardlets).
fn write_tree(root: &Path) {
    let directories = [
        "",
        "docs",
        "docs/guides",
        "docs/guides/deep",
        "images",
        "images/2026/11",
        "with space",
        "ünïcödé",
    ];
    for index in 0..FILE_COUNT {
        let directory = root.join(directories[index % directories.len()]);
        std::fs::create_dir_all(&directory).unwrap();
        let size = match index % 50 {
            0 | 10 | 20 | 30 | 40 => 0,
            7 => 3 * 1024 * 1024 + index,
            13 | 37 => 1024 * 1024 + index,
            _ => (index * 7919) % 20_000 + 1,
        };
        let name = match index % 25 {
            3 => format!("file {index} with spaces.txt"),
            4 => format!("plus+{index}.bin"),
            _ => format!("file-{index:03}.bin"),
        };
        std::fs::write(directory.join(name), pattern_bytes(size, index as u64)).unwrap();
    }
}

fn rclone(config: &Path, arguments: &[&str]) -> tools::Finished {
    let mut command = tools::client_command(&tools::program("SHARDLET_TEST_RCLONE", &["rclone"]));
    command
        .arg("--config")
        .arg(config)
        // One attempt each: a retry would hide the gateway's first answer.
        .args(["--retries", "1", "--low-level-retries", "1"])
        .args(arguments);
    let finished = tools::run(command, SYNC_DEADLINE);
    finished.assert_success();
    finished
}

fn s3cmd(config: &Path, arguments: &[&str]) -> tools::Finished {
    let mut command = tools::client_command(&tools::program("SHARDLET_TEST_S3CMD", &["s3cmd"]));
    command
        .arg("--config")
        .arg(config)
        .arg("--no-progress")
        .args(arguments);
    let finished = tools::run(command, SYNC_DEADLINE);
    finished.assert_success();
    finished
}

fn write_rclone_config(path: &Path, access: &S3Access) {
    std::fs::write(
        path,
        format!(
            "[shardlet]\ntype = s3\nprovider = Other\naccess_key_id = {}\nsecret_access_key = {}\nendpoint = {}\nregion = {}\nforce_path_style = true\n",
            access.access_key, access.secret_key, access.endpoint, access.region
        ),
    )
    .unwrap();
}

fn write_s3cmd_config(path: &Path, access: &S3Access) {
    let host = access.endpoint.trim_start_matches("http://");
    std::fs::write(
        path,
        format!(
            "[default]\naccess_key = {}\nsecret_key = {}\nhost_base = {host}\nhost_bucket = {host}\nuse_https = False\nsignature_v2 = False\nbucket_location = {}\n",
            access.access_key, access.secret_key, access.region
        ),
    )
    .unwrap();
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temporary paths")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_and_s3cmd_sync_a_tree_up_and_back_byte_identical() {
    let cluster = Cluster::start(&shardlet_binary!(), NODE_COUNT).await;
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("source");
    write_tree(&source);
    assert_eq!(tools::relative_files(&source).len(), FILE_COUNT);

    // rclone: sync up, check (rclone compares sizes and MD5 ETags), sync back.
    let rclone_config = scratch.path().join("rclone.conf");
    write_rclone_config(&rclone_config, &cluster.access);
    rclone(&rclone_config, &["mkdir", "shardlet:rclone"]);
    rclone(
        &rclone_config,
        &["sync", path_text(&source), "shardlet:rclone/tree"],
    );
    rclone(
        &rclone_config,
        &["check", path_text(&source), "shardlet:rclone/tree"],
    );
    let listed = rclone(
        &rclone_config,
        &["lsf", "-R", "--files-only", "shardlet:rclone/tree"],
    );
    assert_eq!(
        listed.stdout().lines().count(),
        FILE_COUNT,
        "rclone lsf:\n{}",
        listed.stdout()
    );
    let back = scratch.path().join("rclone-back");
    rclone(
        &rclone_config,
        &["sync", "shardlet:rclone/tree", path_text(&back)],
    );
    tools::assert_same_tree(&source, &back, "rclone round trip");

    // s3cmd: the same tree, its own bucket.
    let s3cmd_config = scratch.path().join("s3cmd.conf");
    write_s3cmd_config(&s3cmd_config, &cluster.access);
    s3cmd(&s3cmd_config, &["mb", "s3://s3cmd"]);
    s3cmd(
        &s3cmd_config,
        &[
            "sync",
            &format!("{}/", path_text(&source)),
            "s3://s3cmd/tree/",
        ],
    );
    let listed = s3cmd(&s3cmd_config, &["ls", "--recursive", "s3://s3cmd/tree/"]);
    assert_eq!(
        listed.stdout().lines().count(),
        FILE_COUNT,
        "s3cmd ls:\n{}",
        listed.stdout()
    );
    let back = scratch.path().join("s3cmd-back");
    std::fs::create_dir_all(&back).unwrap();
    s3cmd(
        &s3cmd_config,
        &[
            "sync",
            "s3://s3cmd/tree/",
            &format!("{}/", path_text(&back)),
        ],
    );
    tools::assert_same_tree(&source, &back, "s3cmd round trip");

    // A second sync up finds nothing to send (sizes and ETags match what it uploaded).
    let again = s3cmd(
        &s3cmd_config,
        &[
            "sync",
            "--dry-run",
            &format!("{}/", path_text(&source)),
            "s3://s3cmd/tree/",
        ],
    );
    let uploads = again
        .stdout()
        .lines()
        .filter(|line| line.starts_with("upload:"))
        .count();
    assert_eq!(
        uploads,
        0,
        "second s3cmd sync would upload:\n{}",
        again.stdout()
    );
}
