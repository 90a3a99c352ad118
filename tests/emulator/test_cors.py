"""An HTTP API's CorsConfiguration: read from the template, applied as API Gateway applies it."""

import textwrap
from pathlib import Path

import pytest

from apigw_local.gateway import cors
from apigw_local.model import Cors
from apigw_local.template import TemplateError, load_application

CONFIG = Cors(allow_origins=("https://app.example", "http://*"), allow_methods=("GET", "POST"),
              allow_headers=("authorization",), expose_headers=("x-id",), max_age=300)


def test_origins_exact_and_scheme_wildcards():
    assert cors.allows(CONFIG, "https://app.example")
    assert cors.allows(CONFIG, "http://anything.example:8080")
    assert not cors.allows(CONFIG, "https://evil.example")
    assert not cors.allows(CONFIG, "https://app.example.evil.example")
    assert not cors.allows(Cors(), "https://app.example")
    assert cors.allows(Cors(allow_origins=("*",)), "null")


def test_preflight_carries_the_configuration_for_an_allowed_origin_only():
    headers = dict(cors.preflight(CONFIG, "https://app.example", "authorization,x-other"))
    assert headers == {
        "Access-Control-Allow-Origin": "https://app.example", "Vary": "Origin",
        "Access-Control-Allow-Methods": "GET,POST",
        "Access-Control-Allow-Headers": "authorization", "Access-Control-Max-Age": "300"}
    assert cors.preflight(CONFIG, "https://evil.example", "authorization") == []
    star = Cors(allow_origins=("*",), allow_headers=("*",))
    assert dict(cors.preflight(star, "https://x.example", "x-a,x-b")) == {
        "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "x-a,x-b"}


def test_the_integrations_own_cors_headers_are_ignored():
    answer = [("Content-Type", "application/json"), ("Access-Control-Allow-Origin", "*"),
              ("access-control-allow-headers", "*")]
    assert cors.apply(CONFIG, "https://evil.example", answer) == [
        ("Content-Type", "application/json")]
    assert cors.apply(CONFIG, None, answer) == [("Content-Type", "application/json")]
    assert dict(cors.apply(CONFIG, "https://app.example", answer)) == {
        "Content-Type": "application/json", "Access-Control-Allow-Origin": "https://app.example",
        "Vary": "Origin", "Access-Control-Expose-Headers": "x-id"}
    credentials = Cors(allow_origins=("https://app.example",), allow_credentials=True)
    assert ("Access-Control-Allow-Credentials", "true") in cors.apply(
        credentials, "https://app.example", [])


def _load(tmp_path: Path, text: str, **overrides: str):
    (tmp_path / "fn").mkdir(exist_ok=True)
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(text))
    return load_application([path], parameter_overrides=overrides)


SAM = """\
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      Origins: {Type: String, Default: "https://a.example,https://b.example"}
    Conditions:
      HasOrigins: !Not [!Equals [!Ref Origins, ""]]
    Globals:
      HttpApi:
        CorsConfiguration:
          AllowHeaders: [authorization]
    Resources:
      Api:
        Type: AWS::Serverless::HttpApi
        Properties:
          CorsConfiguration: !If
            - HasOrigins
            - AllowOrigins: !Split [",", !Ref Origins]
              MaxAge: 600
              AllowCredentials: true
            - !Ref AWS::NoValue
      Fn:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: fn
          Handler: app.handler
          Runtime: python3.13
          Events:
            Get: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /x, Method: GET}}
            Implicit: {Type: HttpApi, Properties: {Path: /y, Method: GET}}
"""


def test_sam_http_api_configuration_from_parameters_conditions_and_globals(tmp_path):
    app = _load(tmp_path, SAM)
    # The explicit API: an intrinsic configuration replaces Globals.HttpApi's whole.
    assert app.http_cors["Api"] == Cors(
        allow_origins=("https://a.example", "https://b.example"), max_age=600,
        allow_credentials=True, allow_headers=())
    # The implicit API takes Globals.HttpApi.
    assert app.http_cors["ServerlessHttpApi"] == Cors(allow_headers=("authorization",))
    # An empty parameter: no CORS at all on that API.
    assert "Api" not in _load(tmp_path, SAM, Origins="").http_cors


def test_true_bare_values_and_v2_apis(tmp_path):
    app = _load(tmp_path, """\
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Open:
            Type: AWS::Serverless::HttpApi
            Properties: {CorsConfiguration: true}
          One:
            Type: AWS::Serverless::HttpApi
            Properties: {CorsConfiguration: "https://one.example"}
          V2:
            Type: AWS::ApiGatewayV2::Api
            Properties:
              ProtocolType: HTTP
              CorsConfiguration: {AllowOrigins: ["https://v2.example"], AllowMethods: ["*"]}
          Ws:
            Type: AWS::ApiGatewayV2::Api
            Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
    """)
    assert app.http_cors == {
        "Open": Cors(allow_origins=("*",)),
        "One": Cors(allow_origins=("https://one.example",)),
        "V2": Cors(allow_origins=("https://v2.example",), allow_methods=("*",)),
    }


def test_a_malformed_configuration_names_the_property(tmp_path):
    with pytest.raises(TemplateError, match=r"Resources\.Api\.Properties\.CorsConfiguration"
                                            r"\.AllowOrigins: expected a list of strings"):
        _load(tmp_path, """\
            Transform: AWS::Serverless-2016-10-31
            Resources:
              Api:
                Type: AWS::Serverless::HttpApi
                Properties: {CorsConfiguration: {AllowOrigins: [{a: 1}]}}
        """)
