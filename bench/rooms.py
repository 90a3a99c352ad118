"""Rooms, with the same load client against apigw-local + the app, Channels and the floor.

- joins: K clients connected, then all send `join` at once; every join answered, and the time
  until every client's presence view is the room's true membership.
- paced: about 1 000 deliveries/s to the K members, starting 2 s after the last join;
  latency from send to each delivery.
- burst: M messages from 20 senders at once to the K members: deliveries/s and how many lost.
- fan-out curve: one room per size K (members join at connect: `?room=`), one message at a time
  from a member; latency from send to each delivery (the room of 1 000 is its last point).
"""

from __future__ import annotations

import asyncio
import time

from .harness import Server, cpu_delta, new_secret, percentile, progress
from .load import Fleet, Member, View, delivered
from .servers import TARGETS, started

ROOM = "bench"
SENDERS = 20


def _send(room: str, text: str) -> dict:
    return {"action": "send", "room": room, "text": text}


def _latency_summary(latencies: list[float], expected: int) -> dict[str, float]:
    return {"expected": expected, "delivered": len(latencies), "lost": expected - len(latencies),
            "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
            "max_ms": round(max(latencies, default=float("nan")), 2)}


async def joins(fleet: Fleet, members: list[Member], room: str,
                timeout: float) -> tuple[asyncio.Task[dict[str, object]], float]:
    """All `members` join `room` at once; a task that watches answers and presence, and the
    moment the last join was sent."""
    truth = {m.user for m in members}
    await asyncio.gather(*(m.send({"action": "join", "room": room}) for m in members))
    last_join = time.perf_counter()

    async def watch() -> dict[str, object]:
        answered_at = consistent_at = None
        while time.perf_counter() < last_join + timeout:
            now = time.perf_counter()
            if answered_at is None and all(room in m.answered for m in members):
                answered_at = now
            if consistent_at is None and all(
                    m.views.get(room, View()).consistent(truth) for m in members):
                consistent_at = now
            if answered_at and consistent_at:
                break
            await asyncio.sleep(0.01)
        views = [m.views.get(room, View()) for m in members]
        return {
            "clients": len(members),
            "answered": sum(room in m.answered for m in members),
            "all_answered_ms": _ms(answered_at, last_join),
            "consistent": sum(v.consistent(truth) for v in views),
            "all_consistent_ms": _ms(consistent_at, last_join),
            "capped_views": sum(v.capped for v in views),
            "errors": sum(len(m.errors) for m in members),
        }

    return asyncio.create_task(watch()), last_join


def _ms(at: float | None, since: float) -> float | None:
    return None if at is None else round((at - since) * 1000, 1)


async def paced(fleet: Fleet, members: list[Member], room: str, rate: float, seconds: float,
                tag: str, timeout: float) -> dict[str, float]:
    sends = max(1, round(rate / len(members) * seconds))
    interval = seconds / sends
    sent_at: dict[str, float] = {}
    started = time.perf_counter()
    for i in range(sends):
        await asyncio.sleep(max(0.0, started + i * interval - time.perf_counter()))
        text = f"{tag}-{i}"
        sent_at[text] = time.perf_counter()
        await members[i % len(members)].send(_send(room, text))
    texts = list(sent_at)
    expected = len(texts) * len(members)
    await fleet.wait(lambda: delivered(members, texts) >= expected, timeout, poll=0.05)
    latencies = [(m.arrivals[t] - sent_at[t]) * 1000 for m in members for t in texts
                 if t in m.arrivals]
    return {"rate_per_s": rate, "seconds": seconds, **_latency_summary(latencies, expected)}


async def burst(fleet: Fleet, members: list[Member], room: str, messages: int, tag: str,
                timeout: float) -> dict[str, float]:
    senders = members[:SENDERS]
    texts = [f"{tag}-{n}" for n in range(messages)]
    started = time.perf_counter()

    async def send_all(s: int) -> None:  # sender s sends every len(senders)-th message
        for text in texts[s::len(senders)]:
            await senders[s].send(_send(room, text))

    await asyncio.gather(*(send_all(s) for s in range(len(senders))))
    expected = len(texts) * len(members)
    await fleet.wait(lambda: delivered(members, texts) >= expected, timeout, poll=0.05)
    arrivals = [m.arrivals[t] for m in members for t in texts if t in m.arrivals]
    elapsed = max(max(arrivals, default=started) - started, 1e-9)
    return {"messages": len(texts), "expected": expected, "delivered": len(arrivals),
            "lost": expected - len(arrivals), "seconds": round(elapsed, 3),
            "deliveries_per_s": round(len(arrivals) / elapsed)}


async def room_figures(server: Server, secret: str | None, k: int, messages: int,
                       quick: bool) -> dict[str, object]:
    fleet = Fleet(server.endpoints["websocket"], secret)
    try:
        members = await fleet.open(k, label=f"{server.name}: {k} clients")
        progress(f"{server.name}: warming up (every client pings at once, twice)")
        await fleet.warm(members)
        before = server.usage()
        progress(f"{server.name}: {k} clients join one room at once")
        watcher, last_join = await joins(fleet, members, ROOM, timeout=10 if quick else 30)
        await asyncio.sleep(max(0.0, last_join + 2 - time.perf_counter()))
        progress(f"{server.name}: paced 1 000 deliveries/s, from 2 s after the last join")
        paced_result = await paced(fleet, members, ROOM, 1000, 2 if quick else 10, "paced",
                                   timeout=30)
        joins_result = await watcher
        after_paced = server.usage()
        progress(f"{server.name}: burst of {messages} messages to {k} members")
        burst_result = await burst(fleet, members, ROOM, messages, "burst",
                                   timeout=60 if quick else 120)
        after = server.usage()
        return {"joins": joins_result, "paced": paced_result, "burst": burst_result,
                "cpu_s": {"joins_and_paced": cpu_delta(before, after_paced),
                          "burst": cpu_delta(after_paced, after)},
                "closed_during_run": sum(m.closed for m in members)}
    finally:
        await asyncio.to_thread(server.stop, 5)  # before the clients go: no $disconnect storm
        await fleet.close()


async def fanout_curve(server: Server, secret: str | None, sizes: list[int], messages: int,
                       timeout: float) -> dict[str, dict[str, float]]:
    fleet = Fleet(server.endpoints["websocket"], secret)
    curve: dict[str, dict[str, float]] = {}
    try:
        for k in sizes:
            room = f"curve{k}"
            members = await fleet.open(k, prefix=f"c{k}u", room=room,
                                       label=f"{server.name}: room of {k}")
            progress(f"{server.name}: fan-out to a room of {k}, {messages} messages")
            await asyncio.sleep(0.5)
            latencies: list[float] = []
            reached_all = 0
            before = server.usage()
            for i in range(messages):
                text = f"{room}-{i}"
                sent = time.perf_counter()
                await members[i % k].send(_send(room, text))
                ok = await fleet.wait(
                    lambda t=text, ms=members: all(t in m.arrivals for m in ms), timeout)
                reached_all += ok
                latencies += [(m.arrivals[text] - sent) * 1000 for m in members
                              if text in m.arrivals]
                await asyncio.sleep(0.1)
            curve[str(k)] = {**_latency_summary(latencies, k * messages),
                             "messages": messages, "reached_all": reached_all,
                             "cpu_s": cpu_delta(before, server.usage())}
        return curve
    finally:
        await asyncio.to_thread(server.stop, 5)
        await fleet.close()


def run(quick: bool = False) -> dict[str, object]:
    k, messages = (50, 50) if quick else (200, 200)
    sizes = [10, 50] if quick else [10, 50, 100, 200, 500, 1000]
    curve_messages = 3 if quick else 5
    results: dict[str, object] = {"clients": k, "messages": messages, "sizes": sizes}
    for target in TARGETS:
        secret = new_secret() if target == "apigw-local" else None
        with started(target, secret or "") as server:
            progress(f"rooms on {target}")
            room = asyncio.run(room_figures(server, secret, k, messages, quick))
        with started(target, secret or "") as server:
            progress(f"fan-out curve on {target}: rooms of {sizes}")
            curve = asyncio.run(fanout_curve(server, secret, sizes, curve_messages,
                                             timeout=30 if target == "apigw-local" else 10))
        results[target] = {**room, "curve": curve}
    return results
