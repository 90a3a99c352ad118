"""`make soak`: many clients in many rooms against `apigw-local start` with the app, joining and
leaving throughout; checks every delivery and reports memory.

    python -m bench.soak [--clients 500] [--rooms 20] [--messages 100] [--churn 5]

Each client has one connection, joins a room, then sends its messages one at a time with
`clientId` and `seq` (the next after the `ack`, docs/protocol.md "Sending"). Every `churn`-th
client leaves its room twice on the way and joins the next room.

A client is a **member at send time** of a message when it received the `history` that answers
its `join` of the message's room before the message was sent, and sent no `leave` of that room
before the sender got the message's `ack` (the ack comes after the fan-out is complete, so the
membership was stored throughout it). Each such member must get the message exactly once.
A client that joined or left around the send may get it or not, at most once. A delivery is
**foreign** when the receiver's membership of the room (from sending `join` until receiving its
own `left`) does not overlap the span from send to ack. Order: at every reader, the `seq` of
each sender's messages rises.

Memory: RSS of the gateway, the workers and DynamoDB (from /proc) when the steady phase (every
client connected and in a room) starts and when every message is acknowledged and delivered,
and DynamoDB's growth per byte it stored meanwhile (bench/storage.py, DynamoDB's own measure):
flat memory keeps that ratio a small constant, however many requests were served.
Exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field

from .harness import Server, new_secret, progress, raise_fd_limit
from .load import Fleet, Member
from .servers import app
from .storage import Stored, stored

INF = math.inf


@dataclass
class Sent:
    room: str
    sender: str
    seq: int
    at: float
    acked: float = INF
    id: str | None = None


@dataclass
class Stay:
    """One membership of one room: from sending `join` (or its answer) to sending `leave`
    (or receiving the own `left`)."""

    join_sent: float
    answered: float = INF
    leave_sent: float = INF
    left: float = INF


class Client(Member):
    """A connection that keeps every `message` and `ack` and its memberships, with a clock."""

    def __init__(self, ws, user: str) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ws, user)
        self.messages: list[tuple[str, str, int]] = []  # (room, id, seq)
        self.stays: dict[str, list[Stay]] = {}
        self.waiting: dict[tuple[str, object], asyncio.Future[dict]] = {}

    def received(self, frame: dict, now: float) -> None:
        kind, room = frame.get("type"), frame.get("room")
        if kind == "message":
            self.messages.append((room, frame["id"], frame.get("seq", 0)))
        elif kind == "history" and self.stays.get(room):
            stay = self.stays[room][-1]
            stay.answered = min(stay.answered, now)
        elif kind == "left" and frame.get("user") == self.user and self.stays.get(room):
            self.stays[room][-1].left = min(self.stays[room][-1].left, now)
        key = {"ack": ("ack", frame.get("seq")), "history": ("history", room),
               "left": ("left", room) if frame.get("user") == self.user else None,
               "error": ("ack", frame.get("clientId") and _seq(frame["clientId"]))}.get(kind)
        future = self.waiting.pop(key, None) if key else None
        if future and not future.done():
            future.set_result(frame)

    async def ask(self, frame: dict, key: tuple[str, object], timeout: float) -> dict | None:
        future = asyncio.get_running_loop().create_future()
        self.waiting[key] = future
        await self.send(frame)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self.waiting.pop(key, None)
            return None


def _seq(client_id: str) -> int:
    return int(client_id.rsplit("-", 1)[1])


@dataclass
class Soak:
    clients: int
    rooms: int
    messages: int
    churn: int
    timeout: float
    prefix: str = "soak"  # of the rooms' names
    sent: dict[str, Sent] = field(default_factory=dict)  # by clientId
    problems: list[str] = field(default_factory=list)

    def room(self, n: int) -> str:
        return f"{self.prefix}{n % self.rooms}"

    async def life(self, index: int, client: Client) -> None:
        room_no = index
        leaves = {self.messages // 3, 2 * self.messages // 3} if (
            self.churn and index % self.churn == 0) else set()
        await self.join(client, self.room(room_no))
        for seq in range(1, self.messages + 1):
            if seq in leaves:
                room = self.room(room_no)
                client.stays[room][-1].leave_sent = time.perf_counter()
                if await client.ask({"action": "leave", "room": room}, ("left", room),
                                    self.timeout) is None:
                    self.problems.append(f"{client.user}: no `left` answered its leave")
                room_no += 1
                await self.join(client, self.room(room_no))
            room, client_id = self.room(room_no), f"{client.user}-{seq}"
            record = self.sent[client_id] = Sent(room, client.user, seq, time.perf_counter())
            answer = await client.ask({"action": "send", "room": room, "text": f"m {client_id}",
                                       "clientId": client_id, "seq": seq}, ("ack", seq),
                                      self.timeout)
            if answer is None or answer.get("type") != "ack":
                self.problems.append(f"{client_id}: no ack, got {json.dumps(answer)}")
                return
            record.acked, record.id = time.perf_counter(), answer["id"]

    async def join(self, client: Client, room: str) -> None:
        client.stays.setdefault(room, []).append(Stay(time.perf_counter()))
        if await client.ask({"action": "join", "room": room}, ("history", room),
                            self.timeout) is None:
            self.problems.append(f"{client.user}: no `history` answered its join of {room}")

    def check(self, clients: list[Client]) -> dict[str, int]:
        """The tallies: every delivery against the memberships at send time."""
        acked = {s.id: s for s in self.sent.values() if s.id}
        by_room: dict[str, list[Sent]] = {}
        for sent in acked.values():
            by_room.setdefault(sent.room, []).append(sent)
        counts = dict.fromkeys(("expected", "received", "duplicated", "missing", "misordered",
                                "foreign", "unknown"), 0)
        for client in clients:
            seen: dict[str, int] = {}
            last_seq: dict[str, int] = {}
            for room, message_id, seq in client.messages:
                counts["received"] += 1
                seen[message_id] = seen.get(message_id, 0) + 1
                sent = acked.get(message_id)
                if sent is None:
                    counts["unknown"] += 1
                    continue
                if room != sent.room or not any(
                        stay.join_sent <= sent.acked and stay.left >= sent.at
                        for stay in client.stays.get(room, ())):
                    counts["foreign"] += 1
                if seq <= last_seq.get(sent.sender, 0):
                    counts["misordered"] += 1
                last_seq[sent.sender] = max(seq, last_seq.get(sent.sender, 0))
            counts["duplicated"] += sum(n - 1 for n in seen.values())
            for room, stays in client.stays.items():
                for sent in by_room.get(room, ()):
                    if any(stay.answered < sent.at and stay.leave_sent > sent.acked
                           for stay in stays):
                        counts["expected"] += 1
                        counts["missing"] += sent.id not in seen
        return counts


async def rehearse(fleet: Fleet, timeout: float) -> None:
    """A few clients of their own room join, send, leave and join again before anything is
    measured, so each code path of the soak has run once (its imports and caches loaded) and
    the memory figures are those of the steady phase."""
    rehearsal = Soak(clients=4, rooms=1, messages=3, churn=1, timeout=timeout, prefix="warmup")
    members = await fleet.open(rehearsal.clients, prefix="warmup", kind=Client)
    await asyncio.gather(*(rehearsal.life(i, c) for i, c in enumerate(members)))  # type: ignore[arg-type]
    if rehearsal.problems:
        raise RuntimeError(f"the warm-up failed: {'; '.join(rehearsal.problems[:3])}")


def _rss(server: Server) -> dict[str, float]:
    return {group: figures["rss_mib"] for group, figures in server.usage().items()}


async def soak(server: Server, secret: str, args: argparse.Namespace) -> dict[str, object]:
    run = Soak(args.clients, args.rooms, args.messages, args.churn, args.timeout)
    fleet = Fleet(server.endpoints["websocket"], secret)
    try:
        clients: list[Client] = await fleet.open(args.clients, prefix="soak", kind=Client,
                                                 label="soak")  # type: ignore[assignment]
        progress(f"{len(clients)} clients connected; warming the workers and DynamoDB")
        await fleet.warm(clients, rounds=1)
        await rehearse(fleet, args.timeout)
        stored_start = await asyncio.to_thread(stored, server.endpoints["dynamodb"])
        rss_start = _rss(server)
        loads = [os.getloadavg()[0]]  # the machine's 1-minute load average, every 5 s
        started = time.perf_counter()
        lives = asyncio.gather(*(run.life(i, c) for i, c in enumerate(clients)))
        # Its outcome is read even when Ctrl-C cancels it, so an interrupt ends quietly.
        lives.add_done_callback(lambda f: f.cancelled() or f.exception())
        total = args.clients * args.messages
        recent: deque[tuple[float, int]] = deque([(started, 0)], maxlen=12)  # the last minute
        while not lives.done():
            await asyncio.wait([lives], timeout=5)
            loads.append(os.getloadavg()[0])
            acked = sum(s.acked < INF for s in run.sent.values())
            received = sum(len(c.messages) for c in clients)
            now = time.perf_counter()
            then, acked_then = recent[0]
            rate = (acked - acked_then) / (now - then)  # over the last minute
            recent.append((now, acked))
            left = f", about {(total - acked) / rate:.0f} s left" if rate > 0 else ""
            joined = sum(any(stay.answered < INF for stays in c.stays.values() for stay in stays)
                         for c in clients)
            joining = f"{joined}/{len(clients)} clients in their room, " \
                if joined < len(clients) else ""
            progress(f"{joining}{acked}/{total} messages acknowledged, {received} deliveries, "
                     f"{now - started:.0f} s{left}")
        await lives
        # Deliveries can trail the acks of other senders' messages by a little: bounded wait.
        expected = None
        deadline = time.perf_counter() + args.timeout
        while time.perf_counter() < deadline:
            tallies = run.check(clients)
            if tallies["missing"] == 0:
                break
            if expected != tallies["missing"]:
                progress(f"waiting for {tallies['missing']} deliveries")
                expected = tallies["missing"]
            await asyncio.sleep(1)
        elapsed = time.perf_counter() - started
        rss_end = _rss(server)
        loads.append(os.getloadavg()[0])
        progress("measuring what DynamoDB stores (a Scan of each table)")
        stored_end = await asyncio.to_thread(stored, server.endpoints["dynamodb"])
        tallies = run.check(clients)
        errors = [e for c in clients for e in c.errors]
    finally:
        await fleet.close()
    return {
        "clients": args.clients, "rooms": args.rooms, "messages_each": args.messages,
        "persist": args.persist,
        "sent": len(run.sent), "acknowledged": sum(s.acked < INF for s in run.sent.values()),
        **tallies, "errors": len(errors), "problems": run.problems[:10],
        "seconds": round(elapsed, 1),
        # How much else competed for the machine's cores.
        "load_average": {"start": round(loads[0], 1), "end": round(loads[-1], 1),
                         "mean": round(sum(loads) / len(loads), 1), "max": round(max(loads), 1)},
        "rss_mib": {group: {"start": rss_start.get(group), "end": mib,
                            "growth": round(mib - rss_start.get(group, 0.0), 1)}
                    for group, mib in rss_end.items()},
        "dynamodb_memory": _memory_per_stored(stored_end - stored_start,
                                              rss_end["dynamodb"] - rss_start["dynamodb"]),
    }


def _memory_per_stored(added: Stored, growth_mib: float) -> dict[str, float]:
    """DynamoDB's RSS growth against what it stored meanwhile."""
    growth = growth_mib * 2**20
    return {"items_stored": added.items, "bytes_stored": added.bytes,
            "rss_growth_bytes": round(growth),
            "growth_per_stored_byte": round(growth / added.bytes, 2) if added.bytes > 0 else None}


def violations(result: dict[str, object]) -> list[str]:
    found = [f"{result[k]} {k}" for k in ("duplicated", "missing", "misordered", "foreign",
                                          "unknown", "errors") if result[k]]
    if result["acknowledged"] != result["clients"] * result["messages_each"]:  # type: ignore[operator]
        found.append(f"{result['acknowledged']} of {result['clients'] * result['messages_each']} "  # type: ignore[operator]
                     "messages acknowledged")
    return found + list(result["problems"])  # type: ignore[call-overload]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--messages", type=int, default=100, help="messages each client sends")
    parser.add_argument("--churn", type=int, default=5,
                        help="every CHURN-th client leaves and joins another room twice (0: none)")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds to wait for any one answer or the last deliveries")
    parser.add_argument("--persist", action="store_true",
                        help="journal DynamoDB's writes as `make run` does (in a temporary "
                             "directory)")
    args = parser.parse_args(argv)
    for name in ("clients", "rooms", "messages"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.churn < 0:
        parser.error("--churn must be 0 or more")
    raise_fd_limit()
    secret = new_secret()
    progress(f"starting apigw-local with the app: {args.clients} clients, {args.rooms} rooms, "
             f"{args.messages} messages each")
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as state, \
                app(secret, ("--persist", state) if args.persist else ()) as server:
            result = asyncio.run(soak(server, secret, args))
    except KeyboardInterrupt:  # the emulator is stopped on the way out
        print("soak: interrupted, nothing checked", file=sys.stderr)
        return 130
    print(json.dumps(result, indent=2))
    found = violations(result)
    for line in found:
        print(f"violation: {line}", file=sys.stderr)
    print("soak: " + ("FAILED" if found else "every message delivered exactly once, in order, "
                      "to its room only"), file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
