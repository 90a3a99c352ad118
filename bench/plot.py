"""Fan-out latency against room size, one line per server, as a PNG.

Runs in the benchmark's own virtualenv (matplotlib lives there, not in the app's):
    bench/.venv-channels/bin/python -m bench.plot bench/results/latest.json bench/results/fanout.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"apigw-local": ("apigw-local + the app", "tab:blue"),
         "channels": ("Django Channels 4.3", "tab:green"),
         "floor": ("bare websockets (floor)", "tab:gray")}


def main(source: Path, target: Path) -> None:
    results = json.loads(source.read_text())
    rooms = results["rooms"]
    figure, axes = plt.subplots(figsize=(9, 6), dpi=120)
    for name, (label, colour) in STYLE.items():
        curve = rooms.get(name, {}).get("curve", {})
        sizes = sorted(int(k) for k in curve)
        if not sizes:
            continue
        p50 = [curve[str(k)]["p50_ms"] for k in sizes]
        p99 = [curve[str(k)]["p99_ms"] for k in sizes]
        axes.plot(sizes, p50, marker="o", color=colour, label=f"{label}: p50")
        axes.plot(sizes, p99, marker="v", linestyle="--", color=colour, alpha=0.6,
                  label=f"{label}: p99")
    axes.axhline(300, color="tab:red", linewidth=0.8, linestyle=":")
    axes.annotate("target for a room of 1 000: p50 ≤ 300 ms", (0.01, 300), color="tab:red",
                  xycoords=("axes fraction", "data"), ha="left", va="bottom", fontsize=8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    sizes = sorted({int(k) for name in STYLE for k in rooms.get(name, {}).get("curve", {})})
    axes.set_xticks(sizes, [str(k) for k in sizes])
    axes.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axes.set_xlabel("room size (members)")
    axes.set_ylabel("latency from send to delivery (ms)")
    axes.set_title(f"Room fan-out: one message to every member ({results['when']}, "
                   f"{results['machine']})", fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    figure.tight_layout()
    figure.savefig(target)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
