#!/usr/bin/env bash
# Installs the CPU part of libtorch 2.13.0 (the exact version `tch` 0.26 is built
# against) from PyPI wheels, because no libtorch download site is reachable from CI.
# Idempotent and fast when already installed: the VERSION file is written last, so an
# interrupted install (half-unzipped files) is simply redone on the next run.
#
# Layout produced under $SHARDLET_CACHE/libtorch (SHARDLET_CACHE defaults to
# $HOME/.cache/shardlet):
#   torch/lib, torch/include, torch/share   -> LIBTORCH=$SHARDLET_CACHE/libtorch/torch
#   nvidia/cu13/lib                         -> libcudart/libcupti, which libtorch_cpu.so
#                                              links even on a machine without a GPU
#   VERSION                                 -> "2.13.0" once everything above is complete
set -euo pipefail

torch_version="2.13.0"
cuda_runtime_version="13.0.96"
cuda_cupti_version="13.0.85"

cache="${SHARDLET_CACHE:-$HOME/.cache/shardlet}"
wheels="$cache/wheels"
target="$cache/libtorch"

if [ "$(cat "$target/VERSION" 2>/dev/null)" = "$torch_version" ]; then
    exit 0
fi

# unzip unpacks the wheels; pip downloads them (only if not cached); the DejaVu font
# lets the evaluation's PR curve PNG carry text (it is drawn without text otherwise).
want_apt=()
command -v unzip >/dev/null || want_apt+=(unzip)
python3 -m pip --version >/dev/null 2>&1 || want_apt+=(python3-pip)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || want_apt+=(fonts-dejavu-core)
if [ ${#want_apt[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "install-libtorch: apt-get install ${want_apt[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want_apt[@]}" >/dev/null
fi

mkdir -p "$wheels"
# find_wheel <glob>: prints the one downloaded wheel matching the glob, if any.
find_wheel() {
    compgen -G "$wheels/$1" | head -n 1 || true
}
download() { # download <glob> <pip requirement>
    if [ -z "$(find_wheel "$1")" ]; then
        echo "install-libtorch: pip download $2 (into $wheels)"
        python3 -m pip download -q --disable-pip-version-check --no-deps \
            --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
            --dest "$wheels" "$2"
    fi
}
download "torch-${torch_version}-*.whl" "torch==${torch_version}"
download "nvidia_cuda_runtime-${cuda_runtime_version}*.whl" "nvidia-cuda-runtime==${cuda_runtime_version}.*"
download "nvidia_cuda_cupti-${cuda_cupti_version}*.whl" "nvidia-cuda-cupti==${cuda_cupti_version}.*"

echo "install-libtorch: unpacking libtorch ${torch_version} into $target"
rm -rf "$target"
mkdir -p "$target"
unzip -q -o "$(find_wheel "torch-${torch_version}-*.whl")" 'torch/lib/*' 'torch/include/*' 'torch/share/*' -d "$target"
for glob in "nvidia_cuda_runtime-${cuda_runtime_version}*.whl" "nvidia_cuda_cupti-${cuda_cupti_version}*.whl"; do
    unzip -q -o "$(find_wheel "$glob")" 'nvidia/*' -d "$target"
done
# Without the CUDA libraries present, torch-sys links the CPU library only; the Python
# binding is useless to Rust. This also saves ~1 GB of disk.
rm -f "$target"/torch/lib/libtorch_cuda*.so "$target"/torch/lib/libc10_cuda.so \
    "$target"/torch/lib/libtorch_nvshmem.so "$target"/torch/lib/libtorch_python.so

# Written last: its presence means every step above completed.
echo "$torch_version" > "$target/VERSION.tmp"
mv "$target/VERSION.tmp" "$target/VERSION"
echo "install-libtorch: done (LIBTORCH=$target/torch)"
