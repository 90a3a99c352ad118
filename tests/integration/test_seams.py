"""The seams others build on: observers of invocations and connections, and a fault policy on
the @connections path, through `serve()` with real workers."""

import asyncio
import time
from pathlib import Path

import pytest

from apigw_local.gateway.connections import ManagementError
from apigw_local.testing import connect, serve

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[1] / "fixtures" / "gateway" / "template.yaml"


class Recorder:
    def __init__(self):
        self.invocations, self.lifecycle = [], []

    def invocation(self, record):
        self.invocations.append(record)

    def connection(self, event, info, detail):
        self.lifecycle.append((event, info.connection_id, dict(detail)))


class GoneOnce:
    """Answers the first PostToConnection with 410, as a chaos mode might."""

    def __init__(self):
        self.faulted = []

    def fault(self, operation, connection_id):
        if operation == "PostToConnection" and not self.faulted:
            self.faulted.append(connection_id)
            return ManagementError(410, "GoneException")
        return None


def test_observers_and_fault_policy(tmp_path):
    recorder, chaos = Recorder(), GoneOnce()
    with serve(FIXTURE, parameter_overrides={"LogDir": str(tmp_path)}, observers=[recorder],
               fault_policy=chaos) as ep:
        async def scenario():
            async with connect(ep.websocket) as ws:
                await ws.send_json({"action": "echo", "n": 1})
                assert await ws.receive_json(timeout=15) == {"action": "echo", "n": 1}
                # $default answers through PostToConnection: the policy makes it fail once,
                # so the handler raises GoneException and the client gets the error frame.
                await ws.send("first")
                assert (await ws.receive_json(timeout=15))["message"] == \
                    "Internal server error"
                await ws.send("second")
                assert (await ws.receive_json(timeout=15))["echo"] == "second"
        asyncio.run(scenario())
        deadline = time.monotonic() + 10
        while not any(e == "disconnected" for e, *_ in recorder.lifecycle):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    [(_, cid, _), (_, cid2, detail)] = recorder.lifecycle
    assert cid == cid2 and detail["code"] == 1000
    assert chaos.faulted == [cid]
    by_route = {}
    for record in recorder.invocations:
        by_route.setdefault(record.route_key, []).append(record)
    assert by_route["echo"][0].status == "ok" and by_route["echo"][0].connection_id == cid
    assert [r.status for r in by_route["$default"]] == ["GoneException", "ok"]
    assert any("GoneException" in line for line in by_route["$default"][0].logs)
    assert {"$connect", "$disconnect"} <= set(by_route)
    assert all(r.request_id and r.duration_ms > 0 for r in recorder.invocations)
