//! The aws CLI (Debian's v2) against `shardlet dev`, started and configured exactly as
//! its printed `export` lines say: the first thing a developer tries.

use std::path::Path;

use shardlet_testkit::{pattern_bytes, shardlet_binary, DevCluster};

use crate::tools::{self, expected_etag, Aws, AWS_DEADLINE};

/// The aws CLI's default multipart threshold and part size (8 MiB).
const AWS_PART_BYTES: u64 = 8 * 1024 * 1024;
/// Past 100 MiB, and not a multiple of the part size: 13 parts, the last one short.
const LARGE_FILE_BYTES: usize = 100 * 1024 * 1024 + 12_345;

fn path_text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temporary paths")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_copies_lists_ranges_presigns_and_removes_on_shardlet_dev() {
    let dev = DevCluster::start(&shardlet_binary!()).await;
    let scratch = tempfile::tempdir().unwrap();
    let aws = Aws::new(&dev.access, scratch.path());
    let up = scratch.path().join("up");
    let down = scratch.path().join("down");
    std::fs::create_dir_all(&up).unwrap();
    std::fs::create_dir_all(&down).unwrap();
    let small = up.join("small.bin");
    let empty = up.join("empty");
    let large = up.join("large.bin");
    std::fs::write(&small, pattern_bytes(70_001, 1)).unwrap();
    std::fs::write(&empty, b"").unwrap();
    std::fs::write(&large, pattern_bytes(LARGE_FILE_BYTES, 2)).unwrap();

    // mb, then cp up: small, empty, and large (multipart at the CLI's 8 MiB threshold).
    aws.ok(&["s3", "mb", "s3://aws-cli"]);
    aws.ok(&["s3", "cp", path_text(&small), "s3://aws-cli/dir/small.bin"]);
    aws.ok(&["s3", "cp", path_text(&empty), "s3://aws-cli/dir/sub/empty"]);
    aws.ok(&[
        "s3",
        "cp",
        path_text(&large),
        "s3://aws-cli/large/large.bin",
    ]);

    // ls with prefixes: directories as PRE, files with sizes.
    let top = aws.ok(&["s3", "ls", "s3://aws-cli/"]).stdout();
    assert!(
        top.contains("PRE dir/") && top.contains("PRE large/"),
        "ls s3://aws-cli/:\n{top}"
    );
    let dir = aws.ok(&["s3", "ls", "s3://aws-cli/dir/"]).stdout();
    assert!(
        dir.contains(" 70001 small.bin") && dir.contains("PRE sub/"),
        "ls s3://aws-cli/dir/:\n{dir}"
    );
    let recursive = aws
        .ok(&["s3", "ls", "--recursive", "s3://aws-cli/"])
        .stdout();
    let listed: Vec<&str> = recursive
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .collect();
    assert_eq!(
        listed,
        ["dir/small.bin", "dir/sub/empty", "large/large.bin"],
        "ls --recursive:\n{recursive}"
    );
    let prefix = aws.ok(&["s3", "ls", "s3://aws-cli/dir/sm"]).stdout();
    assert!(
        prefix.contains("small.bin"),
        "ls with a key prefix:\n{prefix}"
    );

    // head-object: sizes and S3's ETags, computed independently.
    for (key, file, part_bytes) in [
        ("dir/small.bin", &small, 0),
        ("dir/sub/empty", &empty, 0),
        ("large/large.bin", &large, AWS_PART_BYTES),
    ] {
        let head = aws.head_object("aws-cli", key);
        assert_eq!(
            head["ContentLength"].as_u64(),
            Some(std::fs::metadata(file).unwrap().len()),
            "ContentLength of {key}: {head}"
        );
        assert_eq!(
            head["ETag"].as_str(),
            Some(expected_etag(file, part_bytes).as_str()),
            "ETag of {key}: {head}"
        );
    }

    // cp down, byte-identical.
    for (key, file) in [
        ("dir/small.bin", &small),
        ("dir/sub/empty", &empty),
        ("large/large.bin", &large),
    ] {
        let target = down.join(file.file_name().unwrap());
        aws.ok(&[
            "s3",
            "cp",
            &format!("s3://aws-cli/{key}"),
            path_text(&target),
        ]);
        assert!(
            std::fs::read(&target).unwrap() == std::fs::read(file).unwrap(),
            "{key} came back different"
        );
    }

    // get-object --range: exactly the bytes asked for, across a shardlet boundary.
    let ranged = down.join("ranged");
    let answer = aws
        .ok(&[
            "s3api",
            "get-object",
            "--bucket",
            "aws-cli",
            "--key",
            "large/large.bin",
            "--range",
            "bytes=2097000-2098999",
            path_text(&ranged),
        ])
        .json();
    let large_bytes = std::fs::read(&large).unwrap();
    assert_eq!(
        std::fs::read(&ranged).unwrap(),
        large_bytes[2_097_000..2_099_000],
        "ranged bytes"
    );
    assert_eq!(
        answer["ContentRange"].as_str(),
        Some(format!("bytes 2097000-2098999/{LARGE_FILE_BYTES}").as_str()),
        "Content-Range: {answer}"
    );

    // User metadata: put with s3api, read back with head-object.
    aws.ok(&[
        "s3api",
        "put-object",
        "--bucket",
        "aws-cli",
        "--key",
        "meta/object",
        "--body",
        path_text(&small),
        "--metadata",
        "colour=blue,team=storage",
    ]);
    let head = aws.head_object("aws-cli", "meta/object");
    assert_eq!(
        head["Metadata"],
        serde_json::json!({"colour": "blue", "team": "storage"}),
        "user metadata: {head}"
    );
    // And through `s3 cp --metadata` on a multipart upload.
    aws.ok(&[
        "s3",
        "cp",
        path_text(&large),
        "s3://aws-cli/meta/large",
        "--metadata",
        "origin=multipart",
    ]);
    let head = aws.head_object("aws-cli", "meta/large");
    assert_eq!(
        head["Metadata"],
        serde_json::json!({"origin": "multipart"}),
        "multipart user metadata: {head}"
    );

    // presign + curl; a tampered URL is refused.
    let url = aws
        .ok(&[
            "s3",
            "presign",
            "s3://aws-cli/dir/small.bin",
            "--expires-in",
            "300",
        ])
        .stdout()
        .trim()
        .to_string();
    let fetched = down.join("presigned");
    let mut curl = tools::client_command(&tools::program("SHARDLET_TEST_CURL", &["curl"]));
    curl.args(["--silent", "--show-error", "--fail", "--output"])
        .arg(&fetched)
        .arg(&url);
    tools::run(curl, AWS_DEADLINE).assert_success();
    assert!(
        std::fs::read(&fetched).unwrap() == std::fs::read(&small).unwrap(),
        "presigned GET returned different bytes"
    );
    let mut curl = tools::client_command(&tools::program("SHARDLET_TEST_CURL", &["curl"]));
    curl.args([
        "--silent",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code}",
    ])
    .arg(url.replace("small.bin", "other.bin"));
    let status = tools::run(curl, AWS_DEADLINE);
    assert_eq!(status.stdout(), "403", "a tampered presigned URL");

    // rm, then the object is gone (head-object: 404), and the bucket can go.
    aws.ok(&["s3", "rm", "s3://aws-cli/dir/small.bin"]);
    let gone = aws.run(&[
        "s3api",
        "head-object",
        "--bucket",
        "aws-cli",
        "--key",
        "dir/small.bin",
    ]);
    assert!(
        !gone.success() && gone.stderr().contains("404"),
        "head-object after rm: {}",
        gone.stderr()
    );
    let not_empty = aws.run(&["s3", "rb", "s3://aws-cli"]);
    assert!(
        !not_empty.success() && not_empty.stderr().contains("BucketNotEmpty"),
        "rb of a non-empty bucket: {}",
        not_empty.stderr()
    );
    aws.ok(&["s3", "rm", "--recursive", "s3://aws-cli/"]);
    // `aws s3 ls` exits 1 when nothing matches: look at what it printed instead.
    let left = aws.run(&["s3", "ls", "--recursive", "s3://aws-cli/"]);
    assert!(
        left.stdout().trim().is_empty() && !left.stderr().contains("rror"),
        "after rm --recursive:\n{}\n{}",
        left.stdout(),
        left.stderr()
    );
    aws.ok(&["s3", "rb", "s3://aws-cli"]);
    let buckets = aws.ok(&["s3", "ls"]).stdout();
    assert!(!buckets.contains("aws-cli"), "after rb:\n{buckets}");
}
