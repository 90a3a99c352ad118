"""docs/chaos.md's example, run as written: under `gone=0.3` a fan-out that stops at the first
GoneException leaves connected clients without the message; the careful one reaches them all.
And the project's own app keeps delivering a room's messages under the same chaos."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import jwt
import pytest
from docfiles import doc_files, write_files
from websockets.exceptions import ConnectionClosed

from apigw_local.testing import connect, serve

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
CLIENTS = 8
CHAOS = "gone=0.3,seed=7"


async def broadcast(endpoints, route: str) -> tuple[int, int]:
    """(clients still connected, of those how many got the message)."""
    clients = [await connect(endpoints.websocket) for _ in range(CLIENTS)]
    try:
        await clients[0].send_json({"action": route, "text": "hi all"})
        got = set()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            for i, ws in enumerate(clients):
                if i in got or ws.close_code is not None:
                    continue
                try:
                    if not await ws.receive_nothing(0.01):
                        got.add(i)
                except ConnectionClosed:  # chaos dropped it: a Gone was true
                    pass
            open_now = [i for i, ws in enumerate(clients) if ws.close_code is None]
            if set(open_now) <= got:
                break
        open_now = [i for i, ws in enumerate(clients) if ws.close_code is None]
        return len(open_now), len(got & set(open_now))
    finally:
        for ws in clients:
            await ws.close()


@pytest.fixture
def example(tmp_path):
    files = doc_files("chaos.md")
    assert {"template.yaml", "broadcast/app.py"} <= set(files)
    write_files(tmp_path, files)
    return tmp_path / "template.yaml"


def test_naive_fanout_fails_under_chaos(example):
    with serve(example, chaos=CHAOS) as endpoints:
        still_open, reached = asyncio.run(broadcast(endpoints, "naive"))
    assert still_open > 0 and reached < still_open  # the bug, caught


def test_careful_fanout_passes_under_chaos(example):
    with serve(example, chaos=CHAOS) as endpoints:
        still_open, reached = asyncio.run(broadcast(endpoints, "careful"))
    assert still_open > 0 and reached == still_open


def test_without_chaos_the_naive_fanout_looks_fine(example):
    with serve(example) as endpoints:
        still_open, reached = asyncio.run(broadcast(endpoints, "naive"))
    assert still_open == reached == CLIENTS  # which is why the bug ships


SECRET = "chaos-secret-" + "x" * 32


def token(sub: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": "user", "iat": now, "exp": now + 3600}, SECRET,
                      algorithm="HS256")


def test_app_room_survives_gone_connections():
    """The app's fan-out under chaos: every member still connected gets the room's message."""
    templates = [ROOT / "template.yaml", ROOT / "local" / "template.yaml"]

    async def scenario(endpoints) -> tuple[int, int]:
        room = f"chaos{int(time.time() * 1000)}"
        # Joined from $connect (`?room=`), which posts nothing: the message's fan-out is the
        # first thing chaos meets.
        members = [await connect(endpoints.websocket, query={"token": token(f"m{i}"),
                                                             "room": room})
                   for i in range(CLIENTS)]
        await members[0].send_json({"action": "send", "room": room, "text": "still here?"})
        reached = 0
        for ws in members:
            try:
                await ws.receive_until(lambda f: f.get("type") == "message"
                                       and f.get("text") == "still here?", timeout=15)
                reached += 1
            except ConnectionClosed:  # chaos answered Gone for it and dropped it
                pass
        still_open = sum(ws.close_code is None for ws in members)
        for ws in members:
            await ws.close()
        return still_open, reached

    with serve(templates, parameter_overrides={"AuthSecret": SECRET},
               chaos="gone=0.3,seed=3") as endpoints:
        still_open, reached = asyncio.run(scenario(endpoints))
    assert 0 < still_open < CLIENTS  # chaos did drop some, and some are left
    assert reached == still_open


def test_chaos_spec_errors_are_clear():
    from apigw_local.chaos import ChaosError

    with pytest.raises(ChaosError, match="expected a fraction"), \
            serve(ROOT / "tests" / "fixtures" / "devloop" / "template.yaml", chaos="gone=2"):
        pass
