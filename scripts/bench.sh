#!/usr/bin/env bash
# Every benchmark of the repository, with short bounded times so the whole run takes a
# few minutes on 2 cores (after the first release build), then one summary. Called by
# `make bench`. Full criterion reports stay in $CARGO_TARGET_DIR/criterion; each
# benchmark's console output is kept in $BENCH_LOG_DIR.
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/shardlet/target), SHARDLET_BENCH_SECONDS
# (per-phase bound of the node load bench, default 10), SHARDLET_BENCH_DIR (where the
# node keeps its data during the bench; must be a real disk, default /var/tmp),
# SHARDLET_BENCH_REPAIR_BYTES (user data on the 12-node repair cluster, default 2 GiB),
# SHARDLET_LOAD_SECONDS / _LARGE_OBJECTS / _SMALL_OBJECTS / _TTFB_GETS (the S3 load
# generator's bounds, see cli/benches/s3_load/main.rs), META_SNAPSHOT_RECORDS /
# META_SNAPSHOT_VALUE_BYTES (the metadata snapshot bench, cli/benches/meta_snapshot.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shardlet/target}"
CARGO="${CARGO:-cargo}"
BENCH_LOG_DIR="${BENCH_LOG_DIR:-$CARGO_TARGET_DIR/bench-logs}"
mkdir -p "$BENCH_LOG_DIR"
SUMMARY="$BENCH_LOG_DIR/summary.txt"
: > "$SUMMARY"

# Short criterion runs: ~40 benchmarks x (0.5 s warm-up + ~1 s measuring) is about a
# minute per core, enough for the orders of magnitude these numbers are used for.
CRITERION_ARGS=(--warm-up-time 0.5 --measurement-time 1 --sample-size 10 --noplot)

echo "== building benchmarks (release profile; the first build takes several minutes)"
# --workspace everywhere: features resolve as in `make test` and `make run`, so every
# bench shares one set of compiled dependencies instead of one per package.
"$CARGO" bench --workspace --no-run

started=$SECONDS

# Turns criterion's console output into "benchmark | time | throughput" lines.
criterion_summary() {
    awk '
        /^[^ \t]/ { in_change = 0 }
        /^[^ \t]/ && !/^(Benchmarking|Found|Warning|Gnuplot|  )/ {
            name = $0; sub(/[ \t]+time:.*/, "", name)
        }
        # "change:" blocks compare with an earlier run (percentages): not results.
        /change:/ { in_change = 1 }
        /time:/ && !in_change { match($0, /\[[^]]*\]/); split(substr($0, RSTART + 1, RLENGTH - 2), t, " ");
                  time = t[3] " " t[4] }
        /thrpt:/ && !in_change { match($0, /\[[^]]*\]/); split(substr($0, RSTART + 1, RLENGTH - 2), r, " ");
                   printf "  %-60s %12s  %s\n", name, time, r[3] " " r[4]; time = "" }
    '
}

for bench in codec placement; do
    echo "== shardlet-core: $bench"
    "$CARGO" bench -q --workspace --bench "$bench" -- "${CRITERION_ARGS[@]}" \
        2>&1 | tee "$BENCH_LOG_DIR/$bench.log"
    {
        echo "shardlet-core $bench (median time, median throughput):"
        criterion_summary < "$BENCH_LOG_DIR/$bench.log"
    } >> "$SUMMARY"
done

echo "== loopback TCP with iperf3 (a second opinion on the machine limit)"
if command -v iperf3 >/dev/null; then
    port=$((20000 + RANDOM % 20000))
    iperf3 --server --one-off --port "$port" >/dev/null 2>&1 &
    iperf3_pid=$!
    trap 'kill "$iperf3_pid" 2>/dev/null || true' EXIT
    iperf3_line=""
    for _attempt in 1 2 3 4 5 6 7 8 9 10; do
        if iperf3_line=$(iperf3 --client 127.0.0.1 --port "$port" --time 3 --format M 2>/dev/null \
                | grep receiver); then
            break
        fi
        sleep 0.2 # the one-off server is still starting: a bounded retry, not a sync
    done
    kill "$iperf3_pid" 2>/dev/null || true
    echo "iperf3 loopback, 1 stream: $(echo "$iperf3_line" | awk '{print $7, $8}')" | tee -a "$SUMMARY"
else
    echo "iperf3 not installed (scripts/install-deps.sh bench installs it)" | tee -a "$SUMMARY"
fi

echo "== storage node load (a real node process, fsync on)"
"$CARGO" bench -q --workspace --bench storage_node_load 2>&1 | tee "$BENCH_LOG_DIR/storage_node_load.log"
{
    echo "storage node load:"
    grep '^|' "$BENCH_LOG_DIR/storage_node_load.log" | sed 's/^/  /'
    grep '^RESULT' "$BENCH_LOG_DIR/storage_node_load.log"
} >> "$SUMMARY"

echo "== predictor: training throughput and sidecar scoring latency"
"$CARGO" bench -q --workspace --bench predictor 2>&1 | tee "$BENCH_LOG_DIR/predictor.log"
{
    echo "predictor:"
    grep -E '^\|' "$BENCH_LOG_DIR/predictor.log" | sed 's/^/  /' || true
} >> "$SUMMARY"

echo "== metadata service load vs etcd 3.4 (real processes, fsync on)"
"$CARGO" bench -q --workspace --bench meta_load 2>&1 | tee "$BENCH_LOG_DIR/meta_load.log"
{
    echo "metadata service load (shardlet meta vs etcd):"
    grep -E '^ *(members|[0-9]+ )|^machine|ratio' "$BENCH_LOG_DIR/meta_load.log" | sed 's/^/  /'
} >> "$SUMMARY"

echo "== metadata snapshots: build and install of META_SNAPSHOT_RECORDS records (default 200 000), peak RSS, disk bound"
"$CARGO" bench -q --workspace --bench meta_snapshot 2>&1 | tee "$BENCH_LOG_DIR/meta_snapshot.log"
{
    echo "metadata snapshots (streamed build, chunked transfer, bounded-batch install):"
    grep -E '^(disk|records|build|install)' "$BENCH_LOG_DIR/meta_snapshot.log" | sed 's/^/  /'
} >> "$SUMMARY"

echo "== repair: one of 12 nodes killed, time to full redundancy (SHARDLET_BENCH_REPAIR_BYTES, default 2 GiB)"
"$CARGO" bench -q --workspace --bench repair 2>&1 | tee "$BENCH_LOG_DIR/repair.log"
{
    echo "repair after losing one of 12 nodes:"
    grep -E '^(repair|one at a time|parallel|loopback|disk|speed-up)' "$BENCH_LOG_DIR/repair.log" | sed 's/^/  /'
} >> "$SUMMARY"

echo "== rebalance: 1 node added to 12, then the busiest drained (SHARDLET_BENCH_REBALANCE_BYTES, default 1 GiB)"
"$CARGO" bench -q --workspace --bench rebalance 2>&1 | tee "$BENCH_LOG_DIR/rebalance.log"
{
    echo "rebalance (bytes moved against the ideal, time, machine bounds):"
    grep -E '^(step|add 1 node|drain the|rebalance |loopback|disk)' "$BENCH_LOG_DIR/rebalance.log" | sed 's/^/  /'
} >> "$SUMMARY"

echo "== S3 load against shardlet dev (real processes, fsync on; every GET verified)"
"$CARGO" bench -q --workspace --bench s3_load 2>&1 | tee "$BENCH_LOG_DIR/s3_load.log"
{
    echo "S3 load (shardlet dev: meta + 12 nodes + gateway):"
    grep -E '^(\||machine|load average|  )' "$BENCH_LOG_DIR/s3_load.log" | sed 's/^/  /'
    grep '^RESULT bench=s3_load' "$BENCH_LOG_DIR/s3_load.log"
} >> "$SUMMARY"

echo
echo "================ summary ($((SECONDS - started)) s of benchmarking; logs in $BENCH_LOG_DIR)"
cat "$SUMMARY"
