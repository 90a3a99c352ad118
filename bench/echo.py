"""Echo through `$default` + `post_to_connection`, and a 200-message burst.

Baseline: a plain `websockets` echo server in this process (no Lambda, no Management API),
measured by the same client code, so the ratio cancels the machine's speed.
"""

from __future__ import annotations

import asyncio
import json
import time

import websockets
from websockets.asyncio.server import serve as ws_serve

from .harness import ROOT, emulator, percentile, progress

TEMPLATE = ROOT / "bench" / "echo" / "template.yaml"


async def _round_trips(url: str, count: int, warmup: int = 50) -> list[float]:
    async with websockets.connect(url, max_size=None) as ws:
        for i in range(warmup):
            await ws.send(json.dumps({"i": i}))
            await ws.recv()
        samples = []
        for i in range(count):
            started = time.perf_counter()
            await ws.send(json.dumps({"i": i}))
            await ws.recv()
            samples.append((time.perf_counter() - started) * 1000)
        return samples


async def _burst(url: str, clients: int, timeout: float = 60) -> tuple[int, float]:
    """`clients` connections each send one frame at the same instant; how many come back."""
    connections = await asyncio.gather(*(websockets.connect(url) for _ in range(clients)))
    try:
        started = time.perf_counter()
        await asyncio.gather(*(ws.send(json.dumps({"n": n})) for n, ws in enumerate(connections)))

        async def answer(ws: websockets.ClientConnection) -> int:
            try:
                await asyncio.wait_for(ws.recv(), timeout)
                return 1
            except (TimeoutError, websockets.ConnectionClosed):
                return 0

        received = sum(await asyncio.gather(*(answer(ws) for ws in connections)))
        return received, (time.perf_counter() - started) * 1000
    finally:
        await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)


async def _baseline(count: int) -> list[float]:
    async def echo(ws):  # type: ignore[no-untyped-def]
        async for message in ws:
            await ws.send(message)

    async with ws_serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        return await _round_trips(f"ws://127.0.0.1:{port}", count)


def run(quick: bool = False) -> dict[str, object]:
    count = 300 if quick else 2000
    progress(f"echo baseline: plain websockets echo, {count} round trips")
    baseline = asyncio.run(_baseline(count))
    with emulator([TEMPLATE]) as endpoints:
        progress(f"echo through apigw-local: {count} round trips")
        ours = asyncio.run(_round_trips(endpoints["websocket"], count))
        progress("burst: 200 clients send one frame each at once (cold: workers start)")
        cold_received, cold_ms = asyncio.run(_burst(endpoints["websocket"], 200))
        progress("burst again, with the workers warm")
        received, burst_ms = asyncio.run(_burst(endpoints["websocket"], 200))
    with emulator([TEMPLATE], extra_args=["--management-transport", "http"]) as endpoints:
        progress(f"echo with --management-transport http (botocore's own HTTPS): {count}")
        over_https = asyncio.run(_round_trips(endpoints["websocket"], count))
    p50, base50 = percentile(ours, 50), percentile(baseline, 50)
    return {
        "echo_round_trips": count,
        "echo_p50_ms": round(p50, 3),
        "echo_p95_ms": round(percentile(ours, 95), 3),
        "echo_p99_ms": round(percentile(ours, 99), 3),
        "baseline_p50_ms": round(base50, 3),
        "echo_p50_vs_baseline": round(p50 / base50, 1),
        "echo_https_transport_p50_ms": round(percentile(over_https, 50), 3),
        "echo_https_transport_p95_ms": round(percentile(over_https, 95), 3),
        "burst_sent": 200,
        "cold_burst_received": cold_received,
        "cold_burst_all_answered_ms": round(cold_ms, 1),
        "burst_received": received,
        "burst_all_answered_ms": round(burst_ms, 1),
    }
