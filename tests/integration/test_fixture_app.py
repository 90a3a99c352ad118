"""apigw-local end to end on its own fixture template: real workers, real sockets, real clients."""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)
from http_support import http
from websockets.exceptions import InvalidStatus

from apigw_local.testing import connect, serve

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[1] / "fixtures" / "gateway"


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def ep(logdir):
    with serve(FIXTURE / "template.yaml", parameter_overrides={"LogDir": str(logdir)},
               static_dir=FIXTURE / "web") as endpoints:
        yield endpoints


async def test_unmodified_aws_handler_posts_back_over_https(ep):
    async with connect(ep.websocket) as ws:
        await ws.send("hello")
        reply = await ws.receive_json(timeout=15)
        assert reply["echo"] == "hello"
        event = reply["event"]
        APIGatewayWebSocketMessageEventModel.model_validate(event)
        assert event["requestContext"]["domainName"].startswith("localhost:")
        await ws.send_json({"getself": True})
        got = await ws.receive_json(timeout=10)
        assert got["identity"]["SourceIp"] == "127.0.0.1"


async def test_crash_then_next_message_works(ep):
    async with connect(ep.websocket) as ws:
        await ws.send_json({"action": "crash"})
        frame = await ws.receive_json(timeout=15)
        assert frame["message"] == "Internal server error"
        assert set(frame) == {"message", "connectionId", "requestId"}
        await ws.send_json({"action": "echo", "n": 2})
        assert await ws.receive_json(timeout=10) == {"action": "echo", "n": 2}


async def test_slow_handler_is_cut_at_its_timeout(ep):
    async with connect(ep.websocket) as ws:
        started = time.monotonic()
        await ws.send_json({"action": "slow"})
        frame = await ws.receive_json(timeout=15)
        elapsed = time.monotonic() - started
        assert frame["message"] == "Internal server error"
        assert 0.9 <= elapsed < 5, elapsed  # Timeout: 1 in the template
        await ws.send_json({"action": "echo"})
        assert await ws.receive_json(timeout=10) == {"action": "echo"}


async def test_disconnect_runs_once_with_the_client_code(ep, logdir):
    ws = await connect(ep.websocket)
    await ws.send_json({"action": "echo"})
    await ws.receive_json(timeout=10)
    cid = None
    await ws.close(4000, "bye")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        files = list(logdir.glob("disconnect-*.json"))
        events = [json.loads(f.read_text()) for f in files]
        mine = [e for e in events if e["requestContext"]["disconnectStatusCode"] == 4000]
        if mine:
            cid = mine[0]["requestContext"]["connectionId"]
            APIGatewayWebSocketDisconnectEventModel.model_validate(mine[0])
            assert mine[0]["requestContext"]["disconnectReason"] == "bye"
            break
        await asyncio.sleep(0.05)
    assert cid is not None


async def test_gone_connection_from_a_handler_and_boto3(ep):
    import boto3

    async with connect(ep.websocket) as a:
        await a.send_json({"action": "echo"})
        await a.receive_json(timeout=10)
    async with connect(ep.websocket) as b:
        await b.send("x")
        cid_b = (await b.receive_json(timeout=15))["event"]["requestContext"]["connectionId"]
    client = boto3.client("apigatewaymanagementapi", endpoint_url=ep.connections,
                          region_name="us-east-1", aws_access_key_id="t",
                          aws_secret_access_key="t")
    with pytest.raises(client.exceptions.GoneException):
        await asyncio.to_thread(client.post_to_connection, ConnectionId=cid_b, Data=b"x")
    async with connect(ep.websocket) as c:
        await c.send_json({"to": cid_b})
        assert await c.receive_json(timeout=15) == {"gone": cid_b}


async def test_aws_cli_posts_to_a_connection(ep):
    probe = subprocess.run([sys.executable, "-m", "awscli", "--version"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("awscli is not installed (pip install awscli)")
    async with connect(ep.websocket) as ws:
        await ws.send("x")
        cid = (await ws.receive_json(timeout=15))["event"]["requestContext"]["connectionId"]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t",
               "AWS_DEFAULT_REGION": "us-east-1"}
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "awscli", "apigatewaymanagementapi", "post-to-connection",
             "--endpoint-url", ep.connections, "--connection-id", cid, "--data", "from-cli"],
            capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        assert await ws.receive(timeout=10) == "from-cli"
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "awscli", "apigatewaymanagementapi", "get-connection",
         "--endpoint-url", ep.connections, "--connection-id", cid],
        capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0 and "GoneException" in result.stderr


async def test_authorizer_api(ep):
    auth_url = ep.websockets["AuthApi"]
    for query, status in (({}, 401), ({"token": "wrong"}, 403)):
        with pytest.raises(InvalidStatus) as exc:
            await connect(auth_url, query=query)
        assert exc.value.response.status_code == status
    async with connect(auth_url, query={"token": "fixture-secret"}) as ws:
        await ws.send("via authorizer")
        assert await ws.receive(timeout=15) == "via authorizer"


async def test_connect_refusal_statuses(ep):
    with pytest.raises(InvalidStatus) as exc:
        await connect(ep.websocket, query={"reject": "403"})
    assert exc.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as exc:
        await connect(ep.websocket, query={"crash": "1"})
    assert exc.value.response.status_code == 502


def test_http_api_payload_v2(ep):
    status, headers, body = http("GET", f"{ep.http}/items/42?x=1&x=2",
                                 headers={"Cookie": "a=1; b=2"})
    assert status == 200 and headers["x-fixture"] == "1"
    assert headers["Set-Cookie"] == "a=1; Path=/"
    event = json.loads(body)["event"]
    assert event["routeKey"] == "GET /items/{id}" and event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"x": "1,2"} and event["cookies"] == ["a=1", "b=2"]
    status, headers, body = http("GET", f"{ep.http}/items/bare")
    assert (status, json.loads(body)) == (200, {"bare": True})
    assert headers["Content-Type"] == "application/json"
    status, _, body = http("GET", f"{ep.http}/items/crash")
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
    status, _, body = http("GET", f"{ep.http}/nothing/here")
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
    status, _, body = http("DELETE", f"{ep.http}/any/deep/path")
    assert json.loads(body)["event"]["pathParameters"] == {"proxy": "deep/path"}


async def test_http_route_reaches_a_websocket_client(ep):
    async with connect(ep.websocket) as ws:
        await ws.send("x")
        cid = (await ws.receive_json(timeout=15))["event"]["requestContext"]["connectionId"]
        payload = json.dumps({"endpoint": ep.connections, "connectionId": cid}).encode()
        status, _, _ = await asyncio.to_thread(
            http, "POST", f"{ep.http}/items/1/notify", payload,
            {"Content-Type": "application/json"})
        assert status == 202
        assert await ws.receive_json(timeout=10) == {"notified": True}


def test_static_files_and_endpoints(ep):
    status, headers, body = http("GET", f"{ep.http}/")
    assert status == 200 and b"hello" in body and headers["Content-Type"].startswith("text/html")
    status, headers, _ = http("GET", f"{ep.http}/sub/app.js")
    assert headers["Content-Type"].startswith("application/javascript")
    for path in ("/../template.yaml", "/%2e%2e/template.yaml", "/sub/../../template.yaml"):
        assert http("GET", f"{ep.http}{path}")[0] == 404
    status, _, body = http("GET", f"{ep.http}/.apigw-local/endpoints.json")
    assert json.loads(body) == {"websocket": ep.websocket, "http": ep.http,
                                "connections": ep.connections, "web": ep.web,
                                "inspector": ep.inspector}


def test_cors_follows_the_templates_configuration(ep):
    # An allowed origin: API Gateway answers the preflight itself, with the configuration.
    status, headers, _ = http("OPTIONS", f"{ep.http}/items/1", headers={
        "Origin": "http://example.test", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "http://example.test"
    assert headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert headers["Access-Control-Allow-Headers"] == "authorization"
    assert headers["Access-Control-Max-Age"] == "300"
    # "https://*" allows any https origin.
    status, headers, _ = http("OPTIONS", f"{ep.http}/items/1", headers={
        "Origin": "https://any.example", "Access-Control-Request-Method": "GET"})
    assert headers["Access-Control-Allow-Origin"] == "https://any.example"
    # A foreign origin: answered, but nothing echoed, so the browser refuses.
    status, headers, _ = http("OPTIONS", f"{ep.http}/items/1", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    assert status == 204
    assert not [k for k in headers if k.lower().startswith("access-control-")]
    # Actual requests: the configured headers for an allowed origin, none for a foreign one.
    status, headers, _ = http("GET", f"{ep.http}/items/1",
                              headers={"Origin": "http://example.test"})
    assert headers["Access-Control-Allow-Origin"] == "http://example.test"
    assert headers["Access-Control-Expose-Headers"] == "x-fixture"
    status, headers, _ = http("GET", f"{ep.http}/items/1",
                              headers={"Origin": "http://evil.example"})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    # The web client served on this port is allowed too (as its deployed origin would be).
    web_origin = ep.http.replace("127.0.0.1", "localhost")
    status, headers, _ = http("OPTIONS", f"{ep.http}/items/1", headers={
        "Origin": web_origin, "Access-Control-Request-Method": "GET"})
    assert headers["Access-Control-Allow-Origin"] == web_origin
