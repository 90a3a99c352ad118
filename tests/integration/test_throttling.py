"""The template's stage throttling, end to end: DefaultRouteSettings → the stage's token bucket
→ "Too Many Requests" frames and a 429 handshake, through real sockets."""

import asyncio
import json
import textwrap
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from apigw_local.testing import connect, serve

pytestmark = pytest.mark.integration

FUNCTIONS = (Path(__file__).parents[1] / "fixtures" / "gateway" / "functions").resolve()

TEMPLATE = f"""
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {{ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}}
  Echo:
    Type: AWS::ApiGatewayV2::Route
    Properties: {{ApiId: !Ref Api, RouteKey: echo, Target: !Sub "integrations/${{Integration}}"}}
  EchoResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties: {{ApiId: !Ref Api, RouteId: !Ref Echo, RouteResponseKey: $default}}
  Integration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub "arn:aws:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/\\
        functions/${{Fn.Arn}}/invocations"
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties:
      ApiId: !Ref Api
      StageName: dev
      DefaultRouteSettings: {{ThrottlingBurstLimit: 3, ThrottlingRateLimit: 0.05}}
  Fn:
    Type: AWS::Serverless::Function
    Properties: {{CodeUri: {FUNCTIONS}, Handler: app.echo, Runtime: python3.13}}
"""


def test_a_stage_over_its_limits_answers_too_many_requests(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(TEMPLATE))
    with serve(path) as ep:
        async def scenario():
            async with connect(ep.websocket) as ws:  # the handshake takes one token
                for n in range(4):
                    await ws.send_json({"action": "echo", "n": n})
                answers = [await ws.receive_json(timeout=15) for _ in range(4)]
                echoed = [a for a in answers if "n" in a]
                refused = [a for a in answers if a.get("message") == "Too Many Requests"]
                assert len(echoed) == 2 and len(refused) == 2
                assert set(refused[0]) == {"message", "connectionId", "requestId"}
                with pytest.raises(InvalidStatus) as exc:  # the bucket is shared by $connect
                    async with connect(ep.websocket):
                        pass
                assert exc.value.response.status_code == 429
                assert json.loads(exc.value.response.body) == {"message": "Too Many Requests"}
                await ws.send_json({"action": "echo", "n": 9})  # still open
                assert (await ws.receive_json(timeout=15))["message"] == "Too Many Requests"
        asyncio.run(scenario())


HTTP_TEMPLATE = f"""
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      DefaultRouteSettings: {{ThrottlingBurstLimit: 2, ThrottlingRateLimit: 0.001}}
      RouteSettings:
        "GET /roomy": {{ThrottlingBurstLimit: 4}}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {FUNCTIONS}
      Handler: app.http
      Runtime: python3.13
      Events:
        Tight: {{Type: HttpApi, Properties: {{ApiId: !Ref Api, Path: /tight, Method: GET}}}}
        Other: {{Type: HttpApi, Properties: {{ApiId: !Ref Api, Path: /other, Method: GET}}}}
        Roomy: {{Type: HttpApi, Properties: {{ApiId: !Ref Api, Path: /roomy, Method: GET}}}}
"""


def test_http_api_routes_are_throttled_by_their_stage_settings(tmp_path):
    """DefaultRouteSettings give each route its own bucket; RouteSettings override a route's."""
    import urllib.error
    import urllib.request

    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(HTTP_TEMPLATE))

    def get(url: str) -> tuple[int, bytes, dict[str, str]]:
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:
                return answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read(), dict(error.headers)

    with serve(path) as ep:
        tight = [get(f"{ep.http}/tight") for _ in range(3)]
        assert [status for status, _, _ in tight] == [200, 200, 429]
        status, body, headers = tight[2]
        assert json.loads(body) == {"message": "Too Many Requests"}
        assert headers["Content-Type"] == "application/json" and headers["apigw-requestid"]
        # Another route has its own bucket, with the stage's default limits...
        assert [get(f"{ep.http}/other")[0] for _ in range(3)] == [200, 200, 429]
        # ...unless its RouteSettings say otherwise (a burst of 4; the rate from the default).
        assert [get(f"{ep.http}/roomy")[0] for _ in range(5)] == [200] * 4 + [429]
