#!/usr/bin/env bash
# Installs what the build, the tests or the benchmarks need, idempotently and quickly
# when everything is already present. Usage: scripts/install-deps.sh [test|bench|run]...
#
# Every tool is checked first and installed only when missing, so a second run costs a
# few dpkg/pip look-ups and nothing else.
set -euo pipefail

want_apt=()
want_pip=()

need_deb() { # need_deb <package>...
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || want_apt+=("$package")
    done
}

need_pip() { # need_pip <module> <pip requirement>
    python3 -c "import $1" 2>/dev/null || want_pip+=("$2")
}

for purpose in "${@:-test}"; do
    case "$purpose" in
        test)
            # Compilers for the C parts of reed-solomon-erasure (simd-accel); clang and
            # libclang for RocksDB's bindgen (meta-raft); strace for the test that checks
            # the storage node's fsync/rename/ack syscall order; the real S3 clients of
            # the gateway's end-to-end tests: Debian's aws CLI v2, rclone, s3cmd, curl
            # (presigned URLs), and boto3 (latest, with its default CRC checksums);
            # prometheus: promtool for the alert rules' unit tests and the server the
            # observability suite scrapes `shardlet dev` with.
            need_deb gcc g++ make pkg-config clang libclang-dev strace awscli rclone s3cmd curl
            need_deb prometheus
            need_pip boto3 boto3
            # The chart's checks (scripts/chart_check.py, make test's `chart` phase): the
            # real Helm library, Kubernetes' schemas, and check-jsonschema for the
            # vendored CRD schemas. Pinned: chart_check refuses other versions.
            need_pip helm_python helm-python-sdk==0.2.2
            need_pip kubernetes_validate kubernetes-validate==1.33.1
            need_pip check_jsonschema check-jsonschema==0.33.3
            ;;
        run)
            need_deb gcc g++ make pkg-config clang libclang-dev
            ;;
        bench)
            # etcd-server: the reference the metadata benchmark compares against.
            need_deb gcc g++ make pkg-config iperf3 clang libclang-dev etcd-server
            ;;
        *)
            echo "install-deps: unknown purpose '$purpose' (expected test, bench or run)" >&2
            exit 2
            ;;
    esac
done

# fail <step> <what went wrong> <what to do>
fail() {
    {
        echo "install-deps: step '$1' failed: $2"
        echo "install-deps: what to do: $3"
    } >&2
    exit 1
}

if [ ${#want_apt[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "install-deps: apt-get install ${want_apt[*]}"
    $sudo apt-get update -qq \
        || fail "apt-get update" "the Debian package lists could not be refreshed" \
            "check that the Debian mirror in /etc/apt/sources.list is reachable, then run make again"
    for package in "${want_apt[@]}"; do
        apt-cache show "$package" >/dev/null 2>&1 \
            || fail "apt-get install" "Debian package '$package' is unknown to apt" \
                "this script expects Debian 12 (bookworm); install '$package' (or its equivalent) by hand"
    done
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want_apt[@]}" >/dev/null \
        || fail "apt-get install" "installing ${want_apt[*]} failed (apt's message is above)" \
            "run 'apt-get install ${want_apt[*]}' as root to see why, fix it, then run make again"
fi

if [ ${#want_pip[@]} -gt 0 ]; then
    echo "install-deps: pip install ${want_pip[*]}"
    python3 -m pip install -q --disable-pip-version-check "${want_pip[@]}" \
        || fail "pip install" "installing the Python packages ${want_pip[*]} failed (pip's message is above)" \
            "check that PyPI is reachable (python3 -m pip download ${want_pip[*]}), then run make again"
fi
