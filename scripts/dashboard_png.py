#!/usr/bin/env python3
"""Draws a Grafana dashboard's panels from a real Prometheus into one PNG.

Grafana's own renderer is not available here, so this is a faithful plot of the same
queries: every panel's expressions are sent to Prometheus's `query_range` over the time
range, with the dashboard's variables substituted as Grafana would, and drawn on the
dashboard's 24-column grid with its titles, legends, units, thresholds, stacking and
log scales.

    python3 scripts/dashboard_png.py --prometheus http://127.0.0.1:9090 \\
        --dashboard helm/shardlet/dashboards/shardlet.json --minutes 10 --out docs/dashboard.png

Needs matplotlib (`pip install matplotlib`). scripts/dashboard_demo.py runs it against a
`shardlet dev` under load (how docs/dashboard.png is made).
"""

import argparse
import datetime
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

# Grafana's dark theme.
BACKGROUND = "#111217"
PANEL = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
MUTED = "#8e8e8e"
PALETTE = [
    "#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
    "#705da0", "#37872d", "#fade2a", "#447ebc", "#c15c17", "#890f02", "#0a437c",
]
COLORS = {"green": "#73bf69", "red": "#f2495c", "orange": "#ff9830", "blue": "#5794f2",
          "yellow": "#fade2a"}
# Grid units to inches: Grafana's grid is 24 columns wide and a height unit is 30 px.
COLUMN_INCHES = 1.0
ROW_INCHES = 0.36
# Series drawn at most per panel (the rest are summarised in the legend).
SERIES_MAX = 16


def query_range(prometheus, expression, start, end, step):
    parameters = urllib.parse.urlencode(
        {"query": expression, "start": start, "end": end, "step": step}
    )
    url = f"{prometheus}/api/v1/query_range?{parameters}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        body = json.load(error)
    if body.get("status") != "success":
        raise RuntimeError(f"{expression}: {body.get('error', body)}")
    return body["data"]["result"]


def substitute(expression, step, scrape_interval):
    # Grafana: $__rate_interval = max($__interval + scrape interval, 4 * scrape interval).
    rate_interval = max(step + scrape_interval, 4 * scrape_interval)
    for name, value in (
        ("__rate_interval", f"{rate_interval}s"),
        ("__interval", f"{step}s"),
        ("namespace", ".*"),
    ):
        expression = expression.replace("${" + name + "}", value).replace("$" + name, value)
    return expression


def legend(format_text, labels):
    if not format_text:
        inside = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        return "{" + inside + "}"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), format_text)


def binary_bytes(value, per_second=False):
    suffix = "/s" if per_second else ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.3g} {unit}{suffix}"
        value /= 1024
    return f"{value}"


def duration(value):
    if value == 0:
        return "0"
    for limit, unit, scale in (
        (1e-3, "µs", 1e-6), (1, "ms", 1e-3), (60, "s", 1), (3600, "min", 60),
        (86400, "h", 3600), (86400 * 365.25, "day", 86400),
    ):
        if abs(value) < limit:
            return f"{value / scale:.3g} {unit}"
    return f"{value / (86400 * 365.25):.3g} year"


def formatter(unit):
    """A function value -> text for a Grafana unit."""
    if unit == "bytes":
        return binary_bytes
    if unit == "Bps":
        return lambda v: binary_bytes(v, per_second=True)
    if unit == "s":
        return duration
    if unit == "percent":
        return lambda v: f"{v:.3g} %"
    if unit == "percentunit":
        return lambda v: f"{100 * v:.3g} %"
    if unit == "reqps":
        return lambda v: f"{v:.3g} req/s"
    if unit == "ops":
        return lambda v: f"{v:.3g} ops/s"
    if unit == "x":
        return lambda v: f"{v:.3g}x"
    return lambda v: f"{v:.4g}"


def threshold_color(steps, value):
    color = COLORS["green"]
    for step in steps:
        if step["value"] is None or (value is not None and value >= step["value"]):
            color = COLORS.get(step["color"], step["color"])
    return color


def fixed_colors(panel):
    """Series name -> colour from the panel's `byName` fixed-colour overrides."""
    colors = {}
    for override in panel["fieldConfig"].get("overrides", []):
        if override["matcher"]["id"] != "byName":
            continue
        for item in override["properties"]:
            if item["id"] == "color" and item["value"].get("mode") == "fixed":
                color = item["value"]["fixedColor"]
                colors[override["matcher"]["options"]] = COLORS.get(color, color)
    return colors


def panels_of(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def style_axes(axes):
    axes.set_facecolor(PANEL)
    for spine in axes.spines.values():
        spine.set_color(BORDER)
    axes.tick_params(colors=MUTED, labelsize=7)


def draw_timeseries(axes, panel, results, start, end):
    defaults = panel["fieldConfig"]["defaults"]
    custom = defaults.get("custom", {})
    text = formatter(defaults.get("unit", "short"))
    stacked = custom.get("stacking", {}).get("mode") == "normal"
    log = custom.get("scaleDistribution", {}).get("type") == "log"
    series = [s for s in results if s[1]][:SERIES_MAX]
    fixed = fixed_colors(panel)
    color_index = 0

    def next_color(name):
        nonlocal color_index
        if name in fixed:
            return fixed[name]
        color_index += 1
        return PALETTE[(color_index - 1) % len(PALETTE)]

    if stacked and series:
        times = sorted({t for _, points, _ in series for t, _ in points})
        stack = [0.0] * len(times)
        for name, points, target_index in series:
            values = dict(points)
            top = [base + values.get(t, 0.0) for base, t in zip(stack, times)]
            color = next_color(name)
            axes.fill_between(_dates(times), stack, top, color=color, alpha=0.35, linewidth=0)
            axes.plot(_dates(times), top, color=color, linewidth=1.2, label=name)
            stack = top
    else:
        for name, points, target_index in series:
            color = next_color(name)
            dashed = name.startswith(("target", "budget", "evacuation threshold"))
            axes.plot(
                _dates([t for t, _ in points]),
                [v for _, v in points],
                color=color,
                linewidth=1.2,
                linestyle="--" if dashed else "-",
                label=name,
            )
    if custom.get("thresholdsStyle", {}).get("mode") == "line":
        for step in defaults.get("thresholds", {}).get("steps", []):
            if step["value"] is not None:
                axes.axhline(step["value"], color=COLORS.get(step["color"], step["color"]),
                             linestyle="--", linewidth=1)
    if log:
        axes.set_yscale("log")
    bottom, top = defaults.get("min"), defaults.get("max")
    if not log:
        low, high = axes.get_ylim()
        axes.set_ylim(bottom if bottom is not None else min(0, low),
                      top if top is not None else max(high, 1e-9))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: text(v)))
    axes.set_xlim(_dates([start, end]))
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=datetime.timezone.utc))
    axes.grid(color=BORDER, linewidth=0.5)
    if series:
        axes.legend(loc="upper left", fontsize=6.5, frameon=False, labelcolor=TEXT,
                    ncol=2 if len(series) > 5 else 1, handlelength=1.2)
    else:
        axes.text(0.5, 0.5, "No data", color=MUTED, ha="center", va="center",
                  transform=axes.transAxes, fontsize=10)
    dropped = len([s for s in results if s[1]]) - len(series)
    if dropped > 0:
        axes.text(0.99, 0.02, f"+{dropped} more series", color=MUTED, ha="right",
                  fontsize=6, transform=axes.transAxes)


def _dates(epoch_seconds):
    return [datetime.datetime.fromtimestamp(t, datetime.timezone.utc) for t in epoch_seconds]


def draw_stat(axes, panel, results):
    defaults = panel["fieldConfig"]["defaults"]
    text = formatter(defaults.get("unit", "none"))
    steps = defaults.get("thresholds", {}).get("steps", [])
    axes.set_xticks([])
    axes.set_yticks([])
    values = [(name, points[-1][1]) for name, points, _ in results if points]
    if not values:
        axes.text(0.5, 0.45, "No data", color=MUTED, ha="center", va="center", fontsize=14,
                  transform=axes.transAxes)
        return
    color = threshold_color(steps, values[0][1])
    axes.set_facecolor(color)
    if len(values) == 1 and not values[0][0].startswith("{"):
        label = values[0][0] if len(values[0][0]) < 24 else ""
    else:
        label = ""
    if len(values) == 1:
        axes.text(0.5, 0.42, text(values[0][1]).replace(".0 ", " "), color="white",
                  ha="center", va="center", fontsize=22, fontweight="bold",
                  transform=axes.transAxes)
        if label and panel.get("title") != label:
            axes.text(0.5, 0.12, label, color="white", ha="center", fontsize=8,
                      transform=axes.transAxes)
    else:
        for index, (name, value) in enumerate(values):
            y = 0.7 - index * 0.6 / max(len(values) - 1, 1)
            axes.text(0.5, y, f"{name}: {text(value)}", color="white", ha="center",
                      va="center", fontsize=12, fontweight="bold", transform=axes.transAxes)


def render(prometheus, dashboard, start, end, step, scrape_interval, output, title):
    panels = list(panels_of(dashboard))
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    header = 1.5
    width = 24 * COLUMN_INCHES
    height = bottom * ROW_INCHES + header * ROW_INCHES
    figure = plt.figure(figsize=(width, height), facecolor=BACKGROUND)
    figure.text(0.005, 1 - 0.6 * ROW_INCHES / height, title, color=TEXT, fontsize=16,
                fontweight="bold", va="center")
    failures = []
    gap = 0.06  # inches between panels
    for panel in panels:
        grid = panel["gridPos"]
        left = (grid["x"] * COLUMN_INCHES + gap) / width
        panel_width = (grid["w"] * COLUMN_INCHES - 2 * gap) / width
        top = (header + grid["y"]) * ROW_INCHES
        if panel["type"] == "row":
            figure.text(left, 1 - (top + 0.6 * ROW_INCHES) / height, panel["title"],
                        color=TEXT, fontsize=13, fontweight="bold", va="center")
            continue
        # Room for the title above the plot, and the time axis below it.
        title_room = 0.32
        axis_room = 0.3 if panel["type"] == "timeseries" else 0.05
        left_room = 0.75 if panel["type"] == "timeseries" else 0.0
        box = [
            left + left_room / width,
            1 - (top + grid["h"] * ROW_INCHES - gap - axis_room) / height,
            panel_width - left_room / width,
            (grid["h"] * ROW_INCHES - 2 * gap - title_room - axis_room) / height,
        ]
        background = figure.add_axes(
            [left, 1 - (top + grid["h"] * ROW_INCHES - gap) / height, panel_width,
             (grid["h"] * ROW_INCHES - 2 * gap) / height]
        )
        background.set_facecolor(PANEL)
        background.set_xticks([])
        background.set_yticks([])
        for spine in background.spines.values():
            spine.set_color(BORDER)
        figure.text(left + 0.08 / width, 1 - (top + gap + 0.17) / height, panel["title"],
                    color=TEXT, fontsize=9.5, fontweight="bold", va="center")
        axes = figure.add_axes(box)
        style_axes(axes)
        results = []
        for index, target in enumerate(panel.get("targets", [])):
            expression = substitute(target["expr"], step, scrape_interval)
            try:
                found = query_range(prometheus, expression, start, end, step)
            except Exception as error:  # a panel that fails is drawn as failed, and reported
                failures.append(f"{panel['title']}: {error}")
                continue
            for series in found:
                points = [
                    (float(t), float(v))
                    for t, v in series["values"]
                    if v not in ("NaN", "+Inf", "-Inf")
                ]
                results.append((legend(target.get("legendFormat", ""), series["metric"]),
                                points, index))
        if panel["type"] == "stat":
            draw_stat(axes, panel, results)
        else:
            draw_timeseries(axes, panel, results, start, end)
    figure.savefig(output, dpi=72, facecolor=BACKGROUND)
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL")
    parser.add_argument("--dashboard", required=True, help="Grafana dashboard JSON")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--minutes", type=float, default=15, help="time range: the last N minutes")
    parser.add_argument("--end", type=float, help="end of the range (unix seconds; default now)")
    parser.add_argument("--scrape-interval", type=int, default=15,
                        help="Prometheus's scrape interval in seconds (for $__rate_interval)")
    parser.add_argument("--title", help="title drawn on top (default: the dashboard's)")
    arguments = parser.parse_args()
    if not 0 < arguments.minutes <= 7 * 24 * 60:
        parser.error("--minutes must be above 0 and at most a week")
    if arguments.scrape_interval < 1:
        parser.error("--scrape-interval must be at least 1 second")
    try:
        with open(arguments.dashboard) as file:
            dashboard = json.load(file)
    except (OSError, ValueError) as error:
        parser.error(f"--dashboard {arguments.dashboard}: {error}")
    if not isinstance(dashboard, dict) or not isinstance(dashboard.get("panels"), list):
        parser.error(f"--dashboard {arguments.dashboard}: not a Grafana dashboard (no panels list)")
    end = arguments.end or time.time()
    start = end - arguments.minutes * 60
    # About 240 points per series, in whole seconds.
    step = max(1, math.ceil(arguments.minutes * 60 / 240))
    window = time.strftime("%Y-%m-%d %H:%M", time.gmtime(start))
    title = arguments.title or (
        f"{dashboard['title']}: {arguments.minutes:g} minutes from {window} UTC"
    )
    failures = render(arguments.prometheus, dashboard, start, end, step,
                      arguments.scrape_interval, arguments.out, title)
    for failure in failures:
        print(f"dashboard_png: query failed: {failure}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
