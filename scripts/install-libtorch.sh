#!/usr/bin/env bash
# Installs the CPU part of libtorch 2.13.0 (the exact version `tch` 0.26 is built
# against) from PyPI wheels, because no libtorch download site is reachable from CI.
# Idempotent and fast when already installed: the VERSION file is written last, so an
# interrupted install (half-unzipped files) is simply redone on the next run.
#
# Usage: scripts/install-libtorch.sh [--check]
#   --check  only verify an existing install (VERSION marker, every library the
#            predictor links, every link of those libraries resolvable); exit 1 if not.
#
# Layout produced under $SHARDLET_CACHE/libtorch (SHARDLET_CACHE defaults to
# $HOME/.cache/shardlet):
#   torch/lib, torch/include, torch/share   -> LIBTORCH=$SHARDLET_CACHE/libtorch/torch
#   nvidia/cu13/lib                         -> libcudart/libcupti, which libtorch_cpu.so
#                                              links even on a machine without a GPU
#   VERSION                                 -> "2.13.0" once everything above is complete
#
# The three wheels are pinned by file name and sha256. A wheel that was re-tagged,
# replaced or truncated fails here, naming the file and both hashes, instead of being
# unpacked. pip runs in hash-checking mode too, so it refuses a mismatch while
# downloading; the script checks again before unpacking, because the wheel cache
# outlives any one download.
set -euo pipefail

torch_version="2.13.0"

# name | pip requirement | wheel file | sha256 of the wheel file
# To move to new versions: `pip download --no-deps <requirement>`, then `sha256sum`.
wheels_pinned=(
    "torch|torch==2.13.0|torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl|60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7"
    "CUDA runtime|nvidia-cuda-runtime==13.0.96|nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl|7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548"
    "CUPTI|nvidia-cuda-cupti==13.0.85|nvidia_cuda_cupti-13.0.85-py3-none-manylinux_2_25_x86_64.whl|4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8"
)

# Every platform tag the pinned wheels carry. pip accepts a wheel only if one of its
# tags is listed; passing a single tag is what broke fresh installs (issue 12).
platforms=(manylinux_2_28_x86_64 manylinux_2_25_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64)

# The libraries the predictor links: torch-sys passes -ltorch_cpu -ltorch -lc10, and the
# CUDA libraries libtorch_cpu.so itself needs at load time. libtorch.so only has to be
# there for the linker: it is empty on a CPU build, so --as-needed drops it (its own
# DT_NEEDED on the deleted libtorch_cuda.so never matters).
libraries_required=(
    torch/lib/libtorch.so
    torch/lib/libtorch_cpu.so
    torch/lib/libc10.so
    nvidia/cu13/lib/libcudart.so.13
    nvidia/cu13/lib/libcupti.so.13
)
# The libraries loaded when the predictor runs: each must resolve every dependency.
libraries_loaded=(
    torch/lib/libtorch_cpu.so
    torch/lib/libc10.so
)

cache="${SHARDLET_CACHE:-$HOME/.cache/shardlet}"
wheels="$cache/wheels"
target="$cache/libtorch"

# fail <step> <what went wrong> <what to do>
fail() {
    {
        echo "install-libtorch: step '$1' failed: $2"
        echo "install-libtorch: what to do: $3"
    } >&2
    exit 1
}

# check_libraries: each required library is there, and every shared library those link
# against resolves within the install (or the system).
check_libraries() {
    local library missing
    for library in "${libraries_required[@]}"; do
        [ -f "$target/$library" ] \
            || fail "check" "$target/$library is missing" "delete $target and run scripts/install-libtorch.sh again"
    done
    for library in "${libraries_loaded[@]}"; do
        missing="$(LD_LIBRARY_PATH="$target/torch/lib:$target/nvidia/cu13/lib" ldd "$target/$library" \
            | awk '/not found/ { print $1 }' | tr '\n' ' ')"
        [ -z "$missing" ] \
            || fail "check" "$target/$library links libraries that are not installed: $missing" \
                "delete $target and run scripts/install-libtorch.sh again"
    done
}

# check_install: the VERSION marker (written last by an install), then the libraries.
check_install() {
    local found
    found="$(cat "$target/VERSION" 2>/dev/null || true)"
    [ "$found" = "$torch_version" ] \
        || fail "check" "$target/VERSION holds '${found:-nothing}', expected '$torch_version'" \
            "run scripts/install-libtorch.sh (it reinstalls into $target)"
    check_libraries
}

if [ "${1:-}" = "--check" ]; then
    check_install
    echo "install-libtorch: check passed ($target holds libtorch $torch_version and every library the predictor links)"
    exit 0
elif [ $# -gt 0 ]; then
    echo "install-libtorch: unknown argument '$1' (expected nothing or --check)" >&2
    exit 2
fi

if [ "$(cat "$target/VERSION" 2>/dev/null)" = "$torch_version" ]; then
    exit 0
fi

# unzip unpacks the wheels; pip downloads them (only if not cached); sha256sum checks
# them; ldd checks the result; the DejaVu font lets the evaluation's PR curve PNG carry
# text (it is drawn without text otherwise).
want_apt=()
command -v unzip >/dev/null || want_apt+=(unzip)
command -v sha256sum >/dev/null || want_apt+=(coreutils)
command -v ldd >/dev/null || want_apt+=(libc-bin)
python3 -m pip --version >/dev/null 2>&1 || want_apt+=(python3-pip)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || want_apt+=(fonts-dejavu-core)
if [ ${#want_apt[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "install-libtorch: apt-get install ${want_apt[*]}"
    { $sudo apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want_apt[@]}" >/dev/null; } \
        || fail "install tools" "apt-get install ${want_apt[*]} failed" \
            "install those Debian packages by hand (as root), then run make again"
fi

mkdir -p "$wheels" || fail "prepare" "cannot create $wheels" "set SHARDLET_CACHE to a writable directory"

# verify <name> <file> <sha256>: the file's hash must be the pinned one.
verify() {
    local actual
    actual="$(sha256sum "$2" | awk '{ print $1 }')"
    if [ "$actual" != "$3" ]; then
        fail "verify $1" "$2 has sha256 $actual, but $3 is pinned" \
            "if the wheel was replaced on PyPI, check the new one and update the pin in scripts/install-libtorch.sh; otherwise delete $2 and run again"
    fi
}

for entry in "${wheels_pinned[@]}"; do
    IFS='|' read -r name requirement file sha256 <<<"$entry"
    if [ ! -f "$wheels/$file" ]; then
        echo "install-libtorch: pip download $requirement ($file, into $wheels)"
        # Hash-checking mode: pip refuses any file whose sha256 is not the pinned one.
        # A partial download goes to a temporary directory first, so an interrupted
        # run never leaves a truncated wheel under the final name.
        staging="$(mktemp -d "$wheels/.download.XXXXXX")"
        printf '%s --hash=sha256:%s\n' "$requirement" "$sha256" >"$staging/requirements.txt"
        platform_flags=()
        for platform in "${platforms[@]}"; do platform_flags+=(--platform "$platform"); done
        if ! python3 -m pip download -q --disable-pip-version-check --no-cache-dir --no-deps \
            --only-binary=:all: --python-version 3.11 "${platform_flags[@]}" \
            --require-hashes -r "$staging/requirements.txt" --dest "$staging"; then
            rm -rf "$staging"
            fail "download $name" "pip could not download $requirement as $file with sha256 $sha256 (pip's message is above)" \
                "check that PyPI is reachable (pip download $requirement); if the wheel is gone or re-tagged, pin its replacement in scripts/install-libtorch.sh"
        fi
        [ -f "$staging/$file" ] \
            || { rm -rf "$staging"; fail "download $name" "pip downloaded something other than $file" \
                "pin the file pip now chooses for $requirement in scripts/install-libtorch.sh, with its sha256"; }
        mv "$staging/$file" "$wheels/$file"
        rm -rf "$staging"
    fi
    verify "$name" "$wheels/$file" "$sha256"
done

echo "install-libtorch: unpacking libtorch ${torch_version} into $target"
rm -rf "$target"
mkdir -p "$target"
for entry in "${wheels_pinned[@]}"; do
    IFS='|' read -r name requirement file sha256 <<<"$entry"
    case "$name" in
        torch) members=('torch/lib/*' 'torch/include/*' 'torch/share/*') ;;
        *) members=('nvidia/*') ;;
    esac
    unzip -q -o "$wheels/$file" "${members[@]}" -d "$target" \
        || fail "unpack $name" "unzip of $wheels/$file failed" "check the free space under $cache, delete $wheels/$file and run again"
done
# Without the CUDA libraries present, torch-sys links the CPU library only; the Python
# binding is useless to Rust. This also saves ~1 GB of disk.
rm -f "$target"/torch/lib/libtorch_cuda*.so "$target"/torch/lib/libc10_cuda.so \
    "$target"/torch/lib/libtorch_nvshmem.so "$target"/torch/lib/libtorch_python.so

check_libraries
# Written last: its presence means every step above completed.
echo "$torch_version" > "$target/VERSION.tmp"
mv "$target/VERSION.tmp" "$target/VERSION"
echo "install-libtorch: done (LIBTORCH=$target/torch)"
