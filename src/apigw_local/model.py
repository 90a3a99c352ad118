"""The plain model of an application read from a SAM/CloudFormation template.

`template/` builds it; everything else (gateway, runtime, DynamoDB provisioning) reads
only this model, never the raw template. All intrinsic functions are resolved by then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Function:
    """A Lambda function (`AWS::Serverless::Function` or `AWS::Lambda::Function`)."""

    logical_id: str
    name: str  # FunctionName if the template sets one, else the logical id
    code_uri: Path  # absolute directory holding the handler module
    handler: str  # "module.function", e.g. "app.lambda_handler"
    runtime: str  # e.g. "python3.13"
    timeout: float = 3.0  # seconds; Lambda's default
    memory_size: int = 128  # MB; Lambda's default
    environment: dict[str, str] = field(default_factory=dict)  # Globals + function, resolved
    layers: tuple[Path, ...] = ()  # absolute directories to put on sys.path, in order


@dataclass(frozen=True)
class Authorizer:
    """A REQUEST Lambda authorizer of a WebSocket API (`AWS::ApiGatewayV2::Authorizer`)."""

    logical_id: str
    name: str
    function: str  # logical id of the authorizer's Function
    # e.g. ("route.request.querystring.token", "route.request.header.Authorization")
    identity_sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebSocketRoute:
    route_key: str  # "$connect", "$default", "$disconnect" or a custom key such as "sendmessage"
    function: str | None  # logical id of the AWS_PROXY integration's Function; None: no integration
    authorizer: Authorizer | None = None  # only meaningful on $connect
    # True when the route has a RouteResponse (two-way): the handler's body is sent to the client.
    route_response: bool = False


@dataclass(frozen=True)
class Throttle:
    """A stage's throttling: a token bucket of `burst_limit` tokens refilled at `rate_limit`
    per second ("Throttle API requests for better throughput" in the API Gateway guide)."""

    burst_limit: int
    rate_limit: float


@dataclass(frozen=True)
class RouteThrottling:
    """An HTTP API stage's throttling: `default` (DefaultRouteSettings) for each route, and
    `routes` (RouteSettings, by route key such as "GET /pets") where a route has its own."""

    default: Throttle | None = None
    routes: dict[str, Throttle] = field(default_factory=dict)


@dataclass(frozen=True)
class WebSocketApi:
    logical_id: str
    name: str
    api_id: str  # a stable 10-character id derived from the logical id, like AWS's
    route_selection_expression: str  # e.g. "$request.body.action"
    routes: dict[str, WebSocketRoute]
    stage: str  # the Stage's StageName (resolved)
    throttle: Throttle | None = None  # the Stage's DefaultRouteSettings; None: unthrottled
    # The Stage's RouteSettings: routes with limits of their own, by route key.
    route_throttles: dict[str, Throttle] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpRoute:
    """One HTTP API route: a SAM `HttpApi` event, or an HTTP API's `AWS::ApiGatewayV2::Route`."""

    method: str  # upper case, or "ANY"
    path: str  # "/transactions/{id}/verify", "/{proxy+}", or "$default"
    function: str  # logical id of the Function
    api_logical_id: str  # "ServerlessHttpApi" for SAM's implicit API
    payload_format_version: str = "2.0"


@dataclass(frozen=True)
class Cors:
    """An HTTP API's `CorsConfiguration` (see gateway/cors.py for how API Gateway applies it)."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


@dataclass(frozen=True)
class Table:
    """An `AWS::DynamoDB::Table`; `create_table` holds boto3 CreateTable arguments."""

    logical_id: str
    name: str  # TableName if set, else "{stack_name}-{logical_id}"
    create_table: dict[str, Any]  # KeySchema, AttributeDefinitions, indexes, BillingMode, ...
    ttl_attribute: str | None = None


@dataclass(frozen=True)
class Secret:
    """An `AWS::SecretsManager::Secret`: its name, the ARN its `Ref` gives, and its value."""

    logical_id: str
    name: str  # Name if the template sets one, else "{stack_name}-{logical_id}"
    arn: str  # arn:aws:secretsmanager:{region}:{account}:secret:{name}-{6 characters}
    value: str = field(repr=False)  # SecretString, or one generated from GenerateSecretString
    generated: bool = False  # True: a value already in the backend is kept, not replaced


@dataclass(frozen=True)
class Application:
    functions: dict[str, Function]
    websocket_apis: tuple[WebSocketApi, ...]
    http_routes: tuple[HttpRoute, ...]
    tables: dict[str, Table]
    parameters: dict[str, str]  # resolved parameter values (NoEcho ones included)
    http_cors: dict[str, Cors] = field(default_factory=dict)  # HTTP API logical id → its CORS
    # HTTP API logical id → its stage's throttling
    http_throttling: dict[str, RouteThrottling] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)
    region: str = "us-east-1"
    account_id: str = "123456789012"
    stack_name: str = "apigw-local"
