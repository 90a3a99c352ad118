"""Room fan-out with the app's own handlers: 200 clients in one room (the Channels figures).

- burst: senders fire `send` frames at once; every client must receive every message.
  Figure: room deliveries per second, and how many were lost (must be 0).
- paced: about 1 000 deliveries/s (5 sends/s to 200 members); latency from send to delivery.

Baseline: a plain `websockets` broadcast server in this process (no Lambda, no DynamoDB),
driven by the same clients, so the ratio cancels the machine's speed.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

import websockets
from websockets.asyncio.server import broadcast
from websockets.asyncio.server import serve as ws_serve

from .harness import ROOT, emulator, new_secret, percentile, progress, token

ROOM = "bench"


class Clients:
    """`count` connections that record when each chat message arrives."""

    def __init__(self, url: str, count: int, secret: str | None) -> None:
        self.url, self.count, self.secret = url, count, secret
        self.connections: list[websockets.ClientConnection] = []
        self.arrivals: dict[str, list[float]] = {}
        self.readers: list[asyncio.Task[None]] = []
        self.joined: dict[websockets.ClientConnection, asyncio.Future[None]] = {}
        self.lost_connections = 0

    async def __aenter__(self) -> Clients:
        async def open_one(n: int) -> websockets.ClientConnection:
            query = {"token": token(self.secret, f"user{n}")} if self.secret else {}
            url = f"{self.url}?{urlencode(query)}" if query else self.url
            return await websockets.connect(url, max_queue=None)

        # Connect first, then `join` (what the web client does). Joining with `&room=` at
        # connect time while 50 other `$connect`s run makes the app post `joined` to members
        # still CONNECTING, which AWS answers 410 and the app then drops their membership.
        for start in range(0, self.count, 50):  # in waves, as browsers would
            batch = range(start, min(self.count, start + 50))
            self.connections += await asyncio.gather(*(open_one(n) for n in batch))
        self.joined = {ws: asyncio.get_running_loop().create_future()
                       for ws in self.connections}
        self.readers = [asyncio.create_task(self._read(ws)) for ws in self.connections]
        join = json.dumps({"action": "join", "room": ROOM})
        for start in range(0, self.count, 50):
            batch = self.connections[start:start + 50]
            await asyncio.gather(*(ws.send(join) for ws in batch))
            await asyncio.wait_for(asyncio.gather(*(self.joined[ws] for ws in batch)), 120)
        return self

    async def _read(self, ws: websockets.ClientConnection) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "message":
                    self.arrivals.setdefault(frame["text"], []).append(time.perf_counter())
                elif kind in ("presence", "history") and not self.joined[ws].done():
                    self.joined[ws].set_result(None)
        except websockets.ConnectionClosed:
            self.lost_connections += 1

    async def wait_for(self, texts: list[str], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if all(len(self.arrivals.get(t, ())) >= self.count for t in texts):
                return
            await asyncio.sleep(0.01)

    async def __aexit__(self, *exc: object) -> None:
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*(ws.close() for ws in self.connections), return_exceptions=True)


async def _burst(clients: Clients, senders: int, per_sender: int, tag: str) -> dict[str, float]:
    texts = [f"{tag}-{s}-{m}" for s in range(senders) for m in range(per_sender)]
    started = time.perf_counter()

    async def send_all(s: int) -> None:
        ws = clients.connections[s]
        for m in range(per_sender):
            await ws.send(json.dumps({"action": "send", "room": ROOM, "text": f"{tag}-{s}-{m}"}))

    await asyncio.gather(*(send_all(s) for s in range(senders)))
    await clients.wait_for(texts, timeout=120)
    expected = len(texts) * clients.count
    delivered = sum(len(clients.arrivals.get(t, ())) for t in texts)
    arrived = [max(clients.arrivals[t]) for t in texts if clients.arrivals.get(t)]
    last = max(arrived, default=started)
    elapsed = max(last - started, 1e-9)
    return {"expected": expected, "delivered": delivered, "lost": expected - delivered,
            "deliveries_per_s": round(delivered / elapsed)}


async def _paced(clients: Clients, rate: float, seconds: float, tag: str) -> dict[str, float]:
    sends = int(rate / clients.count * seconds)
    interval = seconds / sends
    sent_at: dict[str, float] = {}
    for i in range(sends):
        text = f"{tag}-{i}"
        sent_at[text] = time.perf_counter()
        await clients.connections[i % clients.count].send(
            json.dumps({"action": "send", "room": ROOM, "text": text}))
        await asyncio.sleep(max(0.0, sent_at[text] + interval - time.perf_counter()))
    await clients.wait_for(list(sent_at), timeout=60)
    latencies = [(arrived - sent_at[t]) * 1000
                 for t in sent_at for arrived in clients.arrivals.get(t, ())]
    expected = sends * clients.count
    return {"expected": expected, "delivered": len(latencies), "lost": expected - len(latencies),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p95_ms": round(percentile(latencies, 95), 1)}


async def _scenario(url: str, secret: str | None, count: int, quick: bool) -> dict[str, object]:
    async with Clients(url, count, secret) as clients:
        await _burst(clients, senders=2, per_sender=2, tag="warm")  # warm every worker path
        burst = await _burst(clients, senders=10, per_sender=2 if quick else 5, tag="burst")
        paced = await _paced(clients, rate=1000, seconds=3 if quick else 10, tag="paced")
        return {"burst": burst, "paced": paced, "closed_during_run": clients.lost_connections}


async def _baseline(count: int, quick: bool) -> dict[str, object]:
    members: set[websockets.ServerConnection] = set()

    async def handler(ws):  # type: ignore[no-untyped-def]
        members.add(ws)
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame.get("action") == "join":
                    await ws.send(json.dumps({"type": "presence", "room": ROOM, "count": 1}))
                    continue
                out = {"type": "message", "room": ROOM, "text": frame["text"], "sender": "x"}
                broadcast(members, json.dumps(out))
        finally:
            members.discard(ws)

    async with ws_serve(handler, "127.0.0.1", 0, max_queue=None) as server:
        port = server.sockets[0].getsockname()[1]
        return await _scenario(f"ws://127.0.0.1:{port}", None, count, quick)


def run(quick: bool = False) -> dict[str, object]:
    count = 200
    progress(f"rooms baseline: plain websockets broadcast, {count} clients")
    baseline = asyncio.run(_baseline(count, quick))
    secret = new_secret()
    templates = [ROOT / "template.yaml"]
    with emulator(templates, parameters={"AuthSecret": secret}) as endpoints:
        progress(f"rooms through apigw-local and the app's handlers, {count} clients")
        ours = asyncio.run(_scenario(endpoints["websocket"], secret, count, quick))
    ours_burst, base_burst = ours["burst"], baseline["burst"]  # type: ignore[index]
    return {
        "clients": count,
        "burst": ours_burst,
        "paced_1000_per_s": ours["paced"],
        "closed_during_run": ours["closed_during_run"],
        "baseline_burst": base_burst,
        "baseline_paced": baseline["paced"],
        "burst_vs_baseline": round(
            ours_burst["deliveries_per_s"] / base_burst["deliveries_per_s"], 3),
    }
