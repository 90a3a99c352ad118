"""Events: what a deployed function receives on CONNECT, MESSAGE and DISCONNECT.

Captured over real sockets by fixture handlers that write their event to a file, then validated
against Powertools' APIGatewayWebSocket*EventModel and checked field by field (docs/fidelity.md,
rows E1-E3).
"""

import re

from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)

from apigw_local.testing import connect

# requestContext fields every WebSocket event carries (Lambda developer guide's sample events).
COMMON = {"routeKey", "eventType", "extendedRequestId", "requestTime", "messageDirection",
          "stage", "connectedAt", "requestTimeEpoch", "identity", "requestId", "domainName",
          "connectionId", "apiId"}
REQUEST_TIME = re.compile(r"^\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000$")
UA = "conformance-client/1.0"


def check_common(ctx, *, event_type, route_key, cid, connected_at=None):
    assert set(ctx) >= COMMON, COMMON - set(ctx)
    assert (ctx["eventType"], ctx["routeKey"], ctx["messageDirection"]) == (
        event_type, route_key, "IN")
    assert ctx["connectionId"] == cid and ctx["stage"] == "dev"
    assert ctx["identity"] == {"sourceIp": "127.0.0.1", "userAgent": UA}
    assert REQUEST_TIME.match(ctx["requestTime"]), ctx["requestTime"]
    assert ctx["connectedAt"] <= ctx["requestTimeEpoch"]
    assert ctx["domainName"].startswith("localhost:") and len(ctx["apiId"]) == 10
    assert ctx["extendedRequestId"] and ctx["requestId"]
    if connected_at is not None:
        assert ctx["connectedAt"] == connected_at


async def test_connect_message_disconnect_events(gateway):
    ep, rec = gateway
    url = f"{ep.websocket}?room=a&room=b&token=t"
    async with connect(url, headers={"X-Custom": "yes"}, user_agent_header=UA) as ws:
        await ws.send("plain text, not JSON")
        mirrored = await ws.receive_json(timeout=15)
        cid = mirrored["requestContext"]["connectionId"]
        await ws.close(4001, "done here")

    connect_event = await rec.wait("CONNECT", cid)
    APIGatewayWebSocketConnectEventModel.model_validate(connect_event)
    ctx = connect_event["requestContext"]
    check_common(ctx, event_type="CONNECT", route_key="$connect", cid=cid)
    headers = connect_event["headers"]
    assert headers["X-Custom"] == "yes" and headers["User-Agent"] == UA
    for name in ("Host", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "X-Amzn-Trace-Id",
                 "X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"):
        assert name in headers, name
    # API Gateway consumes the upgrade itself: $connect does not see Connection/Upgrade.
    assert not {"connection", "upgrade"} & {k.lower() for k in headers}
    assert connect_event["multiValueHeaders"]["X-Custom"] == ["yes"]
    assert connect_event["queryStringParameters"] == {"room": "b", "token": "t"}
    assert connect_event["multiValueQueryStringParameters"] == {"room": ["a", "b"],
                                                                "token": ["t"]}
    assert connect_event["isBase64Encoded"] is False

    message = await rec.wait("MESSAGE", cid)
    APIGatewayWebSocketMessageEventModel.model_validate(message)
    mctx = message["requestContext"]
    check_common(mctx, event_type="MESSAGE", route_key="$default", cid=cid,
                 connected_at=ctx["connectedAt"])
    assert mctx["messageId"] and mctx["requestId"] != ctx["requestId"]
    assert message["body"] == "plain text, not JSON" and message["isBase64Encoded"] is False
    assert "headers" not in message  # MESSAGE events carry no handshake headers

    disconnect = await rec.wait("DISCONNECT", cid)
    APIGatewayWebSocketDisconnectEventModel.model_validate(disconnect)
    dctx = disconnect["requestContext"]
    check_common(dctx, event_type="DISCONNECT", route_key="$disconnect", cid=cid,
                 connected_at=ctx["connectedAt"])
    assert (dctx["disconnectStatusCode"], dctx["disconnectReason"]) == (4001, "done here")
    assert set(disconnect["headers"]) == {"Host", "x-api-key", "X-Forwarded-For", "x-restapi"}
    assert disconnect["isBase64Encoded"] is False


async def test_connect_without_query_has_no_query_maps(gateway):
    ep, rec = gateway
    async with connect(ep.websocket, user_agent_header=UA) as ws:
        await ws.send_json({"action": "whoami"})
        cid = (await ws.receive_json(timeout=15))["requestContext"]["connectionId"]
    event = await rec.wait("CONNECT", cid)
    assert "queryStringParameters" not in event
    assert "multiValueQueryStringParameters" not in event
