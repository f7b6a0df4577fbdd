//! Bakes libtorch's library directories into the binary's rpath, so that
//! `shardlet-predictor` (and the tests and benchmarks) run without LD_LIBRARY_PATH.
//! Only when the `lstm` feature is on: without it nothing links libtorch.
//!
//! Also the commit `shardlet_build_info` reports (the same lines as cli/build.rs).

use std::path::PathBuf;
use std::process::Command;

fn git(arguments: &[&str]) -> Option<String> {
    let output = Command::new("git").args(arguments).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn build_commit() {
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
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

fn main() {
    build_commit();
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_LSTM").is_none() {
        return;
    }
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        // torch-sys itself fails with a clear message when it cannot find libtorch.
        return;
    };
    let torch_lib = libtorch.join("lib");
    // scripts/install-libtorch.sh puts libcudart/libcupti (which libtorch_cpu.so links
    // even on CPU-only machines) beside the torch directory.
    let mut directories = vec![torch_lib];
    if let Some(root) = libtorch.parent() {
        for cuda in [
            "nvidia/cu13/lib",
            "nvidia/cuda_runtime/lib",
            "nvidia/cuda_cupti/lib",
        ] {
            let directory = root.join(cuda);
            if directory.is_dir() {
                directories.push(directory);
            }
        }
    }
    let joined: Vec<String> = directories
        .iter()
        .map(|directory| directory.display().to_string())
        .collect();
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", joined.join(":"));
}
