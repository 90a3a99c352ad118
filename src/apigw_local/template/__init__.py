"""Read SAM/CloudFormation templates into the plain `Application` model.

What is read (everything else is ignored, silently for resources that only matter in AWS —
permissions, deployments, IAM, logs — and with one warning per resource otherwise):

- `Parameters` (Default, overrides, AllowedValues, AllowedPattern), `Conditions`, pseudo
  parameters, and the intrinsics of `intrinsics.py`; `Globals.Function`, merged as SAM merges
  it: maps key by key (the function wins), lists concatenated (globals first), scalars
  replaced (`reader`);
- functions and layers (`functions`); API Gateway V2 APIs and SAM `HttpApi`s (`apigw`);
  DynamoDB tables (`tables`); Secrets Manager secrets (`secrets`). How resources are named:
  `names`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..intrinsics import TemplateError
from ..model import Application, Function, HttpRoute
from . import apigw, functions, secrets, tables
from .names import (
    API_TYPES,
    FUNCTION_TYPES,
    LAYER_TYPES,
    SECRET_TYPE,
    SILENT_PREFIXES,
    TABLE_TYPES,
    V2_CHILD_TYPES,
    api_id_for,
)
from .reader import Resource, Stack, param_str

__all__ = ["TemplateError", "api_id_for", "load_application"]


def _is_http_api(stack: Stack, r: Resource) -> bool:
    return r.type == "AWS::Serverless::HttpApi" or (
        r.type == "AWS::ApiGatewayV2::Api" and stack.prop(r, "ProtocolType") == "HTTP")

log = logging.getLogger("apigw_local.template")

_READ_TYPES = FUNCTION_TYPES | LAYER_TYPES | TABLE_TYPES | API_TYPES | {SECRET_TYPE}


def load_application(
    paths: Sequence[Path],
    *,
    parameter_overrides: Mapping[str, str] = {},  # noqa: B006 - read-only
    region: str = "us-east-1",
    account_id: str = "123456789012",
    stack_name: str = "apigw-local",
    websocket_domain: str | None = None,
    http_domain: str | None = None,
) -> Application:
    """Read and resolve `paths` (a template, then overlays) into an `Application`.

    `websocket_domain` / `http_domain` (e.g. "localhost:3001"): every resolved string holding
    a WebSocket (HTTP) API's AWS host `{api_id}.execute-api.{region}.amazonaws.com` gets that
    host replaced, and `Fn::GetAtt Api.ApiEndpoint` becomes `wss://{websocket_domain}`
    (`http://{http_domain}`), so handlers reach the local gateway.
    """
    stack = Stack(
        [Path(p) for p in paths],
        parameter_overrides=parameter_overrides,
        region=region,
        account_id=account_id,
        stack_name=stack_name,
        websocket_domain=websocket_domain,
        http_domain=http_domain,
    )
    parameters = stack.read()
    resources = list(stack.resources.values())
    for r in resources:
        if r.type in _READ_TYPES or r.type in V2_CHILD_TYPES or r.type.startswith(SILENT_PREFIXES):
            continue
        if r.type == "AWS::Serverless::Api":
            log.warning("%s: REST APIs (AWS::Serverless::Api) are not emulated", r.where())
        else:
            log.warning("%s: resource type %s is not emulated; ignored", r.where(), r.type)

    fns: dict[str, Function] = {}
    http_routes: list[HttpRoute] = []
    for r in resources:
        if r.type in FUNCTION_TYPES:
            fn, routes = functions.read_function(stack, r)
            fns[fn.logical_id] = fn
            http_routes.extend(routes)
    websocket_apis = []
    for r in resources:
        if r.type == "AWS::ApiGatewayV2::Api":
            protocol = stack.prop(r, "ProtocolType")
            if protocol == "WEBSOCKET":
                websocket_apis.append(apigw.websocket_api(stack, r, fns))
            elif protocol == "HTTP":
                http_routes.extend(apigw.v2_http_routes(stack, r, fns))
            else:
                raise TemplateError(f"{r.where('ProtocolType')}: unknown value {protocol!r}")
    return Application(
        functions=fns,
        websocket_apis=tuple(websocket_apis),
        http_routes=tuple(http_routes),
        tables={r.logical_id: tables.read_table(stack, r) for r in resources
                if r.type in TABLE_TYPES},
        parameters={k: param_str(v) for k, v in parameters.items()},
        http_cors={r.logical_id: cors for r in resources
                   if (cors := apigw.read_cors(stack, r)) is not None},
        http_throttling={r.logical_id: throttling for r in resources
                         if _is_http_api(stack, r)
                         and (throttling := apigw.read_http_throttling(stack, r)) is not None},
        secrets={r.logical_id: secrets.read_secret(stack, r) for r in resources
                 if r.type == SECRET_TYPE},
        region=region,
        account_id=account_id,
        stack_name=stack_name,
    )
