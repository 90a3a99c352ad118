"""Connections: how fast new ones open, and what 10 000 idle ones cost in memory.

New connections/s is measured over the first 2 000 (each runs the app's `$connect`: a token
check and a DynamoDB write); the fleet then grows to 10 000 and is held idle for a few seconds
before every one is checked still open and the server's process trees are weighed (RSS, and PSS,
which counts the pages forked workers share once).
"""

from __future__ import annotations

import asyncio
import time

from websockets.protocol import State

from .harness import Server, cpu_delta, new_secret, open_files_limit, progress, raise_fd_limit
from .load import Fleet
from .servers import TARGETS, started

CONCURRENCY = 100  # handshakes in flight, as many browsers arriving at once
SPARE_FDS = 200  # files a process needs besides its sockets
STEP = 1000  # connections opened between two progress lines


async def connections(server: Server, secret: str | None, rate_count: int,
                      idle_count: int, hold: float, budget: float) -> dict[str, object]:
    fleet = Fleet(server.endpoints["websocket"], secret)
    server_limit = open_files_limit(server.process.pid)
    server_limited_by = None
    if server_limit is not None and server_limit < idle_count + SPARE_FDS:
        idle_count = max(rate_count, server_limit - SPARE_FDS)
        server_limited_by = f"{server.name}'s open-files limit is {server_limit}"
        progress(f"{server_limited_by}: {idle_count} idle connections at most")
    try:
        before = server.usage()
        started_at = time.perf_counter()
        await fleet.open(rate_count, concurrency=CONCURRENCY, read=False,
                         label=f"{server.name}: new connections")
        rate = rate_count / (time.perf_counter() - started_at)
        after_rate = server.usage()
        # The rest in steps, within a time budget: a slow `$connect` must not stall the run.
        budget_end, limited_by = time.perf_counter() + budget, server_limited_by
        while len(fleet.members) < idle_count:
            if time.perf_counter() > budget_end:
                limited_by = (f"{len(fleet.members)} opened within the {budget:g} s budget "
                              f"for {idle_count} (about {rate:.0f} new connections/s)")
                progress(f"{server.name}: {limited_by}")
                break
            step = min(STEP, idle_count - len(fleet.members))
            await fleet.open(step, concurrency=CONCURRENCY, read=False)
            progress(f"{server.name}: {len(fleet.members)}/{idle_count} connected")
        idle_count = len(fleet.members)
        progress(f"{server.name}: holding {idle_count} idle connections for {hold:g} s")
        await asyncio.sleep(hold)
        usage = server.usage()
        return {
            "new_connections": rate_count,
            "new_per_s": round(rate),
            "idle": idle_count,
            "idle_limited_by": limited_by,
            "idle_still_open": sum(m.ws.state is State.OPEN for m in fleet.members),
            "rss_mib": round(sum(g["rss_mib"] for g in usage.values()), 1),
            "pss_mib": round(sum(g["pss_mib"] for g in usage.values()), 1),
            "by_group": usage,
            "cpu_s": {"new_connections": cpu_delta(before, after_rate),
                      "to_idle_count": cpu_delta(after_rate, usage)},
            "server_fd_limit": server_limit,
        }
    finally:
        await asyncio.to_thread(server.stop, 5)
        await fleet.close()


def run(quick: bool = False) -> dict[str, object]:
    rate_count, wanted = (200, 500) if quick else (2000, 10_000)
    limit = raise_fd_limit()
    idle_count, why = wanted, None
    if limit < wanted + SPARE_FDS:
        idle_count = max(rate_count, limit - SPARE_FDS)
        why = (f"the open-files limit here is {limit} (hard limit; each connection needs a "
               f"socket in the client and one in the server): {idle_count} held instead")
        progress(why)
    results: dict[str, object] = {"wanted_idle": wanted, "client_fd_limit": limit,
                                  "limited_by": why}
    for target in TARGETS:
        secret = new_secret() if target == "apigw-local" else None
        with started(target, secret or "") as server:
            progress(f"connections on {target}: {rate_count} new, then {idle_count} idle")
            results[target] = asyncio.run(connections(server, secret, rate_count, idle_count,
                                                      hold=2 if quick else 5,
                                                      budget=60 if quick else 240))
    return results
