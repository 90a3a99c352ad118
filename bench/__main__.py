"""`make bench`: every figure beside its baselines from the same run, kept in bench/results/.

    python -m bench [--quick] [--only echo,dashboards,rooms,connections]

Writes latest.json (every measurement), latest.md (the figures table) and fanout.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from . import connections, dashboards, echo, report, rooms
from .servers import baseline_python

# Quiet, single-connection figures first, the heavy ones last.
BENCHMARKS = {"echo": echo.run, "dashboards": dashboards.run, "rooms": rooms.run,
              "connections": connections.run}
RESULTS = Path(__file__).resolve().parent / "results"


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _notes(results: dict[str, object]) -> list[str]:
    notes = ["Ratios are apigw-local ÷ baseline: above 1 is better for rates, below 1 is better "
             "for latencies and memory. Every server runs as its own process; one load client "
             "(this process) drives them all."]
    for limited in (report.get(results, "connections.limited_by"),
                    report.get(results, "connections.apigw-local.idle_limited_by")):
        if limited:
            notes.append(f"Idle connections: {limited}.")
    capped = report.get(results, "rooms.apigw-local.joins.capped_views")
    if capped:
        notes.append(f"Joins: {capped} clients last saw a `presence` list capped at 100 members "
                     "(docs/protocol.md); for them, consistent means every listed member is real "
                     "and the count agrees, allowing for `joined` frames of users the snapshot "
                     "did not list (it may have counted them already).")
    if report.get(results, "dashboards") is not None:
        notes.append("Dashboards: the app pushes `income` before it answers the verify, so the "
                     "figure from the answer can be ≤ 0; from the request it is "
                     f"{report.get(results, 'dashboards.apigw-local.from_request_p50_ms')} ms "
                     f"(Channels {report.get(results, 'dashboards.channels.from_request_p50_ms')}"
                     " ms).")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few samples: a smoke run of every figure")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown or not chosen:
        parser.error(f"unknown benchmark(s): {', '.join(unknown) or '(none)'}; "
                     f"choose from {', '.join(BENCHMARKS)}")

    python = baseline_python()
    results: dict[str, object] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "quick": args.quick,
        "load_before": _load(),
    }
    started = time.monotonic()
    for n, name in enumerate(chosen, 1):
        print(f"== [{n}/{len(chosen)}] {name} ({time.monotonic() - started:.0f} s so far)",
              file=sys.stderr, flush=True)
        results[name] = BENCHMARKS[name](quick=args.quick)
    results["load_after"] = _load()
    results["seconds"] = round(time.monotonic() - started)
    results["notes"] = _notes(results)
    table = report.rows(results)
    results["figures"] = [row.as_dict() for row in table]

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report.markdown(results, table)
    (RESULTS / "latest.md").write_text(markdown)
    written = ["latest.json", "latest.md"]
    if report.get(results, "rooms.apigw-local.curve"):
        plot = subprocess.run([str(python), "-m", "bench.plot", str(RESULTS / "latest.json"),
                               str(RESULTS / "fanout.png")], cwd=RESULTS.parent.parent)
        if plot.returncode == 0:
            written.append("fanout.png")
    print(markdown)
    print(f"(in {results['seconds']} s; written to {', '.join(written)} in {RESULTS})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
