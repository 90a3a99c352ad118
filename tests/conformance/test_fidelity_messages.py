"""Messages: API Gateway's own frames for failed and unroutable messages, byte for byte, and a
handler written exactly as AWS's documentation writes one (docs/fidelity.md, rows M1-M3)."""

import re

from apigw_local.testing import connect

ID = r"[A-Za-z0-9_=+/-]{16}"
# AWS's template: a space after the first colon and the commas, none after the later colons.
FRAME = re.compile(rf'^\{{"message": "(?P<message>[^"]+)", "connectionId":"(?P<cid>{ID})", '
                   rf'"requestId":"(?P<rid>{ID})"\}}$')


async def own_id(ws):
    await ws.send_json({"action": "whoami"})
    return (await ws.receive_json(timeout=15))["requestContext"]["connectionId"]


async def test_handler_exception_answers_internal_server_error_and_stays_open(gateway):
    ep, _ = gateway
    async with connect(ep.websocket) as ws:
        cid = await own_id(ws)
        await ws.send_json({"action": "crash"})
        frame = FRAME.match(await ws.receive(timeout=15))
        assert frame and frame["message"] == "Internal server error" and frame["cid"] == cid
        await ws.send_json({"action": "crash"})
        again = FRAME.match(await ws.receive(timeout=15))
        assert again and again["rid"] != frame["rid"]  # one requestId per message
        assert await own_id(ws) == cid  # still connected


async def test_no_route_and_no_default_answers_forbidden(gateway):
    ep, _ = gateway
    async with connect(ep.websockets["StrictApi"]) as ws:
        for body in ('{"action": "nope"}', "not json"):
            await ws.send(body)
            frame = FRAME.match(await ws.receive(timeout=15))
            assert frame and frame["message"] == "Forbidden"
        await ws.send_json({"action": "echo"})
        assert (await ws.receive_json(timeout=15))["requestContext"]["routeKey"] == "echo"


async def test_handler_in_aws_documentation_style_works_unmodified(gateway):
    ep, _ = gateway
    async with connect(ep.websocket) as ws:
        await ws.send_json({"action": "hello"})
        assert await ws.receive(timeout=15) == "Hello!"
