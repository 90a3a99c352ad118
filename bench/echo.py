"""Echo through `$default` + `post_to_connection` (bench/echo/template.yaml), one frame at a time,
and 1 000 frames pipelined on one connection from cold (no worker started yet).

Baselines: the same frames echoed by the floor (bare `websockets`) and by the Channels consumer.
"""

from __future__ import annotations

import asyncio
import json
import time

import websockets

from .harness import ROOT, Server, emulator, percentile, progress
from .servers import channels, floor

TEMPLATE = ROOT / "bench" / "echo" / "template.yaml"


async def round_trips(url: str, count: int, warmup: int = 50) -> list[float]:
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
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


async def pipelined(url: str, count: int, timeout: float = 60) -> dict[str, float]:
    """`count` frames sent back to back on one connection; every echo awaited."""
    async with websockets.connect(url, max_size=None, max_queue=None, ping_interval=None) as ws:
        started = time.perf_counter()
        for i in range(count):
            await ws.send(json.dumps({"i": i}))
        received = 0
        try:
            async with asyncio.timeout(timeout):
                while received < count:
                    await ws.recv()
                    received += 1
        except TimeoutError:
            pass
        elapsed = time.perf_counter() - started
    return {"frames": count, "received": received, "lost": count - received,
            "per_s": round(received / elapsed)}


def _summary(samples: list[float]) -> dict[str, float]:
    return {"round_trips": len(samples), "p50_ms": round(percentile(samples, 50), 3),
            "p99_ms": round(percentile(samples, 99), 3)}


def _measure(server: Server, count: int, frames: int) -> dict[str, object]:
    url = server.endpoints["websocket"]
    return {"pipelined": asyncio.run(pipelined(url, frames)),
            **_summary(asyncio.run(round_trips(url, count)))}


def run(quick: bool = False) -> dict[str, object]:
    count, frames = (200, 300) if quick else (2000, 1000)
    results: dict[str, object] = {}
    for name, start in (("floor", floor), ("channels", channels)):
        with start() as server:
            progress(f"echo on {name}: {frames} pipelined, then {count} round trips")
            results[name] = _measure(server, count, frames)
    # Cold: no --prewarm, so the pipelined frames start the workers.
    with emulator([TEMPLATE], prewarm=False) as server:
        progress(f"echo on apigw-local from cold: {frames} pipelined, then {count} round trips")
        results["apigw-local"] = _measure(server, count, frames)
    with emulator([TEMPLATE], extra_args=["--management-transport", "http"]) as server:
        progress(f"echo on apigw-local over real HTTPS @connections: {count} round trips")
        results["apigw-local-https"] = _summary(
            asyncio.run(round_trips(server.endpoints["websocket"], count)))
    return results
