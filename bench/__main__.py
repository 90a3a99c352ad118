"""`make bench`: run the benchmarks, print a table, keep the figures in bench/results/.

    python -m bench [--quick] [--only echo,rooms]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from . import echo, rooms

BENCHMARKS = {"echo": echo.run, "rooms": rooms.run}
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    report: dict[str, object] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "quick": args.quick,
    }
    for name in chosen:
        print(f"== {name}", file=sys.stderr, flush=True)
        report[name] = BENCHMARKS[name](quick=args.quick)
        for key, value in report[name].items():  # type: ignore[union-attr]
            print(f"{name:6} {key:32} {value}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"(written to {RESULTS / 'latest.json'})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
