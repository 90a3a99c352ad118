"""Verify → dashboards: a transaction verified over the HTTP API, its `income` push received by
every subscribed dashboard. Figure: from the HTTP answer to the last dashboard's frame (the app
pushes before it answers, so this can be near zero), and from the request.

Baseline: the Channels server's verify view (`group_send` to the dashboards, then the answer).
The floor has no HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

from .harness import Server, cpu_delta, new_secret, percentile, progress, token
from .load import Fleet
from .servers import started

TARGETS = ("apigw-local", "channels")


def _post(url: str, bearer: str | None, body: dict | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST",
                                     headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


async def dashboards(server: Server, secret: str | None, subscribers: int,
                     verifies: int) -> dict[str, object]:
    fleet = Fleet(server.endpoints["websocket"], secret)
    bearer = token(secret, "bench-admin", "admin") if secret else None
    http = server.endpoints["http"].rstrip("/")
    try:
        members = await fleet.open(subscribers, prefix="admin", role="admin")
        await asyncio.gather(*(m.send({"action": "subscribe", "channel": "admin_dashboard"})
                               for m in members))
        await fleet.wait(lambda: all("" in m.incomes for m in members), 30)
        from_answer, from_request, missing = [], [], 0
        before = server.usage()
        for i in range(verifies):
            created = await asyncio.to_thread(
                _post, f"{http}/transactions", bearer,
                {"amount": 1000 + i, "description": f"bench {i}"})
            tx = created["transaction"]["id"]
            requested = time.perf_counter()
            await asyncio.to_thread(_post, f"{http}/transactions/{tx}/verify", bearer)
            answered = time.perf_counter()
            await fleet.wait(lambda t=tx: all(t in m.incomes for m in members), 10)
            arrivals = [m.incomes[tx] for m in members if tx in m.incomes]
            missing += subscribers - len(arrivals)
            if arrivals:
                from_answer.append((max(arrivals) - answered) * 1000)
                from_request.append((max(arrivals) - requested) * 1000)
        return {"subscribers": subscribers, "verifies": verifies, "missing_frames": missing,
                "from_answer_p50_ms": round(percentile(from_answer, 50), 2),
                "from_answer_max_ms": round(max(from_answer, default=float("nan")), 2),
                "from_request_p50_ms": round(percentile(from_request, 50), 2),
                "cpu_s": cpu_delta(before, server.usage())}
    finally:
        await asyncio.to_thread(server.stop, 5)
        await fleet.close()


def run(quick: bool = False) -> dict[str, object]:
    subscribers, verifies = (20, 3) if quick else (100, 20)
    results: dict[str, object] = {}
    for target in TARGETS:
        secret = new_secret() if target == "apigw-local" else None
        with started(target, secret or "") as server:
            progress(f"dashboards on {target}: {subscribers} subscribed, {verifies} verifies")
            results[target] = asyncio.run(dashboards(server, secret, subscribers, verifies))
    return results
