#!/usr/bin/env bash
# `make clean-cache`: frees the disk that builds fill without touching what the next
# build reuses (compiled dependencies, RocksDB, libtorch).
#
# Removed from $CARGO_TARGET_DIR (default ~/.cache/shardlet/target):
# - superseded executables in {debug,release}/deps: every change to a crate's
#   dependencies gives its test and bench binaries a new hash and leaves the old ones
#   behind (hundreds of MB each). Of each name the newest is kept;
# - {debug,release}/incremental: rustc's incremental state, rebuilt on demand (the next
#   build of a workspace crate is a little slower);
# - tmp/clusters: data directories of test clusters a killed test run left behind.
set -euo pipefail

target="${CARGO_TARGET_DIR:-${SHARDLET_CACHE:-$HOME/.cache/shardlet}/target}"
if [ ! -d "$target" ]; then
    echo "clean-cache: $target does not exist; nothing to do"
    exit 0
fi
before="$(du -sb "$target" | awk '{ print $1 }')"

for profile in debug release; do
    deps="$target/$profile/deps"
    [ -d "$deps" ] || continue
    # Executables are named <crate>-<16 hex>; list newest first, keep the first of each.
    find "$deps" -maxdepth 1 -type f -perm -u+x -regextype posix-extended \
        -regex '.*/[A-Za-z0-9_]+-[0-9a-f]{16}' -printf '%T@ %p\n' \
        | sort -rn \
        | awk '{ path = $2; name = path; sub(/.*\//, "", name); sub(/-[0-9a-f]+$/, "", name);
                 if (seen[name]++) print path }' \
        | while read -r stale; do
            rm -f "$stale" "$stale.d"
        done
    rm -rf "$target/$profile/incremental"
done
rm -rf "$target/tmp/clusters"

after="$(du -sb "$target" | awk '{ print $1 }')"
echo "clean-cache: $target: $((before / 1048576)) MiB -> $((after / 1048576)) MiB"
