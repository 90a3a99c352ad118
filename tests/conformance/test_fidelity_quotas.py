"""Quotas: the maximum connection duration, and traffic from the backend keeping a connection
out of the idle timeout (docs/fidelity.md, rows Q5-Q6). The gateway here is configured with a
0.6 s idle timeout and a 2 s maximum duration instead of AWS's 10 min and 2 h."""

import asyncio
import time

from websockets.exceptions import ConnectionClosed

from apigw_local.testing import connect


async def test_outbound_traffic_resets_idle_and_max_duration_closes_1001(
    short_gateway, management_client
):
    ep, rec = short_gateway
    client = management_client(ep.connections)
    opened = time.monotonic()  # the duration counts from connectedAt, before $connect ran
    ws = await connect(ep.websocket)
    await ws.send_json({"action": "whoami"})
    cid = (await ws.receive_json(timeout=15))["requestContext"]["connectionId"]
    # Only the backend talks from here on, every 0.3 s: idle (0.6 s) never fires.
    try:
        while time.monotonic() - opened < 5:
            await asyncio.to_thread(client.post_to_connection, ConnectionId=cid, Data=b"tick")
            await ws.receive(timeout=2)
            await asyncio.sleep(0.3)
    except (ConnectionClosed, client.exceptions.GoneException):
        pass
    lived = time.monotonic() - opened
    assert await ws.wait_closed(timeout=5) == 1001
    assert ws.connection.close_reason == "Going away"
    assert 1.95 <= lived < 3.5, lived
    ctx = (await rec.wait("DISCONNECT", cid))["requestContext"]
    assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (1001, "Going away")


async def test_idle_connection_closes_1001_going_away(short_gateway, management_client):
    ep, rec = short_gateway
    ws = await connect(ep.websocket)
    await ws.send_json({"action": "whoami"})
    cid = (await ws.receive_json(timeout=15))["requestContext"]["connectionId"]
    quiet_from = time.monotonic()
    assert await ws.wait_closed(timeout=5) == 1001
    assert 0.5 <= time.monotonic() - quiet_from < 2.0
    ctx = (await rec.wait("DISCONNECT", cid))["requestContext"]
    assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (1001, "Going away")
