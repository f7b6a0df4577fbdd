//! The commit `shardlet_build_info` reports: `git rev-parse HEAD` when the source is a
//! git checkout with git installed, else "unknown" (a source tarball, a container build
//! without `.git`). `main` hands it to `shardlet_net::process_metrics`.
//!
//! The same few lines are in predictor/build.rs (the other binary); build scripts
//! cannot share a module without a crate of their own.

use std::process::Command;

fn git(arguments: &[&str]) -> Option<String> {
    let output = Command::new("git").args(arguments).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Rebuilt when HEAD moves: HEAD itself (a checkout), the branch it points at (a
    // commit), and packed refs (a gc). Paths from git, so a worktree works too.
    let mut watched = Vec::new();
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        watched.push(format!("{git_dir}/HEAD"));
    }
    if let (Some(common), Some(reference)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ) {
        watched.push(format!("{common}/{reference}"));
        watched.push(format!("{common}/packed-refs"));
    }
    // A path that does not exist would make cargo rerun this script on every build.
    for path in watched
        .iter()
        .filter(|path| std::path::Path::new(path).exists())
    {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rustc-env=SHARDLET_BUILD_COMMIT={commit}");
}
