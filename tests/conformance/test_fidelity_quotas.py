"""Quotas: the maximum connection duration, and traffic from the backend keeping a connection
out of the idle timeout (docs/fidelity.md, rows Q5-Q6). The gateway here is configured with a
0.6 s idle timeout and a 2 s maximum duration instead of AWS's 10 min and 2 h."""

import asyncio
import contextlib

from websockets.exceptions import ConnectionClosed

from apigw_local.testing import connect


async def test_outbound_traffic_resets_idle_and_max_duration_closes_1001(
    short_gateway, management_client
):
    """Measured on the gateway's own clock (the $disconnect event's requestTimeEpoch minus the
    connection's connectedAt), so a slow test client cannot move the figure; the backend posts
    back to back, so no gap of 0.6 s opens for the idle timeout unless the gateway is broken."""
    ep, rec = short_gateway
    client = management_client(ep.connections)
    ws = await connect(ep.websocket)
    await ws.send_json({"action": "whoami"})
    context = (await ws.receive_json(timeout=60))["requestContext"]
    cid, connected_at = context["connectionId"], context["connectedAt"]
    closed = asyncio.Event()

    def post_until_gone() -> int:
        """Only the backend talks from here on; how many posts it made."""
        posts = 0
        while not closed.is_set():
            try:
                client.post_to_connection(ConnectionId=cid, Data=b"tick")
            except client.exceptions.GoneException:
                break
            posts += 1
        return posts

    async def read_until_closed() -> None:  # a client that reads what it is sent
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws.connection:
                pass

    backend = asyncio.create_task(asyncio.to_thread(post_until_gone))
    reader = asyncio.create_task(read_until_closed())
    try:
        # A connection that outlives its maximum duration many times over is a failure.
        code = await ws.wait_closed(timeout=60)
    finally:
        closed.set()
        await reader
    assert await backend > 1  # the backend kept talking until the close
    assert code == 1001 and ws.connection.close_reason == "Going away"
    ctx = (await rec.wait("DISCONNECT", cid, timeout=60))["requestContext"]
    assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (1001, "Going away")
    lived = (ctx["requestTimeEpoch"] - connected_at) / 1000
    # Never before the 2 s maximum (an idle close would come earlier); late by at most the
    # gateway's own scheduling, bounded generously for a loaded machine.
    assert 2.0 - 0.002 <= lived < 2.0 + 5.0, lived  # (timestamps in whole milliseconds)


async def test_idle_connection_closes_1001_going_away(short_gateway, management_client):
    """On the gateway's clock: from the last message it received to its $disconnect."""
    ep, rec = short_gateway
    ws = await connect(ep.websocket)
    await ws.send_json({"action": "whoami"})
    context = (await ws.receive_json(timeout=60))["requestContext"]
    cid, last_message = context["connectionId"], context["requestTimeEpoch"]
    assert await ws.wait_closed(timeout=60) == 1001
    ctx = (await rec.wait("DISCONNECT", cid, timeout=60))["requestContext"]
    assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (1001, "Going away")
    quiet = (ctx["requestTimeEpoch"] - last_message) / 1000
    # Never early (whole milliseconds), late only by the gateway's own scheduling.
    assert 0.6 - 0.002 <= quiet < 0.6 + 5.0, quiet
