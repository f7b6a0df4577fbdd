#!/usr/bin/env python3
"""Writes the Grafana dashboard helm/shardlet/dashboards/shardlet.json.

The dashboard is kept as this program rather than edited as JSON: panel ids, grid
positions and the repeated pieces (data source, namespace filter, the lease-holder
filter on controller gauges) are computed, so a new panel is a few lines here and the
JSON stays consistent. Run it after a change and commit both files:

    python3 scripts/dashboard_json.py

The test suite `observability` parses every expression of the written JSON with a real
PromQL parser and checks each metric it names against a running `shardlet dev`.
"""

import json
import pathlib
import sys

OUTPUT = pathlib.Path(__file__).resolve().parent.parent / "helm/shardlet/dashboards/shardlet.json"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Every selector carries the namespace filter; "All" is `.*`, which also matches series
# without a namespace label (a Prometheus outside Kubernetes, as in the tests).
NS = 'namespace=~"$namespace"'
RATE = "$__rate_interval"
NOT_OK = 'outcome!="ok"'


def sel(metric, *matchers):
    """A selector of `metric` with the namespace filter and `matchers`."""
    return metric + "{" + ",".join((NS,) + matchers) + "}"


def leader(expression):
    """`expression` (controller series) only from the controller holding the lease.

    Every controller exports its gauges, but only the lease holder's are computed by a
    running worker; a standby keeps whatever it last computed.
    """
    return (
        f"({expression}) and on(namespace, instance) "
        f"({sel('shardlet_controller_lease_active')} == 1)"
    )


def with_node(expression, labels="node"):
    """`expression` (storage-node series) with the node's name from shardlet_node_info."""
    return (
        f"({expression}) * on(namespace, instance) group_left({labels}) "
        f"{sel('shardlet_node_info')}"
    )


def with_service(expression):
    """`expression` (process series) with the service name from shardlet_build_info."""
    return (
        f"({expression}) * on(namespace, instance) group_left(service) "
        f"{sel('shardlet_build_info')}"
    )


def target(expression, legend=""):
    return {"expr": expression, "legendFormat": legend}


def thresholds(*steps):
    """Threshold steps: (None, "green"), (1, "red"), ..."""
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


GREEN_RED_AT_1 = thresholds((None, "green"), (1, "red"))


def fixed_color(name, color):
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}],
    }


STATE_COLORS = [
    fixed_color(state, color)
    for state, color in (
        ("up", "green"),
        ("suspect", "orange"),
        ("draining", "yellow"),
        ("down", "red"),
        ("decommissioned", "#8e8e8e"),
    )
]
# Shardlet's scrape targets: the chart's ServiceMonitor and the test's configuration
# both name their jobs with "shardlet" in them.
UP = sel("up", 'job=~".*shardlet.*"')


class Layout:
    """Places panels left to right, in rows of 24 columns, as Grafana's grid does."""

    def __init__(self):
        self.panels = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_height = 0

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def row(self, title):
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "id": self._id(),
                "title": title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            }
        )
        self.y += 1

    def _newline(self):
        self.y += self.row_height
        self.x = 0
        self.row_height = 0

    def _place(self, panel, width, height):
        if self.x + width > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": height, "w": width, "x": self.x, "y": self.y}
        panel["datasource"] = DATASOURCE
        for index, query in enumerate(panel["targets"]):
            query["refId"] = chr(ord("A") + index)
            query["datasource"] = DATASOURCE
        self.x += width
        self.row_height = max(self.row_height, height)
        self.panels.append(panel)

    def stat(self, title, description, targets, unit="none", steps=None, width=4, height=4):
        self._place(
            {
                "type": "stat",
                "title": title,
                "description": description,
                "targets": targets,
                "fieldConfig": {
                    "defaults": {
                        "unit": unit,
                        "color": {"mode": "thresholds"},
                        "thresholds": steps or thresholds((None, "blue")),
                    },
                    "overrides": [],
                },
                "options": {
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "background",
                    "graphMode": "none",
                    "textMode": "auto",
                    "justifyMode": "auto",
                    "orientation": "auto",
                },
            },
            width,
            height,
        )

    def graph(
        self,
        title,
        description,
        targets,
        unit="short",
        width=8,
        height=8,
        steps=None,
        log=False,
        stack=False,
        minimum=None,
        maximum=None,
        overrides=(),
    ):
        custom = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if stack else 0,
            "showPoints": "never",
            "spanNulls": True,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line" if steps else "off"},
        }
        if log:
            custom["scaleDistribution"] = {"type": "log", "log": 10}
        defaults = {
            "unit": unit,
            "custom": custom,
            "color": {"mode": "palette-classic"},
            "thresholds": steps or thresholds((None, "green")),
        }
        if minimum is not None:
            defaults["min"] = minimum
        if maximum is not None:
            defaults["max"] = maximum
        self._place(
            {
                "type": "timeseries",
                "title": title,
                "description": description,
                "targets": targets,
                "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
                "options": {
                    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"},
                },
            },
            width,
            height,
        )


def rate(metric, *matchers):
    return f"rate({sel(metric, *matchers)}[{RATE}])"


def increase(metric, *matchers):
    return f"increase({sel(metric, *matchers)}[{RATE}])"


def quantile(q, bucket, by=""):
    labels = "le" + (", " + by if by else "")
    return f"histogram_quantile({q}, sum by ({labels}) ({rate(bucket)}))"


def overview(d):
    d.row("Overview")
    d.stat(
        "Meta members with a leader",
        "Metadata members that know a current raft leader. 0 means quorum is lost: no "
        "write or listing can commit.",
        [target(f"sum({sel('shardlet_meta_raft_has_leader')})")],
        steps=thresholds((None, "red"), (1, "green")),
    )
    d.stat(
        "Meta members",
        "Metadata members scraped.",
        [target(f"count({sel('shardlet_meta_raft_has_leader')})")],
    )
    d.stat(
        "Lease holders",
        "Controllers holding the controller lease; exactly 1 is healthy (0: no repair, "
        "scrub or transition runs).",
        [target(f"sum({sel('shardlet_controller_lease_active')})")],
        steps=thresholds((None, "red"), (1, "green"), (2, "red")),
    )
    d.stat(
        "Unrecoverable shardlets",
        "Shardlets with fewer fragments left than they need to be read: data loss. "
        "Anything above 0 is an incident.",
        [target(f"max({leader(sel('shardlet_controller_unrecoverable_shardlets'))})")],
        steps=GREEN_RED_AT_1,
    )
    d.stat(
        "Below target",
        "Shardlets with less redundancy than their policy asks for: the repair backlog.",
        [target(f"max({leader(sel('shardlet_controller_shardlets_below_target'))})")],
        steps=thresholds((None, "green"), (1, "orange")),
    )
    d.stat(
        "Targets down",
        "Scrape targets of this namespace that do not answer.",
        [target(f"count({UP} == 0) or vector(0)")],
        steps=GREEN_RED_AT_1,
    )
    d.graph(
        "Nodes by state",
        "Storage nodes per state, as the lease-holding controller sees them.",
        [
            target(
                f"sum by (state) ({leader(sel('shardlet_controller_nodes'))})",
                "{{state}}",
            )
        ],
        width=12,
        stack=True,
        overrides=STATE_COLORS,
    )
    d.graph(
        "Lease holder",
        "Which controller holds the lease (1), over time.",
        [target(sel("shardlet_controller_lease_active"), "{{instance}}")],
        width=12,
        minimum=0,
        maximum=1,
    )


def s3(d):
    d.row("S3")
    d.graph(
        "Requests by operation",
        "S3 requests per second, by operation.",
        [
            target(
                f"sum by (operation) ({rate('shardlet_gateway_requests_total')})",
                "{{operation}}",
            )
        ],
        unit="reqps",
        stack=True,
        width=6,
    )
    d.graph(
        "Errors by outcome",
        "S3 requests per second that did not succeed, by S3 error code; access denials.",
        [
            target(
                f"sum by (outcome) ({rate('shardlet_gateway_requests_total', NOT_OK)})",
                "{{outcome}}",
            ),
            target(f"sum({rate('shardlet_gateway_access_denied_total')})", "AccessDenied"),
        ],
        unit="reqps",
        width=6,
    )
    d.graph(
        "Latency p50 / p99",
        "Time until the response head is sent, by operation.",
        [
            target(
                quantile(0.5, "shardlet_gateway_request_seconds_bucket", "operation"),
                "p50 {{operation}}",
            ),
            target(
                quantile(0.99, "shardlet_gateway_request_seconds_bucket", "operation"),
                "p99 {{operation}}",
            ),
        ],
        unit="s",
        width=6,
    )
    d.graph(
        "Bytes in / out",
        "Object bytes written by clients (in) and read by clients (out).",
        [
            target(f"sum({rate('shardlet_gateway_written_bytes_total')})", "in (written)"),
            target(f"sum({rate('shardlet_gateway_read_bytes_total')})", "out (read)"),
        ],
        unit="Bps",
        width=6,
    )
    d.row("Data path")
    d.graph(
        "Degraded reads",
        "Reads that had to rebuild from parity or another copy because a fragment was "
        "missing or bad.",
        [target(f"sum({rate('shardlet_gateway_degraded_reads_total')})", "degraded reads")],
        unit="ops",
        width=12,
    )
    d.graph(
        "Fragment write retries",
        "Fragment writes retried on another node after a failure.",
        [
            target(
                f"sum({rate('shardlet_gateway_fragment_write_retries_total')})",
                "retries",
            )
        ],
        unit="ops",
        width=12,
    )


def repair(d):
    d.row("Repair & durability")
    d.graph(
        "Repair backlog",
        "Shardlets below their redundancy target, and repairs queued.",
        [
            target(
                f"max({leader(sel('shardlet_controller_shardlets_below_target'))})",
                "below target",
            ),
            target(f"max({leader(sel('shardlet_controller_repairs_queued'))})", "queued"),
        ],
    )
    d.graph(
        "Backlog age",
        "How long the oldest shardlet has waited for repair (0: none waits).",
        [
            target(
                f"max({leader(sel('shardlet_controller_repair_backlog_oldest_seconds'))})",
                "oldest waiting",
            )
        ],
        unit="s",
        steps=thresholds((None, "green"), (3600, "red")),
    )
    d.graph(
        "Background bytes/s against the I/O budget",
        "Bytes moved by repair, tiering transitions and rebalance, stacked, with the "
        "budget the controller enforces.",
        [
            target(
                f"sum({rate('shardlet_controller_repair_moved_bytes_total')})", "repair"
            ),
            target(
                f"sum({rate('shardlet_controller_transition_moved_bytes_total')})",
                "transitions",
            ),
            target(
                f"sum({rate('shardlet_controller_rebalance_moved_bytes_total')})",
                "rebalance",
            ),
            target(
                f"max({leader(sel('shardlet_controller_io_budget_bytes_per_second'))})",
                "budget",
            ),
        ],
        unit="Bps",
    )
    d.graph(
        "Repair duration",
        "One repair, start to commit.",
        [
            target(quantile(0.5, "shardlet_controller_repair_duration_seconds_bucket"), "p50"),
            target(quantile(0.99, "shardlet_controller_repair_duration_seconds_bucket"), "p99"),
        ],
        unit="s",
    )
    d.graph(
        "Scrub findings",
        "Problems the scrub confirmed, by kind (each is repaired).",
        [
            target(
                f"sum by (kind) ({increase('shardlet_controller_scrub_findings_total')})",
                "{{kind}}",
            )
        ],
    )
    d.graph(
        "Modelled MTTDL against target",
        "Mean time to data loss per durability level from the controller's model, with "
        "the level's target (dashed lines are targets).",
        [
            target(
                f"max by (level) ({leader(sel('shardlet_controller_mttdl_seconds'))})",
                "{{level}}",
            ),
            target(
                f"max by (level) ({leader(sel('shardlet_controller_mttdl_target_seconds'))})",
                "target {{level}}",
            ),
        ],
        unit="s",
        log=True,
    )


def tiering(d):
    d.row("Tiering")
    d.graph(
        "Shardlets by scheme",
        "Replicated (hot) and erasure-coded (cold) shardlets.",
        [
            target(
                f"sum by (scheme) ({leader(sel('shardlet_controller_shardlets'))})",
                "{{scheme}}",
            )
        ],
        stack=True,
        width=6,
    )
    d.graph(
        "Bytes by scheme",
        "Logical bytes (what users stored) and stored bytes (on disks, with redundancy).",
        [
            target(
                f"sum by (scheme) ({leader(sel('shardlet_controller_logical_bytes'))})",
                "logical {{scheme}}",
            ),
            target(
                f"sum by (scheme) ({leader(sel('shardlet_controller_stored_bytes'))})",
                "stored {{scheme}}",
            ),
        ],
        unit="bytes",
        width=6,
    )
    d.graph(
        "Storage overhead",
        "Stored bytes per logical byte, overall and per scheme.",
        [
            target(
                f"sum({leader(sel('shardlet_controller_stored_bytes'))}) / "
                f"sum({leader(sel('shardlet_controller_logical_bytes'))})",
                "all",
            ),
            target(
                f"sum by (scheme) ({leader(sel('shardlet_controller_stored_bytes'))}) / "
                f"sum by (scheme) ({leader(sel('shardlet_controller_logical_bytes'))})",
                "{{scheme}}",
            ),
        ],
        unit="x",
        width=6,
    )
    d.graph(
        "Transitions",
        "Shardlets moved between schemes, by direction and outcome.",
        [
            target(
                f"sum by (to, outcome) ({increase('shardlet_controller_transitions_total')})",
                "to {{to}}: {{outcome}}",
            )
        ],
        width=6,
    )


def buckets(d):
    d.graph(
        "Largest buckets by bytes",
        "Logical bytes of the 10 largest buckets (the controller exports the 1,000 "
        "largest by name and sums the rest under _other).",
        [
            target(
                f"topk(10, max by (bucket) "
                f"({leader(sel('shardlet_controller_bucket_logical_bytes'))}))",
                "{{bucket}}",
            )
        ],
        unit="bytes",
        width=12,
    )
    d.graph(
        "Largest buckets by objects",
        "Objects in the 10 buckets holding the most.",
        [
            target(
                f"topk(10, max by (bucket) "
                f"({leader(sel('shardlet_controller_bucket_objects'))}))",
                "{{bucket}}",
            )
        ],
        width=12,
    )


def node_risk(d):
    d.row("Node risk")
    d.graph(
        "Failure risk per node",
        "Each node's failure risk (0..1) from the predictor or the heuristic; the "
        "controller evacuates a node above the red line.",
        [
            target(
                f"max by (node, source) ({leader(sel('shardlet_controller_node_risk'))})",
                "{{node}} ({{source}})",
            ),
            target(
                f"max({leader(sel('shardlet_controller_evacuate_risk_threshold'))})",
                "evacuation threshold",
            ),
        ],
        unit="percentunit",
        width=16,
        minimum=0,
        maximum=1,
    )
    d.stat(
        "Risk source",
        "Where the risk comes from: the predictor sidecar, or the heuristic when it is "
        "not reachable.",
        [
            target(
                f"max by (source) ({leader(sel('shardlet_controller_risk_source'))}) == 1",
                "{{source}}",
            )
        ],
        width=8,
        height=8,
    )


def storage_nodes(d):
    d.row("Storage nodes")
    d.graph(
        "Disk free",
        "Free space per node; below 10 % an alert fires.",
        [
            target(
                with_node(
                    f"100 * {sel('shardlet_node_disk_free_bytes')} / "
                    f"{sel('shardlet_node_disk_capacity_bytes')}"
                ),
                "{{node}}",
            )
        ],
        unit="percent",
        steps=thresholds((None, "red"), (10, "green")),
        minimum=0,
        maximum=100,
    )
    d.graph(
        "Fsync latency p99",
        "99th percentile of a fragment fsync, per node.",
        [
            target(
                with_node(
                    quantile(0.99, "shardlet_node_fsync_duration_seconds_bucket", "namespace, instance")
                ),
                "{{node}}",
            )
        ],
        unit="s",
    )
    d.graph(
        "Node requests",
        "Requests the storage nodes answered, by operation.",
        [
            target(
                f"sum by (operation) ({rate('shardlet_node_requests_total')})",
                "{{operation}}",
            )
        ],
        unit="reqps",
        stack=True,
    )
    d.graph(
        "Node errors",
        "Read and write errors, failed fsyncs, checksum failures (all nodes).",
        [
            target(f"sum({rate('shardlet_node_read_errors_total')})", "read errors"),
            target(f"sum({rate('shardlet_node_write_errors_total')})", "write errors"),
            target(f"sum({rate('shardlet_node_fsync_failures_total')})", "fsync failures"),
            target(
                f"sum({rate('shardlet_node_checksum_failures_total')})", "checksum failures"
            ),
        ],
        unit="ops",
    )
    d.graph(
        "Stored fragment bytes",
        "Bytes of fragments each node holds.",
        [target(with_node(sel("shardlet_node_stored_fragment_bytes")), "{{node}}")],
        unit="bytes",
    )
    d.graph(
        "Nodes refusing writes",
        "1 while a node refuses writes after a failed fsync.",
        [target(with_node(sel("shardlet_node_writes_refused")), "{{node}}")],
        minimum=0,
    )


def metadata(d):
    d.row("Metadata")
    d.stat(
        "Raft term",
        "The metadata group's current term; it rises with each election.",
        [target(f"max({sel('shardlet_meta_raft_term')})")],
        width=4,
        height=8,
    )
    d.graph(
        "Commit / applied index",
        "Per member: the last committed and the last applied log index.",
        [
            target(sel("shardlet_meta_raft_committed_index"), "committed {{member}}"),
            target(sel("shardlet_meta_raft_applied_index"), "applied {{member}}"),
        ],
        width=10,
    )
    d.graph(
        "Follower lag",
        "Entries each follower is behind the leader (reported by the leader).",
        [
            target(
                f"max by (follower) ({sel('shardlet_meta_raft_follower_lag_entries')})",
                "{{follower}}",
            )
        ],
        width=10,
    )
    d.graph(
        "Log sync latency p99",
        "99th percentile of one synced log append, per member.",
        [target(quantile(0.99, "shardlet_meta_log_append_sync_seconds_bucket", "member"), "{{member}}")],
        unit="s",
    )
    d.graph(
        "Leader changes and snapshots",
        "Leader changes, snapshots built and installed.",
        [
            target(
                f"sum({increase('shardlet_meta_raft_leader_changes_total')})", "leader changes"
            ),
            target(f"sum({increase('shardlet_meta_snapshots_built_total')})", "snapshots built"),
            target(
                f"sum({increase('shardlet_meta_snapshots_installed_total')})",
                "snapshots installed",
            ),
        ],
    )
    d.graph(
        "Snapshot build / install time",
        "How long the last snapshot took to build and to install, per member.",
        [
            target(sel("shardlet_meta_snapshot_last_build_seconds"), "build {{member}}"),
            target(sel("shardlet_meta_snapshot_last_install_seconds"), "install {{member}}"),
        ],
        unit="s",
    )


def processes(d):
    d.row("Processes")
    d.graph(
        "CPU by service",
        "CPU cores used, summed over each service's processes.",
        [
            target(
                f"sum by (service) ({with_service(rate('process_cpu_seconds_total'))})",
                "{{service}}",
            )
        ],
        unit="short",
        width=12,
        stack=True,
    )
    d.graph(
        "Resident memory by service",
        "Resident set size, summed over each service's processes.",
        [
            target(
                f"sum by (service) ({with_service(sel('process_resident_memory_bytes'))})",
                "{{service}}",
            )
        ],
        unit="bytes",
        width=12,
        stack=True,
    )


def dashboard():
    d = Layout()
    for section in (overview, s3, repair, tiering, buckets, node_risk, storage_nodes, metadata, processes):
        section(d)
    return {
        "title": "Shardlet",
        "uid": "shardlet-overview",
        "description": "Shardlet object store: quorum, S3, repair and durability, tiering, "
        "node risk, storage nodes, metadata, processes. Source: scripts/dashboard_json.py.",
        "tags": ["shardlet", "storage", "s3"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                },
                {
                    "name": "namespace",
                    "label": "Namespace",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "definition": "label_values(shardlet_build_info, namespace)",
                    "query": {
                        "query": "label_values(shardlet_build_info, namespace)",
                        "refId": "namespace",
                    },
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": False,
                    "current": {"selected": True, "text": "All", "value": "$__all"},
                    "refresh": 2,
                    "sort": 1,
                    "hide": 0,
                },
            ]
        },
        "panels": d.panels,
    }


def main():
    text = json.dumps(dashboard(), indent=2) + "\n"
    if sys.argv[1:] == ["--check"]:
        if OUTPUT.read_text() != text:
            sys.exit(f"{OUTPUT} is not what {__file__} writes; run it and commit both")
        return
    OUTPUT.write_text(text)


if __name__ == "__main__":
    main()
