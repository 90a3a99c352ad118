"""The Management API (@connections) through boto3, as a backend calls it
(docs/fidelity.md, rows G1-G5)."""

import asyncio
import time

import pytest

from apigw_local.testing import connect

UA = "conformance-client/1.0"


async def own_id(ws):
    await ws.send_json({"action": "whoami"})
    return (await ws.receive_json(timeout=15))["requestContext"]["connectionId"]


async def call(fn, **kwargs):
    return await asyncio.to_thread(fn, **kwargs)


async def test_get_connection_reports_identity_and_last_active_moves(gateway, management_client):
    ep, rec = gateway
    client = management_client(ep.connections)
    async with connect(ep.websocket, user_agent_header=UA) as ws:
        cid = await own_id(ws)
        first = await call(client.get_connection, ConnectionId=cid)
        connected_at = (await rec.wait("CONNECT", cid))["requestContext"]["connectedAt"]
        assert int(first["ConnectedAt"].timestamp() * 1000) == connected_at
        assert first["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": UA}
        assert first["LastActiveAt"] >= first["ConnectedAt"]

        time.sleep(0.01)
        await call(client.post_to_connection, ConnectionId=cid, Data=b"outbound")
        assert await ws.receive(timeout=10) == "outbound"
        after_out = await call(client.get_connection, ConnectionId=cid)
        assert after_out["LastActiveAt"] > first["LastActiveAt"]  # outbound traffic counts

        time.sleep(0.01)
        await own_id(ws)
        after_in = await call(client.get_connection, ConnectionId=cid)
        assert after_in["LastActiveAt"] > after_out["LastActiveAt"]  # so does inbound
        assert after_in["ConnectedAt"] == first["ConnectedAt"]


async def test_delete_closes_the_socket_and_runs_disconnect(gateway, management_client):
    ep, rec = gateway
    client = management_client(ep.connections)
    ws = await connect(ep.websocket)
    cid = await own_id(ws)
    await call(client.delete_connection, ConnectionId=cid)
    assert await ws.wait_closed(timeout=10) == 1000
    ctx = (await rec.wait("DISCONNECT", cid))["requestContext"]
    assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (
        1000, "Connection Closed Normally")
    for op, extra in ((client.post_to_connection, {"Data": b"late"}),
                      (client.get_connection, {}), (client.delete_connection, {})):
        with pytest.raises(client.exceptions.GoneException):
            await call(op, ConnectionId=cid, **extra)


async def test_unknown_connection_is_gone_for_every_operation(gateway, management_client):
    ep, _ = gateway
    client = management_client(ep.connections)
    unknown = "AAAAAAAAAAAAAAA="
    for op, extra in ((client.post_to_connection, {"Data": b"x"}),
                      (client.get_connection, {}), (client.delete_connection, {})):
        with pytest.raises(client.exceptions.GoneException) as exc:
            await call(op, ConnectionId=unknown, **extra)
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


async def test_data_over_128_kb_is_payload_too_large_and_128_kb_passes(gateway, management_client):
    ep, _ = gateway
    client = management_client(ep.connections)
    async with connect(ep.websocket) as ws:
        cid = await own_id(ws)
        with pytest.raises(client.exceptions.PayloadTooLargeException) as exc:
            await call(client.post_to_connection, ConnectionId=cid, Data=b"x" * (128 * 1024 + 1))
        assert exc.value.response["Error"]["Code"] == "PayloadTooLargeException"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
        await call(client.post_to_connection, ConnectionId=cid, Data=b"y" * (128 * 1024))
        assert len(await ws.receive(timeout=10)) == 128 * 1024
