"""The template reader: fixtures in tests/fixtures/templates, errors from inline templates."""

from __future__ import annotations

import logging
import re
import textwrap
from pathlib import Path

import pytest

from apigw_local.gateway.throttle import RouteBuckets
from apigw_local.model import RouteThrottling, Throttle
from apigw_local.template import TemplateError, api_id_for, load_application

FIXTURES = Path(__file__).parent.parent / "fixtures"
TEMPLATES = FIXTURES / "templates"
WEBSOCKET = TEMPLATES / "websocket.yaml"
ECHO = (FIXTURES / "functions" / "echo").resolve()
LAYER = (FIXTURES / "functions" / "layer").resolve()


@pytest.fixture(scope="module")
def app():
    return load_application([WEBSOCKET])


def _write(tmp_path: Path, text: str, name: str = "template.yaml") -> Path:
    (tmp_path / "fn").mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# -- ids ------------------------------------------------------------------------------------


def test_api_id_is_stable_and_shaped_like_aws():
    assert api_id_for("WebSocketApi") == api_id_for("WebSocketApi")
    assert api_id_for("WebSocketApi") != api_id_for("HttpApi")
    assert re.fullmatch(r"[a-z0-9]{10}", api_id_for("WebSocketApi"))


# -- functions ------------------------------------------------------------------------------


def test_globals_are_merged_into_functions(app):
    connect = app.functions["ConnectFunction"]
    assert connect.runtime == "python3.13"
    assert connect.timeout == 5.0 and connect.memory_size == 256
    assert connect.code_uri == ECHO
    assert connect.handler == "app.echo"
    env = connect.environment
    assert env["GLOBAL_ONLY"] == "from-globals"
    assert env["OVERRIDDEN"] == "from-function"  # the function wins
    assert app.functions["MessageFunction"].environment["OVERRIDDEN"] == "from-globals"
    assert app.functions["MessageFunction"].timeout == 2.0


def test_layers_put_python_subdirectory_first(app):
    assert app.functions["ConnectFunction"].layers == (LAYER / "python", LAYER)


def test_function_names(app):
    assert app.functions["ConnectFunction"].name == "ConnectFunction"
    assert app.functions["MessageFunction"].name == "apigw-local-message"


def test_intrinsics_in_environment(app):
    env = app.functions["ConnectFunction"].environment
    api_id = api_id_for("WebSocketApi")
    assert env["CONNECTIONS_TABLE"] == "apigw-local-ConnectionsTable"  # Ref table
    assert env["STAGE"] == "dev"  # Ref parameter default
    assert env["ENDPOINT"] == f"https://{api_id}.execute-api.us-east-1.amazonaws.com/dev"
    assert env["API_ENDPOINT"] == f"wss://{api_id}.execute-api.us-east-1.amazonaws.com"
    assert env["TABLE_ARN"] == (
        "arn:aws:dynamodb:us-east-1:123456789012:table/apigw-local-ConnectionsTable")
    assert env["JOINED"] == "apigw-local-123456789012-local"  # Join + pseudo parameters
    assert env["SELECTED"] == "b"  # Select + Split
    assert env["MODE"] == "development"  # If + Equals
    assert env["BOTH"] == "yes"  # And, Or, Not, Condition
    assert "DROPPED" not in env  # AWS::NoValue
    assert env["LITERAL"] == "${NotAVar}-aws"  # ${!Literal} and AWS::Partition
    assert env["SUB_VARS"] == (
        "dev/arn:aws:lambda:us-east-1:123456789012:function:ConnectFunction")
    assert env["SECRET"] == "local-secret"


def test_parameter_length_and_value_constraints(tmp_path):
    path = _write(tmp_path, """
        Parameters:
          Secret: {Type: String, NoEcho: true, MinLength: 8}
          Port: {Type: Number, Default: 80, MaxValue: 65535}
        Resources: {}
    """)
    with pytest.raises(TemplateError, match="Parameters.Secret: value is shorter") as info:
        load_application([path], parameter_overrides={"Secret": "s3cr"})
    assert "s3cr" not in str(info.value)  # NoEcho: never echoed
    with pytest.raises(TemplateError, match="Parameters.Port: '70000' is above MaxValue"):
        load_application([path], parameter_overrides={"Secret": "long-enough", "Port": "70000"})
    app = load_application([path], parameter_overrides={"Secret": "long-enough"})
    assert app.parameters == {"Secret": "long-enough", "Port": "80"}


def test_a_layer_in_globals_and_function_is_listed_once(tmp_path):
    (tmp_path / "layer").mkdir()
    path = _write(tmp_path, """
        Globals:
          Function:
            Layers: [!Ref L]
        Resources:
          L:
            Type: AWS::Serverless::LayerVersion
            Properties: {ContentUri: layer}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: fn
              Handler: app.h
              Runtime: python3.13
              Layers: [!Ref L]
    """)
    app = load_application([path])
    assert app.functions["Fn"].layers == ((tmp_path / "layer").resolve(),)


def test_parameter_overrides_and_conditions():
    app = load_application([WEBSOCKET], parameter_overrides={"StageName": "prod"},
                           region="eu-west-1", account_id="111111111111", stack_name="s")
    env = app.functions["ConnectFunction"].environment
    assert env["MODE"] == "production"
    assert env["DROPPED"] == "x"
    assert env["JOINED"] == "s-111111111111-local"
    assert "ProdOnlyTable" in app.tables  # its Condition now holds
    assert app.websocket_apis[0].stage == "prod"
    assert app.parameters["StageName"] == "prod"
    assert app.region == "eu-west-1"


def test_conditional_resource_is_dropped(app):
    assert "ProdOnlyTable" not in app.tables


def test_allowed_values_are_checked():
    with pytest.raises(TemplateError, match=r"Parameters\.StageName.*AllowedValues"):
        load_application([WEBSOCKET], parameter_overrides={"StageName": "qa"})


def test_endpoint_rewriting():
    app = load_application([WEBSOCKET], websocket_domain="localhost:3001",
                           http_domain="localhost:3000")
    env = app.functions["ConnectFunction"].environment
    assert env["ENDPOINT"] == "https://localhost:3001/dev"
    assert env["API_ENDPOINT"] == "wss://localhost:3001"


# -- APIs -----------------------------------------------------------------------------------


def test_websocket_api(app):
    (api,) = app.websocket_apis
    assert api.logical_id == "WebSocketApi" and api.name == "chat"
    assert api.api_id == api_id_for("WebSocketApi")
    assert api.route_selection_expression == "$request.body.action"
    assert api.stage == "dev"
    assert set(api.routes) == {"$connect", "$default", "ping"}
    connect = api.routes["$connect"]
    assert connect.function == "ConnectFunction"  # Sub'd IntegrationUri, Join'd Target
    assert connect.authorizer is not None
    assert connect.authorizer.function == "AuthorizerFunction"
    assert connect.authorizer.name == "token-auth"
    assert connect.authorizer.identity_sources == ("route.request.querystring.token",)
    assert api.routes["$default"].function == "MessageFunction"  # Join'd IntegrationUri
    assert api.routes["$default"].route_response is False
    assert api.routes["ping"].route_response is True


def test_http_api_events(app):
    routes = {(r.method, r.path): r for r in app.http_routes}
    verify = routes[("POST", "/transactions/{id}/verify")]
    assert verify.function == "VerifyFunction"
    assert verify.api_logical_id == "ServerlessHttpApi"
    assert verify.payload_format_version == "2.0"
    assert routes[("GET", "/transactions")].api_logical_id == "HttpApi"


def test_raw_http_api_and_lambda_function_in_json():
    app = load_application([TEMPLATES / "http_v2.yaml"], http_domain="localhost:3000")
    fn = app.functions["Fn"]
    assert fn.code_uri == ECHO and fn.runtime == "python3.12" and fn.timeout == 7.0
    assert fn.layers == (LAYER / "python", LAYER)  # the AWS-hosted layer is skipped
    (route,) = app.http_routes
    assert (route.method, route.path, route.function) == ("GET", "/items/{id}", "Fn")
    assert route.api_logical_id == "Api" and route.payload_format_version == "1.0"


# -- tables ---------------------------------------------------------------------------------


def test_tables(app):
    table = app.tables["ConnectionsTable"]
    assert table.name == "apigw-local-ConnectionsTable"
    assert table.ttl_attribute == "expiresAt"
    kwargs = table.create_table
    assert kwargs["TableName"] == table.name
    assert kwargs["BillingMode"] == "PAY_PER_REQUEST"
    assert kwargs["GlobalSecondaryIndexes"][0]["IndexName"] == "by-room"
    assert kwargs["StreamSpecification"] == {"StreamEnabled": True,
                                             "StreamViewType": "NEW_AND_OLD_IMAGES"}
    named = app.tables["NamedTable"]
    assert named.name == "apigw-local-named"
    assert named.create_table["ProvisionedThroughput"] == {"ReadCapacityUnits": 2,
                                                           "WriteCapacityUnits": 3}
    simple = app.tables["Simple"].create_table
    assert simple["KeySchema"] == [{"AttributeName": "key", "KeyType": "HASH"}]
    assert simple["AttributeDefinitions"] == [{"AttributeName": "key", "AttributeType": "N"}]


# -- overlays -------------------------------------------------------------------------------


def test_overlay_adds_resources_that_use_the_base():
    app = load_application([WEBSOCKET, TEMPLATES / "overlay.yaml"])
    fn = app.functions["DevTokenFunction"]
    assert fn.environment["TABLE"] == "apigw-local-ConnectionsTable"
    assert fn.environment["TTL"] == "3600"
    assert fn.environment["GLOBAL_ONLY"] == "from-globals"  # the base's Globals apply
    assert fn.code_uri == ECHO  # Globals' CodeUri, relative to the base template
    assert ("POST", "/dev/token") in {(r.method, r.path) for r in app.http_routes}
    assert "ConnectFunction" in app.functions


def test_overlay_duplicate_logical_id_is_an_error(tmp_path):
    dup = _write(tmp_path, """
        Resources:
          ConnectionsTable:
            Type: AWS::SQS::Queue
    """)
    with pytest.raises(TemplateError, match=r"Resources\.ConnectionsTable.*already defined"):
        load_application([WEBSOCKET, dup])


# -- errors name template, resource and property ---------------------------------------------


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (
            """
            Resources:
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: fn
                  Handler: app.h
                  Runtime: nodejs20.x
            """,
            r"template\.yaml: Resources\.Fn\.Properties\.Runtime: .*nodejs20\.x",
        ),
        (
            """
            Resources:
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: fn
                  Handler: app.h
                  Runtime: python3.13
                  Environment:
                    Variables:
                      X: !GetAZs ""
            """,
            r"Resources\.Fn\.Properties\.Environment.*Fn::GetAZs",
        ),
        (
            """
            Resources:
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: fn
                  Handler: app.h
                  Runtime: python3.13
                  Environment:
                    Variables:
                      X: !Ref Nowhere
            """,
            r"Resources\.Fn\.Properties\.Environment\.Variables\.X: .*'Nowhere'",
        ),
        (
            """
            Resources:
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: missing-dir
                  Handler: app.h
                  Runtime: python3.13
            """,
            r"Resources\.Fn\.Properties\.CodeUri: directory .*missing-dir does not exist",
        ),
        (
            """
            Resources:
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: fn
                  Handler: app.h
                  Runtime: python3.13
              Api:
                Type: AWS::ApiGatewayV2::Api
                Properties: {ProtocolType: WEBSOCKET}
              Integration:
                Type: AWS::ApiGatewayV2::Integration
                Properties:
                  ApiId: !Ref Api
                  IntegrationType: HTTP_PROXY
                  IntegrationUri: https://example.com
              Route:
                Type: AWS::ApiGatewayV2::Route
                Properties:
                  ApiId: !Ref Api
                  RouteKey: $default
                  Target: !Sub integrations/${Integration}
            """,
            r"Resources\.Integration\.Properties\.IntegrationType: 'HTTP_PROXY'",
        ),
        (
            """
            Resources:
              Api:
                Type: AWS::ApiGatewayV2::Api
                Properties: {ProtocolType: WEBSOCKET}
              Integration:
                Type: AWS::ApiGatewayV2::Integration
                Properties:
                  ApiId: !Ref Api
                  IntegrationType: AWS_PROXY
                  IntegrationUri: arn:aws:lambda:us-east-1:123456789012:function:elsewhere
              Route:
                Type: AWS::ApiGatewayV2::Route
                Properties:
                  ApiId: !Ref Api
                  RouteKey: $default
                  Target: !Sub integrations/${Integration}
            """,
            r"Resources\.Integration\.Properties\.IntegrationUri: .*names no function",
        ),
        (
            """
            Resources:
              Api:
                Type: AWS::ApiGatewayV2::Api
                Properties: {ProtocolType: WEBSOCKET}
              Auth:
                Type: AWS::ApiGatewayV2::Authorizer
                Properties:
                  ApiId: !Ref Api
                  Name: auth
                  AuthorizerType: JWT
                  IdentitySource: [route.request.header.Authorization]
            """,
            r"Resources\.Auth\.Properties\.AuthorizerType: 'JWT' is not supported \(REQUEST only\)",
        ),
        (
            """
            Parameters:
              Secret: {Type: String}
            Resources: {}
            """,
            r"Parameters\.Secret: no value given",
        ),
        ("Resources: [oops", r"template\.yaml: not a valid YAML/JSON template"),
    ],
)
def test_errors_name_the_resource_and_property(tmp_path, body, pattern):
    path = _write(tmp_path, body)
    with pytest.raises(TemplateError, match=pattern) as info:
        load_application([path])
    assert str(path) in str(info.value)


def test_unknown_resource_types_warn_once_and_aws_only_ones_are_silent(caplog):
    with caplog.at_level(logging.WARNING, logger="apigw_local.template"):
        load_application([WEBSOCKET])
    messages = [r.getMessage() for r in caplog.records]
    assert any("Resources.Queue" in m and "AWS::SQS::Queue" in m for m in messages)
    assert not any("Permission" in m or "IAM" in m or "Deployment" in m for m in messages)


def test_websocket_api_without_stage_serves_default(tmp_path, caplog):
    path = _write(tmp_path, """
        Resources:
          Api:
            Type: AWS::ApiGatewayV2::Api
            Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.op}
    """)
    app = load_application([path])
    assert app.websocket_apis[0].stage == "$default"
    assert app.websocket_apis[0].route_selection_expression == "$request.body.op"
    assert app.websocket_apis[0].routes == {}


STAGE_WITH_SETTINGS = """
    Resources:
      Api:
        Type: AWS::ApiGatewayV2::Api
        Properties: {{ProtocolType: WEBSOCKET}}
      Stage:
        Type: AWS::ApiGatewayV2::Stage
        Properties:
          ApiId: !Ref Api
          StageName: dev
          DefaultRouteSettings: {settings}
"""


def test_stage_throttling_from_default_route_settings(tmp_path):
    path = _write(tmp_path, STAGE_WITH_SETTINGS.format(
        settings="{ThrottlingBurstLimit: 5, ThrottlingRateLimit: 2.5}"))
    throttle = load_application([path]).websocket_apis[0].throttle
    assert (throttle.burst_limit, throttle.rate_limit) == (5, 2.5)
    bad = _write(tmp_path, STAGE_WITH_SETTINGS.format(settings="{ThrottlingBurstLimit: many}"),
                 name="bad.yaml")
    with pytest.raises(TemplateError, match=r"Stage\.Properties\.DefaultRouteSettings"):
        load_application([bad])


def test_websocket_route_settings_give_routes_their_own_limits(tmp_path, caplog):
    path = _write(tmp_path, STAGE_WITH_SETTINGS.format(
        settings="{ThrottlingBurstLimit: 5, ThrottlingRateLimit: 2.5}") + """
          RouteSettings:
            $connect: {ThrottlingBurstLimit: 1}
            typo: {ThrottlingRateLimit: 1}
      Connect:
        Type: AWS::ApiGatewayV2::Route
        Properties: {ApiId: !Ref Api, RouteKey: $connect}
""")
    api = load_application([path]).websocket_apis[0]
    # A limit the route leaves out comes from the stage's DefaultRouteSettings.
    assert api.route_throttles["$connect"] == Throttle(burst_limit=1, rate_limit=2.5)
    assert "not a route of this API" in caplog.text and "typo" in caplog.text


def test_the_apps_stage_is_throttled():
    app = load_application([Path(__file__).parents[2] / "template.yaml"],
                           parameter_overrides={"AuthSecret": "x" * 32})
    throttle = app.websocket_apis[0].throttle
    assert (throttle.burst_limit, throttle.rate_limit) == (500, 1000.0)
    http = app.http_throttling["HttpApi"]
    assert http.default == Throttle(burst_limit=50, rate_limit=20.0) and http.routes == {}


def test_http_api_route_settings_merge_with_globals_and_the_default(tmp_path):
    path = _write(tmp_path, """
        Transform: AWS::Serverless-2016-10-31
        Globals:
          HttpApi:
            DefaultRouteSettings: {ThrottlingBurstLimit: 10, ThrottlingRateLimit: 5}
        Resources:
          Api:
            Type: AWS::Serverless::HttpApi
            Properties:
              DefaultRouteSettings: {ThrottlingRateLimit: 2}
              RouteSettings:
                "POST /pets": {ThrottlingBurstLimit: 1}
                "GET /pets": {DetailedMetricsEnabled: true}
          V2:
            Type: AWS::ApiGatewayV2::Api
            Properties: {ProtocolType: HTTP}
          V2Stage:
            Type: AWS::ApiGatewayV2::Stage
            Properties:
              ApiId: !Ref V2
              StageName: $default
              RouteSettings: {"$default": {ThrottlingBurstLimit: 3, ThrottlingRateLimit: 1}}
          Plain:
            Type: AWS::Serverless::HttpApi
    """)
    app = load_application([path])
    api = app.http_throttling["Api"]
    assert api.default == Throttle(burst_limit=10, rate_limit=2.0)
    assert api.routes == {"POST /pets": Throttle(burst_limit=1, rate_limit=2.0)}
    assert app.http_throttling["V2"].default is None
    assert app.http_throttling["V2"].routes == {"$default": Throttle(3, 1.0)}
    assert app.http_throttling["Plain"] == RouteThrottling(default=Throttle(10, 5.0))  # Globals


def test_route_buckets_are_per_route():
    settings = RouteThrottling(default=Throttle(2, 1.0), routes={"GET /b": Throttle(1, 0.0)})
    buckets = RouteBuckets(settings)
    assert [buckets.take("GET /a", 0.0) for _ in range(3)] == [True, True, False]
    assert [buckets.take("GET /b", 0.0) for _ in range(2)] == [True, False]
    assert buckets.take("GET /a", 0.5) is False and buckets.take("GET /a", 1.0) is True
    assert buckets.take("GET /b", 100.0) is False  # rate 0: never refilled
    assert RouteBuckets(RouteThrottling()).take("GET /c", 0.0) is True
