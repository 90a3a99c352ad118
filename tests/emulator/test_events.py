"""Event shapes, validated against Powertools' models of API Gateway's events."""

import json
import re

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)

from apigw_local.gateway import events
from apigw_local.gateway.events import ConnectionInfo, HandshakeRequest, HttpRequestInfo

T = 1795631400000  # 2026-11-25T18:30:00Z


def conn(**kw):
    base = dict(connection_id="AbCdEfGhIjKlMnO=", api_id="abcdefghij", stage="dev",
                domain_name="localhost:3001", source_ip="127.0.0.1", user_agent="pytest",
                connected_at=T)
    base.update(kw)
    return ConnectionInfo(**base)


HS = HandshakeRequest(
    path="/dev", query="token=abc&room=general&room=other",
    headers=(("Host", "localhost:3001"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
             ("Sec-WebSocket-Key", "x"), ("Sec-WebSocket-Version", "13"),
             ("User-Agent", "pytest")),
    source_ip="127.0.0.1", port=3001,
)


def test_ids_look_like_aws():
    for _ in range(200):
        i = events.aws_id()
        assert re.fullmatch(r"[A-Za-z0-9]{15}=", i)


def test_request_time_format():
    assert events.request_time(T) == "25/Nov/2026:18:30:00 +0000"


def test_connect_event():
    e = events.websocket_connect(conn(), HS, request_id="ReqIdReqIdReqI=", epoch_ms=T + 5)
    APIGatewayWebSocketConnectEventModel.model_validate(e)
    ctx = e["requestContext"]
    assert ctx["routeKey"] == "$connect" and ctx["eventType"] == "CONNECT"
    assert ctx["messageDirection"] == "IN" and ctx["requestTimeEpoch"] == T + 5
    assert ctx["identity"] == {"userAgent": "pytest", "sourceIp": "127.0.0.1"}
    assert ctx["extendedRequestId"] == ctx["requestId"]
    assert "messageId" not in ctx
    assert e["queryStringParameters"] == {"token": "abc", "room": "other"}
    assert e["multiValueQueryStringParameters"]["room"] == ["general", "other"]
    assert e["headers"]["Host"] == "localhost:3001"
    assert e["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert "Connection" not in e["headers"]
    assert e["multiValueHeaders"]["Sec-WebSocket-Key"] == ["x"]
    assert e["isBase64Encoded"] is False


def test_connect_event_without_query_has_no_query_keys():
    hs = HandshakeRequest("/dev", "", (("Host", "h"),), "127.0.0.1")
    e = events.websocket_connect(conn(), hs, request_id="r", epoch_ms=T)
    assert "queryStringParameters" not in e


def test_message_event():
    e = events.websocket_message(conn(authorizer={"principalId": "u", "role": "admin"}),
                                 "send", '{"action":"send"}', request_id="r", message_id="m",
                                 epoch_ms=T)
    APIGatewayWebSocketMessageEventModel.model_validate(e)
    ctx = e["requestContext"]
    assert ctx["eventType"] == "MESSAGE" and ctx["messageId"] == "m"
    assert ctx["authorizer"] == {"principalId": "u", "role": "admin"}
    assert e["body"] == '{"action":"send"}' and e["isBase64Encoded"] is False


def test_disconnect_event():
    e = events.websocket_disconnect(conn(), status_code=1001, reason="Going away",
                                    request_id="r", epoch_ms=T)
    APIGatewayWebSocketDisconnectEventModel.model_validate(e)
    ctx = e["requestContext"]
    assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (1001, "Going away")
    assert ctx["routeKey"] == "$disconnect" and ctx["eventType"] == "DISCONNECT"


def http_request(**kw):
    base = dict(method="POST", raw_path="/transactions/t1/verify", raw_query="a=1&a=2&b=x",
                headers=(("Host", "localhost:3000"), ("Content-Type", "application/json"),
                         ("X-Multi", "1"), ("x-multi", "2"), ("Cookie", "s=1; t=2"),
                         ("User-Agent", "ua")),
                body=b'{"k": 1}', source_ip="127.0.0.1")
    base.update(kw)
    return HttpRequestInfo(**base)


def test_http_v2_event():
    e = events.http_v2(http_request(), route_key="POST /transactions/{id}/verify",
                       path_parameters={"id": "t1"}, api_id="abcdefghij",
                       domain_name="localhost:3000", account_id="123456789012",
                       request_id="r", epoch_ms=T)
    APIGatewayProxyEventV2Model.model_validate(e)
    assert e["version"] == "2.0" and e["routeKey"] == "POST /transactions/{id}/verify"
    assert e["headers"]["x-multi"] == "1,2" and "cookie" not in e["headers"]
    assert e["cookies"] == ["s=1", "t=2"]
    assert e["queryStringParameters"] == {"a": "1,2", "b": "x"}
    assert e["rawQueryString"] == "a=1&a=2&b=x"
    assert e["pathParameters"] == {"id": "t1"}
    http = e["requestContext"]["http"]
    assert http == {"method": "POST", "path": "/transactions/t1/verify", "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1", "userAgent": "ua"}
    assert e["requestContext"]["stage"] == "$default"
    assert e["requestContext"]["time"] == "25/Nov/2026:18:30:00 +0000"
    assert json.loads(e["body"]) == {"k": 1} and e["isBase64Encoded"] is False


def test_http_v2_binary_body_is_base64():
    e = events.http_v2(http_request(headers=(("Content-Type", "image/png"),), body=b"\x89PNG"),
                       route_key="$default", path_parameters={}, api_id="a",
                       domain_name="d", account_id="1", request_id="r", epoch_ms=T)
    assert e["isBase64Encoded"] is True and e["body"] == "iVBORw=="


@pytest.mark.parametrize("payload,status,body", [
    ({"statusCode": 201, "body": "x", "headers": {"content-type": "text/plain"}}, 201, b"x"),
    ({"hello": 1}, 200, b'{"hello": 1}'),
    ("plain", 200, b"plain"),
    ({"statusCode": 200, "body": "aGk=", "isBase64Encoded": True}, 200, b"hi"),
])
def test_http_v2_answers(payload, status, body):
    answer = events.http_v2_answer(payload)
    assert (answer.status, answer.body) == (status, body)


def test_http_v2_answer_cookies_become_set_cookie():
    answer = events.http_v2_answer({"statusCode": 200, "cookies": ["a=1", "b=2"]})
    assert [v for k, v in answer.headers if k == "Set-Cookie"] == ["a=1", "b=2"]


def test_connect_answers():
    assert events.connect_answer({"statusCode": 401}).status == 401
    assert events.connect_answer(None).status == 200
    a = events.connect_answer({"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "p"}})
    assert a.headers == {"Sec-WebSocket-Protocol": "p"}


def test_route_response_body_and_error_frame():
    assert events.route_response_body({"statusCode": 200, "body": "b"}) == "b"
    assert events.route_response_body({"x": 1}) == '{"x": 1}'
    assert events.route_response_body(None) is None
    assert json.loads(events.error_frame("Internal server error", "c", "r")) == {
        "message": "Internal server error", "connectionId": "c", "requestId": "r"}
