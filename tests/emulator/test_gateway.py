"""The gateway's servers over loopback sockets with a fake invoker (no workers, no template).

Each behaviour of API Gateway's WebSocket API the core promises is checked through a real
`websockets` client: quotas and close codes, $connect answers, error frames, the Management API.
"""

import asyncio
import json
import ssl
import time
import urllib.error
import urllib.request

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from apigw_local.gateway.connections import ConnectionRegistry
from apigw_local.gateway.invocation import FunctionError, Invocation
from apigw_local.gateway.management import Management
from apigw_local.gateway.quotas import Quotas
from apigw_local.gateway.stage import Stage
from apigw_local.model import Authorizer, Function, WebSocketApi, WebSocketRoute
from apigw_local.server.http11 import make_factory
from apigw_local.server.invoke import Integrations
from apigw_local.server.listener import Listener
from apigw_local.server.websocket import WebSocketPort
from apigw_local.tls import ensure_tls


class FakeInvoker:
    """Runs plain Python callables as 'functions'; records every event."""

    def __init__(self, handlers):
        self.handlers = handlers
        self.events = []

    async def invoke(self, function, event, *, request_id=None):
        self.events.append((function, event))
        start = time.perf_counter()
        try:
            result = self.handlers[function](event)
            if asyncio.iscoroutine(result):
                result = await result
        except Exception as exc:
            return Invocation(function, "rid", 0.1, error=FunctionError(type(exc).__name__,
                                                                         str(exc)))
        return Invocation(function, "rid", (time.perf_counter() - start) * 1000, payload=result)

    def of(self, function):
        return [e for f, e in self.invoker_events() if f == function]

    def invoker_events(self):
        return list(self.events)


def route(key, fn, **kw):
    return WebSocketRoute(route_key=key, function=fn, **kw)


class Harness:
    def __init__(self, gateway, listener, invoker, tls):
        self.gateway, self.listener, self.invoker, self.tls = gateway, listener, invoker, tls
        self.url = f"ws://127.0.0.1:{listener.port}/dev"
        self.base = f"http://127.0.0.1:{listener.port}/dev"

    def events(self, function):
        return [e for f, e in self.invoker.events if f == function]


async def make_harness(handlers, routes, quotas=None, tmp_path=None, stage="dev"):
    quotas = quotas or Quotas()
    invoker = FakeInvoker(handlers)
    api = WebSocketApi("Api", "api", "abcdefghij", "$request.body.action",
                       {r.route_key: r for r in routes}, stage)
    functions = {name: Function(name, name, tmp_path, "app.h", "python3.13", timeout=3)
                 for name in handlers}
    registry = ConnectionRegistry(quotas)
    sock = Listener.bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    stages = [Stage(api, stage, time.monotonic())]
    management = Management(registry, {stage: api.api_id})
    gateway = WebSocketPort(stages, Integrations(invoker, functions), registry, management,
                            domain_name=f"localhost:{port}", region="us-east-1",
                            account_id="123456789012", quotas=quotas)
    tls = ensure_tls(tmp_path / "state")
    listener = Listener(sock, make_factory(gateway, set()), tls.server_context)
    listener.start()
    return Harness(gateway, listener, invoker, tls)


def echo(event):
    return {"statusCode": 200, "body": event["body"]}


def boom(event):
    raise ValueError("boom")


BASIC_ROUTES = [route("$connect", "Connect"), route("$disconnect", "Disconnect"),
                route("$default", "Echo", route_response=True), route("crash", "Crash")]


def connect_handler(event):
    q = event.get("queryStringParameters") or {}
    if "reject" in q:
        return {"statusCode": int(q["reject"])}
    if "crash" in q:
        raise RuntimeError("nope")
    proto = event["headers"].get("Sec-WebSocket-Protocol")
    if proto and "noproto" not in q:
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": proto.split(",")[0]}}
    return {"statusCode": 200}


BASIC = {"Connect": connect_handler, "Disconnect": lambda e: None, "Echo": echo, "Crash": boom}


@pytest.fixture
async def gw(tmp_path):
    h = await make_harness(BASIC, BASIC_ROUTES, tmp_path=tmp_path)
    yield h
    await h.gateway.shutdown()
    h.listener.close()


async def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def http(method, url, data=None, context=None, sign=True):
    """One request, SigV4-signed with botocore's signer as every SDK and the AWS CLI sign."""
    headers = {}
    if sign:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        aws = AWSRequest(method=method, url=url, data=data)
        SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), "execute-api", "us-east-1").add_auth(aws)
        headers = dict(aws.headers.items())
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


async def test_route_response_and_error_frame_and_recovery(gw):
    async with websockets.connect(gw.url) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send('{"action": "crash"}')
        frame = json.loads(await ws.recv())
        assert frame["message"] == "Internal server error"
        assert len(frame["connectionId"]) == 16 and len(frame["requestId"]) == 16
        await ws.send("still here")
        assert await ws.recv() == "still here"


async def test_connect_refusals(gw):
    with pytest.raises(InvalidStatus) as exc:
        await websockets.connect(gw.url + "?reject=401")
    assert exc.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as exc:
        await websockets.connect(gw.url + "?crash=1")
    assert exc.value.response.status_code == 502
    with pytest.raises(InvalidStatus) as exc:
        await websockets.connect(gw.url.replace("/dev", "/nope"))
    assert exc.value.response.status_code == 404
    assert not gw.events("Disconnect")  # a refused $connect has no $disconnect


async def test_subprotocol_only_when_connect_answers_it(gw):
    async with websockets.connect(gw.url, subprotocols=["chat", "x"]) as ws:
        assert ws.subprotocol == "chat"
    # The client offered one, $connect did not echo it: the handshake completes without a
    # subprotocol (browsers then fail the connection; websockets accepts it).
    async with websockets.connect(gw.url + "?noproto=1", subprotocols=["chat"]) as ws:
        assert ws.subprotocol is None


async def test_binary_frame_closes_1003(gw):
    async with websockets.connect(gw.url) as ws:
        await ws.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1003
    await wait_for(lambda: gw.events("Disconnect"))
    assert gw.events("Disconnect")[0]["requestContext"]["disconnectStatusCode"] == 1003


async def test_frame_over_32kb_closes_1009(gw):
    async with websockets.connect(gw.url, max_size=None) as ws:
        await ws.send("x" * (32 * 1024 + 1))
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1009


async def test_fragmented_message_limits(gw):
    async with websockets.connect(gw.url, max_size=None) as ws:
        chunk = "y" * (32 * 1024)
        await ws.send([chunk, chunk, chunk, "z" * (4 * 1024)])  # 100 KB in ≤32 KB fragments
        assert len(await ws.recv()) == 100 * 1024
        await ws.send([chunk] * 4 + ["!"])  # 128 KB + 1 in fragments
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1009


async def test_no_route_and_no_default_answers_forbidden(tmp_path):
    h = await make_harness({"Echo": echo}, [route("echo", "Echo", route_response=True)],
                           tmp_path=tmp_path)
    try:
        async with websockets.connect(h.url) as ws:
            await ws.send('{"action": "other"}')
            frame = json.loads(await ws.recv())
            assert frame["message"] == "Forbidden" and "connectionId" in frame
            await ws.send('{"action": "echo"}')
            assert json.loads(await ws.recv()) == {"action": "echo"}
    finally:
        await h.gateway.shutdown()
        h.listener.close()


async def test_200_simultaneous_messages_are_all_processed(tmp_path):
    async def slowish(event):
        await asyncio.sleep(0.05)
        return {"statusCode": 200, "body": event["body"]}

    h = await make_harness({"Echo": slowish}, [route("$default", "Echo", route_response=True)],
                           tmp_path=tmp_path)
    try:
        async with websockets.connect(h.url) as ws:
            for i in range(200):
                await ws.send(str(i))
            got = {await asyncio.wait_for(ws.recv(), 5) for _ in range(200)}
            assert got == {str(i) for i in range(200)}
    finally:
        await h.gateway.shutdown()
        h.listener.close()


async def test_idle_timeout_closes_1001(tmp_path):
    h = await make_harness(BASIC, BASIC_ROUTES, quotas=Quotas(idle_timeout=0.3),
                           tmp_path=tmp_path)
    try:
        async with websockets.connect(h.url) as ws:
            await ws.send("keep")  # traffic moves the deadline
            await ws.recv()
            started = time.monotonic()
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 3)
            assert ws.close_code == 1001 and time.monotonic() - started >= 0.2
        await wait_for(lambda: h.events("Disconnect"))
        ctx = h.events("Disconnect")[0]["requestContext"]
        assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (1001, "Going away")
    finally:
        await h.gateway.shutdown()
        h.listener.close()


async def test_management_api_post_get_delete(gw):
    async with websockets.connect(gw.url) as ws:
        await ws.send("who")
        await ws.recv()
        cid = gw.events("Echo")[0]["requestContext"]["connectionId"]
        status, headers, _ = await asyncio.to_thread(
            http, "POST", f"{gw.base}/@connections/{cid}", b'{"pushed": 1}')
        assert status == 200
        assert json.loads(await ws.recv()) == {"pushed": 1}
        status, _, body = await asyncio.to_thread(http, "GET", f"{gw.base}/@connections/{cid}")
        got = json.loads(body)
        assert status == 200 and got["identity"]["sourceIp"] == "127.0.0.1"
        assert got["connectedAt"] <= got["lastActiveAt"]
        status, _, _ = await asyncio.to_thread(http, "DELETE", f"{gw.base}/@connections/{cid}")
        assert status == 204
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1000
    await wait_for(lambda: gw.events("Disconnect"))
    ctx = gw.events("Disconnect")[0]["requestContext"]
    assert ctx["disconnectStatusCode"] == 1000
    status, headers, body = await asyncio.to_thread(
        http, "POST", f"{gw.base}/@connections/{cid}", b"x")
    assert status == 410 and headers["x-amzn-ErrorType"] == "GoneException"
    status, headers, _ = await asyncio.to_thread(
        http, "POST", f"{gw.base}/@connections/{cid}", b"x" * (128 * 1024 + 1))
    assert status == 413 and headers["x-amzn-ErrorType"] == "PayloadTooLargeException"


async def test_post_during_connect_is_gone(tmp_path):
    seen = {}

    async def connect(event):
        cid = event["requestContext"]["connectionId"]
        url = f"http://127.0.0.1:{h.listener.port}/dev/@connections/{cid}"
        seen["status"] = (await asyncio.to_thread(http, "POST", url, b"early"))[0]
        return {"statusCode": 200}

    h = await make_harness({"Connect": connect, "Echo": echo},
                           [route("$connect", "Connect"), route("$default", "Echo")],
                           tmp_path=tmp_path)
    try:
        async with websockets.connect(h.url):
            pass
        assert seen["status"] == 410
    finally:
        await h.gateway.shutdown()
        h.listener.close()


async def test_tls_on_the_same_port(gw):
    ctx = ssl.create_default_context(cafile=str(gw.tls.ca_bundle))
    url = f"wss://localhost:{gw.listener.port}/dev"
    async with websockets.connect(url, ssl=ctx) as ws:
        await ws.send("secure")
        assert await ws.recv() == "secure"
        cid = gw.events("Echo")[-1]["requestContext"]["connectionId"]
        status, _, body = await asyncio.to_thread(
            http, "GET", f"https://localhost:{gw.listener.port}/dev/@connections/{cid}",
            None, ctx)
        assert status == 200 and "connectedAt" in json.loads(body)


async def test_boto3_typed_errors(gw):
    import boto3

    client = boto3.client("apigatewaymanagementapi", endpoint_url=gw.base,
                          region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    async with websockets.connect(gw.url) as ws:
        await ws.send("x")
        await ws.recv()
        cid = gw.events("Echo")[-1]["requestContext"]["connectionId"]
        await asyncio.to_thread(client.post_to_connection, ConnectionId=cid, Data=b"via boto3")
        assert await ws.recv() == "via boto3"
        got = await asyncio.to_thread(client.get_connection, ConnectionId=cid)
        assert got["Identity"]["SourceIp"] == "127.0.0.1"
        assert got["LastActiveAt"] >= got["ConnectedAt"]
    await wait_for(lambda: gw.events("Disconnect"))
    with pytest.raises(client.exceptions.GoneException):
        await asyncio.to_thread(client.post_to_connection, ConnectionId=cid, Data=b"late")
    with pytest.raises(client.exceptions.PayloadTooLargeException):
        await asyncio.to_thread(client.post_to_connection, ConnectionId=cid,
                                Data=b"x" * (129 * 1024))


async def test_authorizer_flow(tmp_path):
    def authorize(event):
        token = event["queryStringParameters"]["token"]
        if token == "error":
            raise RuntimeError("x")
        return {"principalId": "p1", "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow" if token == "good" else "Deny",
             "Resource": event["methodArn"]}]}, "context": {"role": "admin"}}

    auth = Authorizer("Auth", "auth", "Authorize", ("route.request.querystring.token",))
    h = await make_harness(
        {"Authorize": authorize, "Connect": lambda e: {"statusCode": 200}, "Echo": echo},
        [route("$connect", "Connect", authorizer=auth),
         route("$default", "Echo", route_response=True)], tmp_path=tmp_path)
    try:
        for query, status in (("", 401), ("?token=bad", 403), ("?token=error", 500)):
            with pytest.raises(InvalidStatus) as exc:
                await websockets.connect(h.url + query)
            assert exc.value.response.status_code == status
        assert not h.events("Connect")
        async with websockets.connect(h.url + "?token=good") as ws:
            await ws.send("x")
            await ws.recv()
        connect_ctx = h.events("Connect")[0]["requestContext"]
        message_ctx = h.events("Echo")[0]["requestContext"]
        assert connect_ctx["authorizer"] == {"principalId": "p1", "role": "admin"}
        assert message_ctx["authorizer"] == {"principalId": "p1", "role": "admin"}
    finally:
        await h.gateway.shutdown()
        h.listener.close()


async def test_shutdown_closes_1001_and_runs_disconnect(gw):
    ws = await websockets.connect(gw.url)
    await gw.gateway.shutdown()
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 3)
    assert ws.close_code == 1001
    assert gw.events("Disconnect")[0]["requestContext"]["disconnectStatusCode"] == 1001


async def test_unsigned_management_requests_are_refused_as_aws_does(gw):
    async with websockets.connect(gw.url) as ws:
        await ws.send("who")
        await ws.recv()
        cid = gw.events("Echo")[0]["requestContext"]["connectionId"]
        url = f"{gw.base}/@connections/{cid}"
        status, headers, body = await asyncio.to_thread(http, "POST", url, b"forged", None,
                                                        False)
        assert status == 403
        assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
        assert json.loads(body) == {"message": "Missing Authentication Token"}
        req = urllib.request.Request(url, data=b"forged", method="POST",
                                     headers={"Authorization": "Bearer nope"})
        with pytest.raises(urllib.error.HTTPError) as err:
            await asyncio.to_thread(urllib.request.urlopen, req, timeout=5)
        assert err.value.code == 403
        assert err.value.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"
        # Nothing reached the client; a signed post still does.
        assert (await asyncio.to_thread(http, "POST", url, b"signed"))[0] == 200
        assert await ws.recv() == "signed"
