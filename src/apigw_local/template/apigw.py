"""API Gateway V2: `AWS::ApiGatewayV2::Api` (WEBSOCKET and HTTP) with its Routes, Integrations
(AWS_PROXY), Authorizers (REQUEST), RouteResponses and Stage (its `DefaultRouteSettings`
throttling included).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ..intrinsics import NO_VALUE, TemplateError
from ..model import (
    Authorizer,
    Cors,
    Function,
    HttpRoute,
    RouteThrottling,
    Throttle,
    WebSocketApi,
    WebSocketRoute,
)
from .names import api_id_for
from .reader import Resource, Stack, sam_merge, truthy

log = logging.getLogger("apigw_local.template")


def _integration_function(stack: Stack, route: Resource, functions: Mapping[str, Function]
                          ) -> str | None:
    target = stack.prop(route, "Target")
    if target is None:
        return None
    where = route.where("Target")
    if not isinstance(target, str) or not target.startswith("integrations/"):
        raise TemplateError(f"{where}: expected 'integrations/{{IntegrationId}}', "
                            f"got {target!r}")
    integration = stack.physical_to(target.split("/", 1)[1],
                                    "AWS::ApiGatewayV2::Integration", where)
    stack.only(integration, "IntegrationType", "AWS_PROXY")
    uri = stack.str_prop(integration, "IntegrationUri")
    return stack.function_by_arn(uri, integration.where("IntegrationUri"), functions)


def websocket_api(stack: Stack, api: Resource, functions: Mapping[str, Function]) -> WebSocketApi:
    authorizers: dict[str, Authorizer] = {}
    for a in stack.children(api, "AWS::ApiGatewayV2::Authorizer"):
        stack.only(a, "AuthorizerType", "REQUEST")
        uri = stack.str_prop(a, "AuthorizerUri")
        sources = stack.prop(a, "IdentitySource") or []
        if isinstance(sources, str):
            sources = [s.strip() for s in sources.split(",")]
        authorizers[a.logical_id] = Authorizer(
            logical_id=a.logical_id,
            name=str(stack.prop(a, "Name", a.logical_id)),
            function=stack.function_by_arn(uri, a.where("AuthorizerUri"), functions),
            identity_sources=tuple(str(s) for s in sources),
        )
    with_response = set()
    for rr in stack.children(api, "AWS::ApiGatewayV2::RouteResponse"):
        route = stack.physical_to(stack.prop(rr, "RouteId"), "AWS::ApiGatewayV2::Route",
                                  rr.where("RouteId"))
        with_response.add(route.logical_id)
    routes: dict[str, WebSocketRoute] = {}
    for route in stack.children(api, "AWS::ApiGatewayV2::Route"):
        key = stack.prop(route, "RouteKey")
        if not isinstance(key, str):
            raise TemplateError(f"{route.where('RouteKey')}: a route needs a RouteKey")
        if key in routes:
            raise TemplateError(f"{route.where('RouteKey')}: route {key!r} defined twice")
        authorizer = None
        auth_type = stack.prop(route, "AuthorizationType", "NONE")
        if auth_type == "CUSTOM":
            auth = stack.physical_to(stack.prop(route, "AuthorizerId"),
                                     "AWS::ApiGatewayV2::Authorizer",
                                     route.where("AuthorizerId"))
            authorizer = authorizers[auth.logical_id]
        elif auth_type not in ("NONE", None):
            log.warning("%s: AuthorizationType %s is not emulated",
                        route.where("AuthorizationType"), auth_type)
        routes[key] = WebSocketRoute(
            route_key=key,
            function=_integration_function(stack, route, functions),
            authorizer=authorizer,
            route_response=route.logical_id in with_response,
        )
    stages = stack.children(api, "AWS::ApiGatewayV2::Stage")
    throttle, route_throttles = None, {}
    if stages:
        stage = str(stack.prop(stages[0], "StageName"))
        throttle = _throttle(stack, stages[0])
        route_throttles = _route_settings(stack.prop(stages[0], "RouteSettings"),
                                          stages[0].where, throttle)
        for key in route_throttles.keys() - routes.keys():
            log.warning("%s: RouteSettings for %r, which is not a route of this API",
                        stages[0].where("RouteSettings"), key)
        if len(stages) > 1:
            log.warning("%s: several stages; serving %s", api.where(), stage)
    else:
        stage = "$default"
        log.warning("%s: no AWS::ApiGatewayV2::Stage; serving stage $default", api.where())
    return WebSocketApi(
        logical_id=api.logical_id,
        name=str(stack.prop(api, "Name", api.logical_id)),
        api_id=api_id_for(api.logical_id),
        route_selection_expression=str(
            stack.prop(api, "RouteSelectionExpression", "$request.body.action")
        ),
        routes=routes,
        stage=stage,
        throttle=throttle,
        route_throttles=route_throttles,
    )


def _throttle(stack: Stack, stage: Resource) -> Throttle | None:
    """The stage's `DefaultRouteSettings` throttling (AWS::ApiGatewayV2::Stage RouteSettings:
    ThrottlingBurstLimit, an integer, and ThrottlingRateLimit, requests per second)."""
    return _route_throttle(stack.prop(stage, "DefaultRouteSettings"),
                           stage.where("DefaultRouteSettings"))


def _route_throttle(settings: object, where: str, default: Throttle | None = None
                    ) -> Throttle | None:
    """One RouteSettings mapping's throttling; a limit it leaves out comes from `default`
    (the stage's DefaultRouteSettings), else from the other limit."""
    settings = settings or {}
    if not isinstance(settings, dict):
        raise TemplateError(f"{where}: expected a mapping")
    burst, rate = settings.get("ThrottlingBurstLimit"), settings.get("ThrottlingRateLimit")
    if burst is None and rate is None:
        return default
    if default is not None:
        burst = default.burst_limit if burst is None else burst
        rate = default.rate_limit if rate is None else rate
    try:
        throttle = Throttle(burst_limit=int(burst if burst is not None else rate),
                            rate_limit=float(rate if rate is not None else burst))
    except (TypeError, ValueError):
        raise TemplateError(f"{where}: ThrottlingBurstLimit and ThrottlingRateLimit must be "
                            "numbers") from None
    if throttle.burst_limit < 0 or throttle.rate_limit < 0:
        raise TemplateError(f"{where}: throttling limits cannot be negative")
    return throttle


def _route_settings(routes_raw: object, where: Callable[[str], str],
                    default: Throttle | None) -> dict[str, Throttle]:
    """A stage's `RouteSettings`: the routes whose limits differ from `default`, by route key."""
    routes_raw = routes_raw or {}
    if not isinstance(routes_raw, dict):
        raise TemplateError(f"{where('RouteSettings')}: expected a mapping of route keys")
    routes = {}
    for key, settings in routes_raw.items():
        throttle = _route_throttle(settings, f"{where('RouteSettings')}.{key}", default)
        if throttle is not None and throttle != default:  # the others share the default's
            routes[str(key)] = throttle
    return routes


def read_http_throttling(stack: Stack, api: Resource) -> RouteThrottling | None:
    """An HTTP API's stage throttling: SAM `HttpApi` DefaultRouteSettings and RouteSettings
    (merged with Globals.HttpApi's), or those of an `AWS::ApiGatewayV2::Stage` of an HTTP
    `AWS::ApiGatewayV2::Api` (the first stage, as for WebSocket APIs)."""
    if api.type == "AWS::Serverless::HttpApi":
        def merged(key: str) -> object:
            glob, own = stack.http_api_globals.get(key), api.properties.get(key)
            return glob if own is None else own if glob is None else sam_merge(glob, own)

        default_raw, routes_raw, where = (merged("DefaultRouteSettings"),
                                          merged("RouteSettings"), api.where)
        default_raw = stack.resolver.resolve(default_raw, where("DefaultRouteSettings"))
        routes_raw = stack.resolver.resolve(routes_raw, where("RouteSettings"))
    else:
        stages = stack.children(api, "AWS::ApiGatewayV2::Stage")
        if not stages:
            return None
        where = stages[0].where
        default_raw = stack.prop(stages[0], "DefaultRouteSettings")
        routes_raw = stack.prop(stages[0], "RouteSettings")
    default = _route_throttle(default_raw, where("DefaultRouteSettings"))
    routes = _route_settings(routes_raw, where, default)
    if default is None and not routes:
        return None
    return RouteThrottling(default=default, routes=routes)


def v2_http_routes(stack: Stack, api: Resource, functions: Mapping[str, Function]
                    ) -> list[HttpRoute]:
    routes = []
    for route in stack.children(api, "AWS::ApiGatewayV2::Route"):
        key = stack.prop(route, "RouteKey")
        fn = _integration_function(stack, route, functions)
        if fn is None:
            continue
        if key == "$default":
            method, path = "ANY", "$default"
        elif isinstance(key, str) and " " in key:
            method, path = key.split(" ", 1)
        else:
            raise TemplateError(f"{route.where('RouteKey')}: expected 'METHOD /path', "
                                f"got {key!r}")
        target = stack.prop(route, "Target")
        integration = stack.physical_to(target.split("/", 1)[1],
                                        "AWS::ApiGatewayV2::Integration", route.where())
        routes.append(HttpRoute(
            method=method.upper(), path=path, function=fn, api_logical_id=api.logical_id,
            payload_format_version=str(
                stack.prop(integration, "PayloadFormatVersion", "2.0")),
        ))
    return routes


def read_cors(stack: Stack, r: Resource) -> Cors | None:
    """An HTTP API's CorsConfiguration; SAM also takes it from Globals.HttpApi, and reads
    `true` or a bare value as AllowOrigins (`true`: `*`)."""
    if r.type == "AWS::Serverless::HttpApi":
        own = r.properties.get("CorsConfiguration")
        glob = stack.http_api_globals.get("CorsConfiguration")
        intrinsic = isinstance(own, dict) and len(own) == 1 and (
            next(iter(own)).startswith("Fn::") or "Ref" in own)
        # SAM merges a mapping with the global one; an intrinsic replaces it whole.
        raw = glob if own is None else own if intrinsic else sam_merge(glob, own)
    elif r.type == "AWS::ApiGatewayV2::Api" and stack.prop(r, "ProtocolType") == "HTTP":
        raw = r.properties.get("CorsConfiguration")
    else:
        return None
    where = r.where("CorsConfiguration")
    value = stack.resolver.resolve(raw, where)
    if value in (None, False, NO_VALUE):
        return None
    if not isinstance(value, dict):
        value = {"AllowOrigins": ["*"] if value is True else value}

    def strings(key: str) -> tuple[str, ...]:
        items = value.get(key) or []
        items = [items] if isinstance(items, str) else items
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise TemplateError(f"{where}.{key}: expected a list of strings")
        return tuple(i.strip() for i in items if i.strip())

    max_age = value.get("MaxAge")
    return Cors(
        allow_origins=strings("AllowOrigins"), allow_methods=strings("AllowMethods"),
        allow_headers=strings("AllowHeaders"), expose_headers=strings("ExposeHeaders"),
        max_age=None if max_age is None else int(max_age),
        allow_credentials=truthy(value.get("AllowCredentials", False)),
    )
