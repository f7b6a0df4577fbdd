#!/usr/bin/env python3
"""Makes docs/dashboard.png from real data: `shardlet dev`, a real Prometheus, load.

1. starts `shardlet dev` (12 storage nodes, metadata member, gateway, controller) on
   free ports in a scratch directory, and Debian's `prometheus` scraping every service's
   `/metrics` each second;
2. drives a PUT/GET mix through S3 with boto3 (objects of 4 KiB to 2 MiB, a third
   written as STANDARD_IA so erasure-coded shardlets appear, and some GETs of keys that
   do not exist so errors show), and part-way through kills one storage node with
   SIGKILL, so its fragments are read degraded and repaired;
3. draws the dashboard's panels over the run with scripts/dashboard_png.py;
4. stops Prometheus and `shardlet dev` by their pids (dev stops its children).

    cargo build -p shardlet
    python3 scripts/dashboard_demo.py --shardlet $CARGO_TARGET_DIR/debug/shardlet \\
        --out docs/dashboard.png

Needs boto3, matplotlib and `prometheus` (scripts/install-deps.sh test). Every request
goes to 127.0.0.1.
"""

import argparse
import math
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
NODES = 12
# Bounds of the load: it stops by itself.
OBJECT_BYTES_MIN = 4 * 1024
OBJECT_BYTES_MAX = 2 * 1024 * 1024
KEYS_MAX = 400
START_DEADLINE_SECONDS = 180


def port_run_free(base, count):
    for port in range(base, base + count):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_ports():
    """Ports below the ephemeral range, at random (as the test kit picks them)."""
    rng = random.Random()
    chosen = {}
    for name, count in (("s3", 1), ("admin", 1), ("meta", 1), ("controller", 1),
                        ("predictor", 1), ("prometheus", 1), ("nodes", NODES)):
        while True:
            base = rng.randrange(20000, 32000 - count)
            taken = any(base <= p < base + count or p <= base < p + 12 for p in chosen.values())
            if not taken and port_run_free(base, count):
                chosen[name] = base
                break
    return chosen


def wait_for(what, condition, deadline_seconds):
    give_up = time.monotonic() + deadline_seconds
    while time.monotonic() < give_up:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    sys.exit(f"dashboard_demo: gave up waiting for {what} after {deadline_seconds} s")


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def prometheus_config(ports):
    jobs = {
        "shardlet-gateway": [ports["admin"]],
        "shardlet-meta": [ports["meta"]],
        "shardlet-controller": [ports["controller"]],
        "shardlet-node": [ports["nodes"] + index for index in range(NODES)],
    }
    text = ("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            f"rule_files:\n  - {ROOT / 'helm/shardlet/alerts/shardlet.rules.yaml'}\n"
            "scrape_configs:\n")
    for job, job_ports in jobs.items():
        targets = ", ".join(f"'127.0.0.1:{port}'" for port in job_ports)
        text += f"  - job_name: {job}\n    static_configs:\n      - targets: [{targets}]\n"
    return text


def load(access, seconds, kill_at, kill):
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    s3 = boto3.client(
        "s3",
        endpoint_url=access["AWS_ENDPOINT_URL"],
        aws_access_key_id=access["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=access["AWS_SECRET_ACCESS_KEY"],
        region_name=access["AWS_REGION"],
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )
    s3.create_bucket(Bucket="demo")
    rng = random.Random(16)
    keys = []
    counts = {"put": 0, "get": 0, "errors": 0}
    start = time.monotonic()
    killed = False
    while time.monotonic() - start < seconds:
        elapsed = time.monotonic() - start
        if not killed and elapsed >= kill_at:
            kill()
            killed = True
        # Busier in the middle of the run, so the rate panels have a shape.
        pace = 0.05 + 0.25 * abs(math.sin(elapsed / seconds * math.pi))
        try:
            choice = rng.random()
            if choice < 0.4 or not keys:
                key = f"object-{rng.randrange(KEYS_MAX)}"
                size = int(OBJECT_BYTES_MIN * (OBJECT_BYTES_MAX / OBJECT_BYTES_MIN) ** rng.random())
                extra = {"StorageClass": "STANDARD_IA"} if rng.random() < 0.33 else {}
                s3.put_object(Bucket="demo", Key=key, Body=os.urandom(size), **extra)
                keys.append(key)
                counts["put"] += 1
            elif choice < 0.95:
                s3.get_object(Bucket="demo", Key=rng.choice(keys))["Body"].read()
                counts["get"] += 1
            else:
                s3.get_object(Bucket="demo", Key=f"missing-{rng.randrange(1000)}")
        except ClientError:
            counts["errors"] += 1
        time.sleep(pace * rng.random())
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shardlet", required=True, help="the shardlet binary")
    parser.add_argument("--out", default=str(ROOT / "docs/dashboard.png"))
    parser.add_argument("--load-seconds", type=float, default=300)
    parser.add_argument("--kill-node", type=int, default=5, help="storage node to SIGKILL")
    arguments = parser.parse_args()
    if not 30 <= arguments.load_seconds <= 3600:
        parser.error("--load-seconds must be between 30 and 3600")
    if not 1 <= arguments.kill_node <= NODES:
        parser.error(f"--kill-node must be between 1 and {NODES}")
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="shardlet-dashboard-"))
    ports = free_ports()
    environment = dict(os.environ, SHARDLET_INSECURE_PLAINTEXT="true", RUST_LOG="warn")
    for name in ("SHARDLET_CLUSTER_SECRET", "SHARDLET_KEYS"):
        environment.pop(name, None)
    dev_output = open(scratch / "dev.stdout", "w")
    dev = subprocess.Popen(
        [arguments.shardlet, "dev", "--data", str(scratch / "data"),
         "--s3-port", str(ports["s3"]), "--gateway-admin-port", str(ports["admin"]),
         "--meta-port", str(ports["meta"]), "--node-base-port", str(ports["nodes"]),
         "--controller-port", str(ports["controller"]),
         "--predictor-port", str(ports["predictor"])],
        stdout=dev_output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=environment,
    )
    prometheus = None
    try:
        def printed_access():
            text = (scratch / "dev.stdout").read_text()
            if dev.poll() is not None:
                sys.exit(f"dashboard_demo: shardlet dev exited:\n{text}")
            access = dict(
                line[len("export "):].split("=", 1)
                for line in text.splitlines() if line.startswith("export AWS_")
            )
            return access if "AWS_REGION" in access else None

        access = wait_for("shardlet dev's credentials", printed_access, START_DEADLINE_SECONDS)
        (scratch / "prometheus.yml").write_text(prometheus_config(ports))
        prometheus_url = f"http://127.0.0.1:{ports['prometheus']}"
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={scratch / 'prometheus.yml'}",
             f"--storage.tsdb.path={scratch / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
            stdout=open(scratch / "prometheus.log", "w"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_for("Prometheus ready", lambda: http_ok(f"{prometheus_url}/-/ready"), 60)
        started = time.time()

        def kill():
            pid = int((scratch / "data/logs" / f"node-{arguments.kill_node}.pid").read_text())
            print(f"dashboard_demo: SIGKILL storage node {arguments.kill_node} (pid {pid})")
            os.kill(pid, signal.SIGKILL)

        counts = load(access, arguments.load_seconds, arguments.load_seconds * 0.45, kill)
        print(f"dashboard_demo: load done: {counts}")
        # The last scrapes and rate windows after the load.
        time.sleep(15)
        minutes = (time.time() - started) / 60
        draw = subprocess.run(
            [sys.executable, str(ROOT / "scripts/dashboard_png.py"),
             "--prometheus", prometheus_url,
             "--dashboard", str(ROOT / "helm/shardlet/dashboards/shardlet.json"),
             "--minutes", f"{minutes:.2f}", "--scrape-interval", "1",
             "--out", arguments.out,
             "--title", f"Shardlet: shardlet dev under a PUT/GET mix, storage node "
                        f"{arguments.kill_node} killed at {arguments.load_seconds * 0.45 / 60:.1f} min "
                        f"({minutes:.1f} minutes, Prometheus scraping every 1 s)"],
        )
        print(f"dashboard_demo: wrote {arguments.out}; scratch {scratch}")
        return draw.returncode
    finally:
        if prometheus is not None:
            prometheus.kill()
            prometheus.wait()
        dev.send_signal(signal.SIGTERM)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dev.kill()
            dev.wait()


if __name__ == "__main__":
    sys.exit(main())
