"""The one load client that drives all three servers (apigw-local, Channels, the floor).

Each connection records when each chat message and each `income` push arrives, and keeps its
view of a room's presence the way docs/protocol.md tells clients to: `presence` is the full list,
`joined`/`left` are deltas to it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import websockets

from .harness import progress, token

PRESENCE_FRAMES = ("presence", "joined", "left")


@dataclass
class View:
    """One client's presence view of one room."""

    users: set[str] = field(default_factory=set)
    count: int = 0
    capped: bool = False  # the last snapshot listed fewer users than it counted
    # `joined` users a capped snapshot did not list: each may or may not be in its count
    unsure: int = 0

    def apply(self, frame: dict) -> None:
        kind = frame.get("type")
        if kind == "presence":
            self.users = set(frame.get("members", ()))
            self.count = int(frame.get("count", len(self.users)))
            self.capped, self.unsure = len(self.users) < self.count, 0
        elif kind == "joined" and frame["user"] not in self.users:
            self.users.add(frame["user"])
            self.count += 1
            self.unsure += self.capped
        elif kind == "left" and (frame["user"] in self.users or self.capped):
            self.users.discard(frame["user"])
            self.count -= 1

    def consistent(self, truth: set[str]) -> bool:
        """Every member listed; where the protocol caps the list (docs/protocol.md), every
        listed member is real and the count agrees with the truth."""
        if self.users == truth:
            return True
        return (self.capped and self.users <= truth
                and self.count - self.unsure <= len(truth) <= self.count)


class Member:
    """One connection and what it has received."""

    def __init__(self, ws: websockets.ClientConnection, user: str) -> None:
        self.ws, self.user = ws, user
        self.arrivals: dict[str, float] = {}
        self.incomes: dict[str, float] = {}
        self.views: dict[str, View] = {}
        self.answered: set[str] = set()  # rooms whose `join` was answered
        self.errors: list[dict] = []
        self.frames = 0  # every frame received, whatever it is
        self.closed = False
        self.reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                now = time.perf_counter()
                self.frames += 1
                frame = json.loads(raw)
                self.received(frame, now)
                kind = frame.get("type")
                if kind == "message":
                    self.arrivals[frame["text"]] = now
                elif kind in PRESENCE_FRAMES:
                    self.views.setdefault(frame["room"], View()).apply(frame)
                    if kind == "presence":
                        self.answered.add(frame["room"])
                elif kind == "history":
                    self.answered.add(frame["room"])
                elif kind == "income":
                    updated = frame.get("updated") or {}
                    self.incomes[updated.get("transactionId") or ""] = now
                elif kind == "error":
                    self.errors.append(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = True

    def received(self, frame: dict, now: float) -> None:
        """Every frame as it arrives, before it is tallied: a hook for clients that check more."""

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))


class Fleet:
    """Many connections to one server. `url` is its WebSocket endpoint; with `secret`, each
    connection carries a token (the app reads it; the baselines read `user`)."""

    def __init__(self, url: str, secret: str | None) -> None:
        self.url, self.secret = url, secret
        self.members: list[Member] = []

    def url_for(self, user: str, room: str | None, role: str) -> str:
        query = {"user": user}
        if self.secret:
            query["token"] = token(self.secret, user, role)
        if room:
            query["room"] = room
        return f"{self.url}?{urlencode(query)}"

    async def open(self, count: int, *, prefix: str = "user", room: str | None = None,
                   role: str = "user", concurrency: int = 50, read: bool = True,
                   label: str = "", kind: type[Member] = Member) -> list[Member]:
        """`count` more connections, at most `concurrency` handshakes in flight; returns them."""
        slots = asyncio.Semaphore(concurrency)
        start = len(self.members)
        opened: list[Member] = []
        report_every = max(1000, count // 10)

        async def one(n: int) -> None:
            user = f"{prefix}{n}"
            async with slots:
                ws = await websockets.connect(
                    self.url_for(user, room, role), max_queue=None, ping_interval=None,
                    open_timeout=60, compression=None)
            member = kind(ws, user)
            if read:
                member.start()
            opened.append(member)
            if label and len(opened) % report_every == 0:
                progress(f"{label}: {len(opened)}/{count} connected")

        results = await asyncio.gather(*(one(start + n) for n in range(count)),
                                       return_exceptions=True)
        self.members += opened
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise RuntimeError(f"{len(failures)} of {count} connections failed; first: "
                               f"{failures[0]!r}")
        return opened

    async def warm(self, members: list[Member], rounds: int = 2, timeout: float = 60) -> bool:
        """Every member pings at once, `rounds` times, and waits for the answers (the app's
        `pong`, the baselines' echo): the server's worker pool grows to its size before a
        figure is measured, so cold starts are measured on their own (echo, from cold)."""
        for _ in range(rounds):
            seen = [m.frames for m in members]
            await asyncio.gather(*(m.send({"action": "ping"}) for m in members))
            if not await self.wait(lambda s=seen: all(m.frames > n for m, n in zip(members, s,
                                                                                   strict=True)),
                                   timeout, poll=0.02):
                return False
        return True

    async def close(self) -> None:
        for member in self.members:
            if member.reader:
                member.reader.cancel()
        for member in self.members:  # no closing handshake: the server may be gone already
            member.ws.transport.abort()
        self.members.clear()

    async def wait(self, done, timeout: float, poll: float = 0.005) -> bool:  # type: ignore[no-untyped-def]
        """Until `done()` is true (True) or `timeout` seconds pass (False)."""
        deadline = time.perf_counter() + timeout
        while not done():
            if time.perf_counter() > deadline:
                return False
            await asyncio.sleep(poll)
        return True


def delivered(members: list[Member], texts: list[str]) -> int:
    return sum(1 for m in members for t in texts if t in m.arrivals)
