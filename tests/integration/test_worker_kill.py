"""`kill -9` of the Lambda worker that is fanning a message out, on the running emulator.

The app's promise (docs/protocol.md, "Sending"): a send whose worker dies anywhere is stored
once; the sender is not acknowledged (it hears "Internal server error", or nothing); its retry
with the same `clientId` is acknowledged as a duplicate and completes the fan-out; readers,
dropping a copy whose `id` they have shown, see every message once and each sender's messages
in the order they were sent.

The kill is exact: the Management API's fault seam is asked before every post, so the second
post of an armed send (the first has reached its reader) is where the worker is killed, while
it waits for that post's answer; that post is not delivered. The message function's worker is
the process under this one whose working directory is the function's code (Lambda starts a
handler in its task root, and so does the emulator); the function runs one invocation at a
time here, so it is the one fanning out.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hostile_support import ROOT, hostile_app
from websockets.sync.client import connect

from apigw_local.gateway.connections import ManagementError

pytestmark = pytest.mark.integration

ROOM = "fault"
READERS = ("bob", "carol", "dave")
SENDS = 8
KILL_AT = (1, 4, 7)  # the seq numbers whose fan-out is killed


MESSAGE_CODE = (ROOT / "functions" / "message").resolve()


class KillMidFanOut:
    """A fault policy: once armed, the second post kills the message function's worker."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.armed = False
        self.posts = 0
        self.killed: list[int] = []
        self.fired = threading.Event()

    def arm(self) -> None:
        with self.lock:
            self.armed, self.posts = True, 0
            self.fired.clear()

    def fault(self, operation: str, connection_id: str) -> ManagementError | None:
        if operation != "PostToConnection":
            return None
        with self.lock:
            if not self.armed:
                return None
            self.posts += 1
            if self.posts < 2:
                return None
            self.armed = False
        pids = processes_in(MESSAGE_CODE)
        for pid in pids:  # never raise here: this runs on the gateway's loop
            os.kill(pid, signal.SIGKILL)
        self.killed += pids
        if pids:
            self.fired.set()
        # The worker is gone; this post is not delivered (its answer would reach nobody).
        return ManagementError(500, "InternalServerErrorException", "worker killed")


def descendants(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        for task in Path(f"/proc/{stack.pop()}/task").glob("*"):
            with contextlib.suppress(OSError):  # ended meanwhile
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                stack += children
    return found


def processes_in(directory: Path) -> list[int]:
    """This process's descendants whose working directory is `directory`."""
    found = []
    for pid in descendants(os.getpid()):
        with contextlib.suppress(OSError):
            if Path(os.readlink(f"/proc/{pid}/cwd")) == directory:
                found.append(pid)
    return found


@pytest.fixture(scope="module")
def killer():
    return KillMidFanOut()


@pytest.fixture(scope="module")
def app(tmp_path_factory, killer):
    with hostile_app(tmp_path_factory.mktemp("kill"), "worker kill", fault_policy=killer,
                     max_concurrency=1) as app:
        yield app


def open_member(app, stack: contextlib.ExitStack, user: str):
    url = f"{app.ep.websocket}?{urlencode({'token': app.token(user)})}"
    ws = stack.enter_context(connect(url, max_size=None, open_timeout=30))
    ws.send(json.dumps({"action": "join", "room": ROOM}))
    while json.loads(ws.recv(30))["type"] != "presence":
        pass
    return ws


def drain(ws, seconds: float) -> list[dict]:
    frames = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            frames.append(json.loads(ws.recv(left)))
        except TimeoutError:
            break
    return frames


def send_until_acked(ws, seq: int, frames: list[dict]) -> tuple[int, bool]:
    """Send seq (text `m{seq}`, clientId `c{seq}`) until acknowledged; (attempts, whether the
    ack says duplicate). Every frame received is appended to `frames`."""
    frame = json.dumps({"action": "send", "room": ROOM, "text": f"m{seq}", "seq": seq,
                        "clientId": f"c{seq}"})
    for attempt in range(1, 6):
        ws.send(frame)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                got = json.loads(ws.recv(deadline - time.monotonic()))
            except TimeoutError:
                break
            frames.append(got)
            if got.get("type") == "ack" and got["clientId"] == f"c{seq}":
                return attempt, got["duplicate"]
            if got.get("message") == "Internal server error" or got.get("type") == "error":
                break  # told it failed: retry the same clientId
    raise AssertionError(f"seq {seq} never acknowledged: {frames[-5:]}")


def test_a_worker_killed_mid_fan_out_loses_nothing_and_duplicates_nothing(app, killer):
    sent: list[dict] = []
    attempts = {}
    with contextlib.ExitStack() as stack:
        sender = open_member(app, stack, "alice")
        readers = {user: open_member(app, stack, user) for user in READERS}
        drain(sender, 1.0)  # presence frames of the joins (and a window's trailing snapshot)
        for seq in range(1, SENDS + 1):
            if seq in KILL_AT:
                killer.arm()
            attempts[seq], duplicate = send_until_acked(sender, seq, sent)
            if seq in KILL_AT:
                assert killer.fired.is_set(), f"seq {seq}: the kill did not happen"
                # Told it failed, or left without an ack, so it retried; the retry found the
                # message stored and completed its fan-out.
                assert attempts[seq] >= 2 and duplicate is True, (seq, attempts[seq])
            else:
                assert (attempts[seq], duplicate) == (1, False), seq
        received = {user: drain(ws, 2.0) for user, ws in readers.items()}
        received["alice"] = sent + drain(sender, 1.0)

    told = [f for f in sent if f.get("message") == "Internal server error"]
    assert len(told) == len(KILL_AT), "the sender hears of each failed send (API Gateway's frame)"
    stored = [item for item in map(json.loads, app.tables()[app.ep.tables["MessagesTable"]])
              if item["room"]["S"] == ROOM]
    stored.sort(key=lambda item: item["id"]["S"])  # the id is the history order
    expected = [f"m{n}" for n in range(1, SENDS + 1)]
    assert [item["text"]["S"] for item in stored] == expected, "stored once each, in order"
    stored_id = {item["text"]["S"]: item["id"]["S"] for item in stored}

    copies = 0
    for user, frames in received.items():
        messages = [f for f in frames if f.get("type") == "message"]
        shown: dict[str, str] = {}
        order = []
        for frame in messages:
            if frame["id"] in shown:
                copies += 1
                continue
            shown[frame["id"]] = frame["text"]
            order.append(frame["text"])
        assert order == expected, f"{user} saw {order}"  # each once, in the sender's order
        assert shown == {stored_id[text]: text for text in expected}, user  # the stored ids
    print(f"\nworker kill: {len(killer.killed)} kill -9 of the message worker mid-fan-out "
          f"({len(KILL_AT)} sends); {SENDS} messages sent, {sum(attempts.values())} send "
          f"attempts; {len(stored)} stored; delivered to {len(received)} members, "
          f"{copies} repeated copies (same id, dropped by readers), 0 missing, 0 duplicated")
