"""The figures table: each figure beside its baselines from the same run, the ratio, the target.

Pure functions over the results dict that `python -m bench` collects (and writes as JSON).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Row:
    figure: str
    unit: str
    ours: float | None
    channels: float | None = None
    floor: float | None = None
    target: str = ""
    met: bool | None = None

    def ratio(self, baseline: float | None) -> float | None:
        if self.ours is None or baseline is None or _nan(baseline) or _nan(self.ours):
            return None
        if self.ours <= 0 or baseline <= 0:  # e.g. frames that arrived before the answer
            return None
        return self.ours / baseline

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "vs_channels": _round(self.ratio(self.channels)),
                "vs_floor": _round(self.ratio(self.floor))}


def _nan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def get(results: dict[str, Any], path: str) -> Any:
    """`results["a"]["b"]…` for "a.b…", or None where any step is missing."""
    node: Any = results
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None or _nan(value) else value <= limit


def at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None or _nan(value) else value >= limit


def _both(*checks: bool | None) -> bool | None:
    return None if any(c is None for c in checks) else all(checks)


def rows(results: dict[str, Any]) -> list[Row]:
    """Every figure the results hold; figures of benchmarks not run are left out."""
    out: list[Row] = []

    def add(row: Row) -> None:
        if row.ours is not None:
            out.append(row)

    def three(path: str) -> tuple[Any, Any, Any]:
        group, rest = path.split(".", 1)
        return tuple(get(results, f"{group}.{t}.{rest}")  # type: ignore[return-value]
                     for t in ("apigw-local", "channels", "floor"))

    k, m = get(results, "rooms.clients"), get(results, "rooms.messages")
    ours, channels, floor = three("rooms.burst.deliveries_per_s")
    lost = get(results, "rooms.apigw-local.burst.lost")
    add(Row(f"room burst K={k}, M={m}: deliveries/s (lost: {lost})", "/s", ours, channels,
            floor, "≥ 1.0× Channels, 0 lost",
            _both(at_least(Row("", "", ours).ratio(channels), 1.0), at_most(lost, 0))))
    for q, limit in (("p50", 30), ("p99", 100)):
        ours, channels, floor = three(f"rooms.paced.{q}_ms")
        lost = get(results, "rooms.apigw-local.paced.lost")
        add(Row(f"paced 1 000 deliveries/s, K={k}, from 2 s after the joins: {q} "
                f"(lost: {lost})", "ms", ours, channels, floor, f"≤ {limit} ms, 0 lost",
                _both(at_most(ours, limit), at_most(lost, 0))))
    ours, channels, floor = three("rooms.joins.all_consistent_ms")
    answered = get(results, "rooms.apigw-local.joins.answered")
    if answered is not None:
        add(Row(f"{k} clients join one room: every view consistent after (answered: "
                f"{answered}/{k})", "ms", ours if ours is not None else math.inf, channels,
                floor, "all answered, ≤ 2 000 ms",
                _both(at_least(answered, k), at_most(ours if ours is not None else math.inf,
                                                     2000))))
    sizes = get(results, "rooms.sizes") or []
    if sizes:
        biggest = str(max(sizes))
        ours, channels, floor = three(f"rooms.curve.{biggest}.p50_ms")
        reached = get(results, f"rooms.apigw-local.curve.{biggest}.reached_all")
        add(Row(f"a room of {biggest}: one message, p50 (reached all: {reached}/"
                f"{get(results, f'rooms.apigw-local.curve.{biggest}.messages')})", "ms", ours,
                channels, floor, "≤ 300 ms, reaches all",
                _both(at_most(ours, 300), at_least(reached, get(
                    results, f"rooms.apigw-local.curve.{biggest}.messages") or math.inf))))
    ours, channels, floor = three("connections.new_per_s")
    count = get(results, "connections.apigw-local.new_connections")
    add(Row(f"new connections/s over {count}", "/s", ours, channels, floor, "≥ 500/s",
            at_least(ours, 500)))
    ours, channels, floor = three("connections.rss_mib")
    idle = get(results, "connections.apigw-local.idle")
    still = get(results, "connections.apigw-local.idle_still_open")
    add(Row(f"{idle} idle connections: RSS of the server's process trees (still open: "
            f"{still})", "MiB", ours, channels, floor, "≤ 1 024 MiB, all open",
            _both(at_most(ours, 1024), at_least(still, idle or math.inf),
                  at_least(idle, get(results, "connections.wanted_idle") or 0))))
    subscribers = get(results, "dashboards.apigw-local.subscribers")
    ours, channels, floor = three("dashboards.from_answer_p50_ms")
    add(Row(f"verify → {subscribers} dashboards: HTTP answer to the last `income`, p50",
            "ms", ours, channels, floor, "≤ 50 ms", at_most(ours, 50)))
    ours, channels, floor = three("echo.p50_ms")
    add(Row("echo p50 (`$default` + `post_to_connection`)", "ms", ours, channels, floor,
            "≤ 0.6 ms", at_most(ours, 0.6)))
    https = get(results, "echo.apigw-local-https.p50_ms")
    add(Row("echo p50 over real HTTPS @connections", "ms", https, channels, floor, "≤ 1.0 ms",
            at_most(https, 1.0)))
    ours, channels, floor = three("echo.pipelined.per_s")
    frames = get(results, "echo.apigw-local.pipelined.frames")
    add(Row(f"{frames} pipelined frames from cold: invocations/s", "/s", ours, channels, floor,
            "≥ 2 000/s", at_least(ours, 2000)))
    return out


def number(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "never"
    if _nan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}".replace(",", " ")
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def ratio(value: float | None) -> str:
    return "—" if value is None or math.isinf(value) else f"{value:.2f}×"


def markdown(results: dict[str, Any], table: list[Row]) -> str:
    head = (f"Run {results.get('when')} · `{results.get('command')}` · "
            f"{results.get('machine')} · Python {results.get('python')} · load average "
            f"{results.get('load_before')} before, {results.get('load_after')} after")
    lines = [head, "",
             "| figure | apigw-local | Channels | floor | ÷ Channels | ÷ floor | target | met |",
             "|---|---|---|---|---|---|---|---|"]
    for row in table:
        met = {True: "met", False: "**missed**", None: "—"}[row.met]
        lines.append(
            f"| {row.figure} | {number(row.ours)} {row.unit} | {number(row.channels)} | "
            f"{number(row.floor)} | {ratio(row.ratio(row.channels))} | "
            f"{ratio(row.ratio(row.floor))} | {row.target} | {met} |")
    notes = results.get("notes") or []
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"
