"""The Management API core and the connect sequence, without sockets."""

from __future__ import annotations

import asyncio
import json

from apigw_local.gateway.connect import open_connection
from apigw_local.gateway.connections import ConnectionRegistry, ManagementError
from apigw_local.gateway.events import ConnectionInfo, HandshakeRequest
from apigw_local.gateway.invocation import FunctionError, Invocation
from apigw_local.gateway.management import Management
from apigw_local.gateway.stage import Stage
from apigw_local.model import Authorizer, Throttle, WebSocketApi, WebSocketRoute

SIGNED = [("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20261130/us-east-1/execute-api/"
           "aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)]


class Transport:
    def __init__(self):
        self.sent = []

    def send_text(self, data):
        self.sent.append(data)
        return True

    def close(self, code, reason):
        pass


def info(api_id="abcdefghij", cid=None, registry=None):
    return ConnectionInfo(connection_id=cid or registry.new_id(), api_id=api_id, stage="dev",
                          domain_name="localhost:1", source_ip="127.0.0.1", user_agent="t",
                          connected_at=1_700_000_000_000)


def open_one(registry, api_id="abcdefghij"):
    conn = registry.add(info(api_id, registry=registry), Transport())
    registry.open(conn.id)
    return conn


def header(answer, name):
    return dict(answer.headers).get(name)


def test_unsigned_requests_are_refused_before_anything_happens():
    registry = ConnectionRegistry()
    conn = open_one(registry)
    mgmt = Management(registry, {"dev": "abcdefghij"})
    answer = mgmt.handle("POST", f"/dev/@connections/{conn.id}", [], b"forged")
    assert answer.status == 403
    assert header(answer, "x-amzn-ErrorType") == "MissingAuthenticationTokenException"
    assert json.loads(answer.body) == {"message": "Missing Authentication Token"}
    answer = mgmt.handle("POST", f"/dev/@connections/{conn.id}",
                         [("authorization", "Basic eDp5")], b"forged")
    assert header(answer, "x-amzn-ErrorType") == "IncompleteSignatureException"
    assert conn.transport.sent == []
    assert mgmt.handle("POST", f"/dev/@connections/{conn.id}", SIGNED, b"ok").status == 200
    assert mgmt.handle("POST", f"/dev/@connections/{conn.id}", [], b"ch", signed=True).status \
        == 200
    assert conn.transport.sent == ["ok", "ch"]


def test_malformed_unknown_and_foreign_ids_are_gone():
    registry = ConnectionRegistry()
    foreign = open_one(registry, api_id="otherapiid")
    mgmt = Management(registry, {"dev": "abcdefghij"})
    for cid in ("not-an-id", "AAAAAAAAAAAAAAA=", foreign.id, "%00" * 3):
        answer = mgmt.handle("GET", f"/dev/@connections/{cid}", SIGNED, b"")
        assert (answer.status, header(answer, "x-amzn-ErrorType")) == (410, "GoneException")
    answer = mgmt.handle("GET", "/nostage/@connections/AAAAAAAAAAAAAAA=", SIGNED, b"")
    assert (answer.status, header(answer, "x-amzn-ErrorType")) == (403, "ForbiddenException")


def test_a_fault_policy_answers_in_place_of_the_registry():
    class Chaos:
        def fault(self, operation, connection_id):
            if operation == "PostToConnection":
                return ManagementError(429, "LimitExceededException", "Rate exceeded")
            return None

    registry = ConnectionRegistry()
    conn = open_one(registry)
    mgmt = Management(registry, {"dev": "abcdefghij"}, fault_policy=Chaos())
    answer = mgmt.handle("POST", f"/dev/@connections/{conn.id}", SIGNED, b"x")
    assert (answer.status, header(answer, "x-amzn-ErrorType")) == (429,
                                                                   "LimitExceededException")
    assert conn.transport.sent == []
    assert mgmt.handle("GET", f"/dev/@connections/{conn.id}", SIGNED, b"").status == 200


def test_a_fault_policy_that_raises_is_logged_and_the_call_goes_through(caplog):
    class Broken:
        def fault(self, operation, connection_id):
            raise RuntimeError("bug in the policy")

    registry = ConnectionRegistry()
    conn = open_one(registry)
    mgmt = Management(registry, {"dev": "abcdefghij"}, fault_policy=Broken())
    answer = mgmt.handle("POST", f"/dev/@connections/{conn.id}", SIGNED, b"x")
    assert answer.status == 200 and conn.transport.sent == ["x"]
    assert "fault policy failed on PostToConnection" in caplog.text


class Invoker:
    def __init__(self, answers):
        self.answers, self.calls = answers, []

    async def invoke(self, function, event, *, request_id=None):
        self.calls.append(function)
        answer = self.answers[function]
        if isinstance(answer, Exception):
            return Invocation(function, "r", 1.0, error=FunctionError(type(answer).__name__,
                                                                      str(answer)))
        return Invocation(function, "r", 1.0, payload=answer)


def _connect(routes, invoker, query="", throttle=None, now=0.0, stage=None):
    api = WebSocketApi("Api", "api", "abcdefghij", "$request.body.action",
                       {r.route_key: r for r in routes}, "dev", throttle)
    stage = stage or Stage(api, "dev", 0.0)
    conn = info(cid="AAAAAAAAAAAAAAA=")
    request = HandshakeRequest(path="/dev", query=query, headers=(("Host", "localhost"),),
                               source_ip="127.0.0.1")
    outcome = asyncio.run(open_connection(stage, conn, request, invoker, now=now,
                                          region="us-east-1", account_id="123456789012"))
    return outcome, conn


def test_connect_sequence():
    auth = Authorizer("Auth", "auth", "Authorize", ("route.request.querystring.token",))
    allow = {"principalId": "p", "policyDocument": {"Statement": [{"Effect": "Allow"}]},
             "context": {"role": "admin"}}
    routes = [WebSocketRoute("$connect", "Connect", authorizer=auth)]
    invoker = Invoker({"Authorize": allow, "Connect": {"statusCode": 200, "headers": {
        "Sec-WebSocket-Protocol": "chat"}}})
    assert _connect(routes, invoker)[0].status == 401  # no token: the authorizer is not run
    assert invoker.calls == []
    outcome, conn = _connect(routes, invoker, query="token=t")
    assert outcome.accepted and outcome.subprotocol == "chat"
    assert conn.authorizer == {"principalId": "p", "role": "admin"}
    invoker.answers["Connect"] = RuntimeError("boom")
    assert _connect(routes, invoker, query="token=t")[0].status == 502
    invoker.answers["Connect"] = {"statusCode": 403}
    assert _connect(routes, invoker, query="token=t")[0].status == 403


def test_connect_is_throttled_with_the_stage():
    api = WebSocketApi("Api", "api", "abcdefghij", "$request.body.action", {}, "dev",
                       Throttle(burst_limit=1, rate_limit=0.5))
    stage = Stage(api, "dev", 0.0)
    invoker = Invoker({})
    assert _connect([], invoker, stage=stage, now=0.0)[0].status == 200
    assert _connect([], invoker, stage=stage, now=0.1)[0].status == 429
    assert _connect([], invoker, stage=stage, now=2.1)[0].status == 200
