"""Connect: `$connect`'s answer decides the handshake; REQUEST authorizers from the template
(docs/fidelity.md, rows C1-C4)."""

import pytest
from websockets.exceptions import InvalidStatus

from apigw_local.testing import connect


@pytest.mark.parametrize("status", [201, 204])
async def test_any_2xx_from_connect_accepts(gateway, status):
    ep, _ = gateway
    async with connect(ep.websocket, query={"status": str(status)}) as ws:
        await ws.send_json({"action": "x"})
        assert (await ws.receive_json(timeout=15))["requestContext"]["eventType"] == "MESSAGE"


@pytest.mark.parametrize("status", [301, 400, 429, 501])
async def test_non_2xx_from_connect_refuses_with_that_status(gateway, status):
    ep, _ = gateway
    with pytest.raises(InvalidStatus) as exc:
        await connect(ep.websocket, query={"status": str(status)})
    assert exc.value.response.status_code == status


def auth_calls(rec):
    return len(rec.all("AUTHORIZER"))


@pytest.mark.parametrize("query, headers", [
    ({}, {"X-Client": "c1"}),                   # query-string identity source missing
    ({"token": "allow"}, {}),                   # header identity source missing
    ({"token": ""}, {"X-Client": "c1"}),        # present but empty
])
async def test_missing_identity_source_is_401_without_invoking(gateway, query, headers):
    ep, rec = gateway
    before = auth_calls(rec)
    with pytest.raises(InvalidStatus) as exc:
        await connect(ep.websockets["AuthApi"], query=query, headers=headers)
    assert exc.value.response.status_code == 401
    assert auth_calls(rec) == before


@pytest.mark.parametrize("token, status", [("deny", 403), ("unauthorized", 401), ("boom", 500)])
async def test_authorizer_refusals(gateway, token, status):
    ep, rec = gateway
    before = auth_calls(rec)
    with pytest.raises(InvalidStatus) as exc:
        await connect(ep.websockets["AuthApi"], query={"token": token},
                      headers={"X-Client": "c1"})
    assert exc.value.response.status_code == status
    assert auth_calls(rec) == before + 1


async def test_allow_passes_principal_and_context_to_every_later_event(gateway):
    ep, rec = gateway
    async with connect(ep.websockets["AuthApi"], query={"token": "allow"},
                       headers={"X-Client": "c1"}) as ws:
        await ws.send("hi")
        message = await ws.receive_json(timeout=15)
        cid = message["requestContext"]["connectionId"]
    expected = {"principalId": "user-42", "role": "admin", "level": 3, "active": True}
    assert message["requestContext"]["authorizer"] == expected
    assert (await rec.wait("CONNECT", cid))["requestContext"]["authorizer"] == expected
    assert (await rec.wait("DISCONNECT", cid))["requestContext"]["authorizer"] == expected

    auth = await rec.wait("AUTHORIZER", cid)
    api_id = message["requestContext"]["apiId"]
    assert auth["type"] == "REQUEST"
    assert auth["methodArn"] == f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/auth/$connect"
    # The authorizer's input, unlike $connect's event, keeps Connection and Upgrade.
    lower = {k.lower(): v for k, v in auth["headers"].items()}
    assert lower["upgrade"].lower() == "websocket" and "upgrade" in lower["connection"].lower()
    assert lower["content-length"] == "0" and lower["x-client"] == "c1"
    assert auth["multiValueHeaders"]["X-Client"] == ["c1"]
    assert auth["queryStringParameters"] == {"token": "allow"}
    assert auth["multiValueQueryStringParameters"] == {"token": ["allow"]}
    assert auth["stageVariables"] == {}
    assert auth["requestContext"]["eventType"] == "CONNECT"
    assert "authorizer" not in auth["requestContext"]
