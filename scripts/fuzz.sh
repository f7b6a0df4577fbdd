#!/usr/bin/env bash
# `make fuzz`: every cargo-fuzz target in fuzz/ for FUZZ_SECONDS each, one at a time, one
# process each (the machine's cores are shared), then one line per target with the
# executions libFuzzer did. Exits 1 if any target found a failing input; the input is
# in fuzz/artifacts/<target>/ (copy it to fuzz/regressions/<target>/ once fixed: the
# corpus replay tests of `make test` then keep it fixed).
#
# Environment:
#   FUZZ_SECONDS       seconds per target (default 60)
#   FUZZ_TARGETS       space-separated targets to run (default: all, `cargo fuzz list`)
#   FUZZ_RUNS          instead of a time, this many executions per target
#   FUZZ_MAX_LEN       longest input libFuzzer generates (default 4096 bytes)
#   FUZZ_SANITIZER     address (default), leak, memory, thread or none
#   FUZZ_GROW_CORPUS=1 keep the new interesting inputs in fuzz/corpus/<target>/ and
#                      minimise it afterwards to at most FUZZ_CORPUS_FILES_MAX inputs
#                      (default 300; scripts/fuzz-minimize.py); otherwise they go to a
#                      temporary directory and the committed corpus is only read
#   FUZZ_TARGET_DIR    the fuzz build's target directory (default
#                      $SHARDLET_CACHE/fuzz-target, outside the clone; the first build
#                      compiles RocksDB's C++ there, about 15 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."

SHARDLET_CACHE="${SHARDLET_CACHE:-$HOME/.cache/shardlet}"
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_MAX_LEN="${FUZZ_MAX_LEN:-4096}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-address}"
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$SHARDLET_CACHE/fuzz-target}"
# Every target, including those of crates that link RocksDB.
FEATURES=(--features with-rocksdb)

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "make fuzz: cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== make fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

fuzz() {
    cargo +nightly fuzz "$1" --fuzz-dir fuzz --target-dir "$FUZZ_TARGET_DIR" \
        --sanitizer "$FUZZ_SANITIZER" "${FEATURES[@]}" "${@:2}"
}

read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo +nightly fuzz list --fuzz-dir fuzz | tr '\n' ' ')}"
echo "== make fuzz: building ${#targets[@]} targets"
fuzz build

if [ -n "${FUZZ_RUNS:-}" ]; then
    limit=(-runs="$FUZZ_RUNS")
else
    limit=(-max_total_time="$FUZZ_SECONDS")
fi
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
summary=()
failed=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    if [ "${FUZZ_GROW_CORPUS:-0}" = 1 ]; then
        corpora=("$corpus")
    else
        corpora=("$logs/new-$target" "$corpus")
        mkdir -p "$logs/new-$target"
    fi
    [ -d "fuzz/regressions/$target" ] && corpora+=("fuzz/regressions/$target")
    echo "== make fuzz: $target"
    started=$SECONDS
    status=0
    fuzz run "$target" "${corpora[@]}" -- "${limit[@]}" -max_len="$FUZZ_MAX_LEN" \
        2>&1 | tee "$logs/$target.log" || status=$?
    # libFuzzer's last status line: "#<executions> DONE ..." (absent after a crash).
    executions=$(grep -oE '^#[0-9]+[[:space:]]+DONE' "$logs/$target.log" | tail -1 | tr -dc '0-9')
    if [ "$status" -ne 0 ] || [ -z "$executions" ]; then
        failed+=("$target")
        executions=$(grep -oE '^#[0-9]+' "$logs/$target.log" | tail -1 | tr -dc '0-9')
        summary+=("$(printf '%-16s %12s executions %5d s  FAILED (see fuzz/artifacts/%s/)' \
            "$target" "${executions:-0}" $((SECONDS - started)) "$target")")
        continue
    fi
    if [ "${FUZZ_GROW_CORPUS:-0}" = 1 ]; then
        python3 scripts/fuzz-minimize.py "$FUZZ_TARGET_DIR/$host/release/$target" "$corpus" \
            "${FUZZ_CORPUS_FILES_MAX:-300}"
    fi
    summary+=("$(printf '%-16s %12s executions %5d s  ok, corpus %d files' \
        "$target" "$executions" $((SECONDS - started)) "$(find "$corpus" -type f | wc -l)")")
done

echo "== make fuzz: executions per target"
printf '   %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "make fuzz: failing inputs found by: ${failed[*]}" >&2
    exit 1
fi
