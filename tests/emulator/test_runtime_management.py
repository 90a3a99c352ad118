"""The workers' direct Management API path gives what botocore's HTTP path gives.

The same handler runs against two emulators, one per transport (`direct`, the default, and
`http`, chosen with APIGW_LOCAL_MANAGEMENT_TRANSPORT); the answers, the typed exceptions botocore
raises and what the clients receive must be identical.
"""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest

from apigw_local.testing import connect, serve

pytestmark = pytest.mark.integration

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: mgmt
      ProtocolType: WEBSOCKET
      RouteSelectionExpression: $request.body.action
  Default:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: $default, Target: !Sub "integrations/${Integration}"}
  Integration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/\
        functions/${Fn.Arn}/invocations"
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: {ApiId: !Ref Api, StageName: dev}
  Fn:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: ., Handler: app.handler, Runtime: python3.13, Timeout: 60}
"""

HANDLER = '''
import json
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.exceptions import ClientError, ParamValidationError


def _outcome(call):
    try:
        result = call()
    except ClientError as exc:
        meta = exc.response["ResponseMetadata"]
        return {"raised": type(exc).__name__, "code": exc.response["Error"]["Code"],
                "message": exc.response["Error"].get("Message"),
                "status": meta["HTTPStatusCode"], "request_id": bool(meta.get("RequestId"))}
    except ParamValidationError as exc:
        return {"raised": "ParamValidationError", "report": exc.kwargs["report"]}
    meta = result.pop("ResponseMetadata")
    out = {"status": meta["HTTPStatusCode"], "request_id": bool(meta.get("RequestId")),
           "headers": sorted(k for k in meta["HTTPHeaders"] if k != "date")}
    out["fields"] = {k: type(v).__name__ for k, v in result.items()}
    if "Identity" in result:
        out["identity"] = sorted(result["Identity"])
    return out


def handler(event, context):
    ctx = event["requestContext"]
    me = ctx["connectionId"]
    body = json.loads(event["body"])
    client = boto3.client("apigatewaymanagementapi",
                          endpoint_url=f"https://{ctx['domainName']}/{ctx['stage']}")
    post = client.post_to_connection
    # botocore's public events tell the paths apart: an answer given at before-call is never
    # sent, so before-send does not fire on the direct path.
    sent = []
    client.meta.events.register("before-send", lambda **kwargs: sent.append(1))
    if body["op"] == "whoami":
        client.get_connection(ConnectionId=me)
        post(ConnectionId=me, Data=json.dumps({"me": me, "direct": not sent}).encode())
        return {"statusCode": 200}
    if body["op"] == "parallel":
        with ThreadPoolExecutor(16) as pool:
            done = list(pool.map(lambda n: _outcome(lambda: post(ConnectionId=me,
                                                                 Data=f"p{n}".encode())),
                                 range(body["count"])))
        post(ConnectionId=me, Data=json.dumps(
            {"direct": not sent, "ok": sum(1 for d in done if d["status"] == 200)}).encode())
        return {"statusCode": 200}
    other = body["other"]
    results = {
        "get": _outcome(lambda: client.get_connection(ConnectionId=me)),
        "post": _outcome(lambda: post(ConnectionId=other, Data=b"hello")),
        "post_text_data": _outcome(lambda: post(ConnectionId=other, Data="h\\u00e9")),
        "gone": _outcome(lambda: post(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")),
        "get_gone": _outcome(lambda: client.get_connection(ConnectionId="AAAAAAAAAAAAAAA=")),
        "bad_id": _outcome(lambda: post(ConnectionId="not-an-id", Data=b"x")),
        "too_large": _outcome(lambda: post(ConnectionId=other, Data=b"x" * (128 * 1024 + 1))),
        "invalid_param": _outcome(lambda: post(ConnectionId=other, Data=123)),
        "delete": _outcome(lambda: client.delete_connection(ConnectionId=other)),
        "delete_again": _outcome(lambda: client.delete_connection(ConnectionId=other)),
    }
    results["direct"] = not sent
    post(ConnectionId=me, Data=json.dumps(results).encode())
    return {"statusCode": 200}
'''


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mgmt")
    (root / "template.yaml").write_text(TEMPLATE)
    (root / "app.py").write_text(textwrap.dedent(HANDLER))
    return root


def _run(app_dir, transport, monkeypatch):
    monkeypatch.setenv("APIGW_LOCAL_MANAGEMENT_TRANSPORT", transport)
    with serve(app_dir / "template.yaml") as ep:
        async def scenario():
            async with connect(ep.websocket) as a, connect(ep.websocket) as b:
                await b.send_json({"op": "whoami"})
                b_id = (await b.receive_json(timeout=30))["me"]
                await a.send_json({"op": "all", "other": b_id})
                b_frames = [await b.receive(timeout=30), await b.receive(timeout=30)]
                closed = await b.wait_closed(timeout=10)
                results = await a.receive_json(timeout=30)
                await a.send_json({"op": "parallel", "count": 200})
                frames = [await a.receive(timeout=30) for _ in range(201)]
                return results, b_frames, closed, frames
        return asyncio.run(scenario())


@pytest.fixture(scope="module")
def both(app_dir):
    with pytest.MonkeyPatch.context() as mp:
        direct = _run(app_dir, "direct", mp)
        http = _run(app_dir, "http", mp)
    return direct, http


def test_the_direct_path_is_used_only_when_asked(both):
    (direct, *_), (http, *_) = both
    # Anything else (API Gateway's error frame for a failed invocation) is shown whole.
    assert "direct" in direct and "direct" in http, (direct, http)
    assert direct.pop("direct") is True
    assert http.pop("direct") is False


def test_both_transports_answer_the_same(both):
    (direct, d_frames, d_closed, _), (http, h_frames, h_closed, _) = both
    direct.pop("direct", None)
    http.pop("direct", None)
    assert direct == http
    assert d_frames == h_frames == ["hello", "h\u00e9"]
    assert d_closed == h_closed
    # botocore itself raised the typed exceptions, from the gateway's answers.
    assert direct["gone"]["raised"] == "GoneException" and direct["gone"]["status"] == 410
    assert direct["get_gone"]["raised"] == "GoneException"
    # "The connectionID isn't valid" is a cause of 410 GoneException (AWS knowledge center).
    assert direct["bad_id"]["raised"] == "GoneException"
    assert direct["too_large"]["raised"] == "PayloadTooLargeException"
    assert direct["too_large"]["status"] == 413
    assert direct["invalid_param"]["raised"] == "ParamValidationError"
    assert direct["delete"]["status"] == 204
    assert direct["delete_again"]["raised"] == "GoneException"
    assert direct["get"]["fields"] == {"ConnectedAt": "datetime", "Identity": "dict",
                                       "LastActiveAt": "datetime"}
    assert direct["get"]["identity"] == ["SourceIp", "UserAgent"]


def test_two_hundred_parallel_posts_lose_nothing(both):
    for _, _, _, frames in both:
        summary = json.loads(frames[-1])
        assert summary["ok"] == 200
        assert sorted(frames[:-1]) == sorted(f"p{n}" for n in range(200))
