#!/usr/bin/env bash
# Proves the dependency installers work on a machine that has nothing cached: CI's own
# cache (~/.cache/shardlet) would otherwise hide a broken download, as it once did
# (issue 12: the CUDA wheels stopped resolving while CI stayed green).
#
# 1. libtorch from nothing: scripts/install-libtorch.sh into an empty SHARDLET_CACHE
#    (pip's own cache bypassed too), then its --check (VERSION marker, every library
#    the predictor links, every dependency of those resolvable). ~540 MB downloaded.
# 2. Bad input to the installer fails loudly: a cached wheel whose sha256 is not the
#    pinned one is refused, naming the file and both hashes; an unreachable package
#    index fails naming the step and the package; an unknown argument is refused.
# Everything it creates is removed at the end. RocksDB is not rebuilt: it comes from
# crates.io through cargo, which needs no installer.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch="$(mktemp -d "${TMPDIR:-/tmp}/shardlet-check-install.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
started=$SECONDS

expect_failure() { # expect_failure <what> <needle>... -- <command>...
    local what="$1"
    shift
    local needles=()
    while [ "$1" != "--" ]; do needles+=("$1"); shift; done
    shift
    local output
    if output="$("$@" 2>&1)"; then
        echo "check-install: FAILED: $what succeeded but must fail" >&2
        exit 1
    fi
    local needle
    for needle in "${needles[@]}"; do
        if ! grep -qF -- "$needle" <<<"$output"; then
            echo "check-install: FAILED: $what: the error does not mention '$needle'; it was:" >&2
            echo "$output" >&2
            exit 1
        fi
    done
    echo "check-install: ok: $what"
}

echo "check-install: libtorch into an empty cache ($scratch/fresh)"
SHARDLET_CACHE="$scratch/fresh" PIP_NO_CACHE_DIR=1 scripts/install-libtorch.sh
SHARDLET_CACHE="$scratch/fresh" scripts/install-libtorch.sh --check
# Idempotent: a second run with the install present does nothing and succeeds.
SHARDLET_CACHE="$scratch/fresh" scripts/install-libtorch.sh

torch_wheel="$(sed -n 's/^    "torch|[^|]*|\([^|]*\)|\([0-9a-f]*\)"$/\1/p' scripts/install-libtorch.sh)"
torch_sha256="$(sed -n 's/^    "torch|[^|]*|[^|]*|\([0-9a-f]*\)"$/\1/p' scripts/install-libtorch.sh)"
[ -n "$torch_wheel" ] && [ -n "$torch_sha256" ] \
    || { echo "check-install: FAILED: cannot read the torch pin from scripts/install-libtorch.sh" >&2; exit 1; }

mkdir -p "$scratch/tampered/wheels"
echo "not a wheel" >"$scratch/tampered/wheels/$torch_wheel"
tampered_sha256="$(sha256sum "$scratch/tampered/wheels/$torch_wheel" | awk '{ print $1 }')"
expect_failure "a replaced wheel is refused" \
    "$torch_wheel" "$torch_sha256" "$tampered_sha256" "verify torch" -- \
    env SHARDLET_CACHE="$scratch/tampered" scripts/install-libtorch.sh
[ ! -e "$scratch/tampered/libtorch/VERSION" ] \
    || { echo "check-install: FAILED: a refused wheel left a VERSION marker" >&2; exit 1; }

expect_failure "an unreachable index names the step and the package" \
    "download torch" "torch==" -- \
    env SHARDLET_CACHE="$scratch/offline" PIP_INDEX_URL=http://127.0.0.1:9/simple \
    PIP_FIND_LINKS= PIP_RETRIES=0 PIP_NO_CACHE_DIR=1 scripts/install-libtorch.sh

expect_failure "an unknown argument is refused" "unknown argument" -- \
    scripts/install-libtorch.sh --frobnicate

expect_failure "--check on an empty cache fails" "VERSION" -- \
    env SHARDLET_CACHE="$scratch/empty" scripts/install-libtorch.sh --check

echo "check-install: passed in $((SECONDS - started)) s"
