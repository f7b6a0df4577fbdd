//! Bakes libtorch's library directories into the binary's rpath, so that
//! `shardlet-predictor` (and the tests and benchmarks) run without LD_LIBRARY_PATH.
//! Only when the `lstm` feature is on: without it nothing links libtorch.

use std::path::PathBuf;

fn main() {
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
