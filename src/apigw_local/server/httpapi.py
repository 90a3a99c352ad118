"""The HTTP API port: the template's routes (payload format 2.0), the static web client, and
`/.apigw-local/endpoints.json`.

Order of precedence: the endpoints document; a route that matches (other than `$default`); a
static file (GET/HEAD only); the `$default` route; 404 `{"message":"Not Found"}` as HTTP APIs
answer.

CORS follows each HTTP API's `CorsConfiguration` from the template (gateway/cors.py): an API without
one answers no preflight and adds no CORS headers, as in AWS. One local addition: the web
client served on this port is an allowed origin of every API that has a configuration (under
each name of the loopback host), as the deployed client's origin would be listed in the
template's AllowOrigins.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any

from ..gateway import cors, events
from ..gateway.events import HttpRequestInfo, aws_id, now_ms
from ..gateway.routing import DEFAULT, HttpRouter
from ..gateway.throttle import RouteBuckets
from ..model import Cors, HttpRoute, RouteThrottling
from ..template import api_id_for
from .http11 import HttpConnection, Request, Response, json_response
from .invoke import Integrations
from .static import StaticSite

ENDPOINTS_PATH = "/.apigw-local/endpoints.json"


class HttpApiGateway:
    def __init__(
        self,
        routes: tuple[HttpRoute, ...],
        integrations: Integrations,
        *,
        domain_name: str,
        account_id: str,
        static_dir: Path | None = None,
        endpoints_json: bytes = b"{}",
        cors_configurations: Mapping[str, Cors] | None = None,
        web_origins: tuple[str, ...] = (),
        throttling: Mapping[str, RouteThrottling] | None = None,
    ) -> None:
        self.router = HttpRouter(routes)
        # Each API's stage throttling, a bucket per route (gateway/throttle.py).
        self.throttles = {api: RouteBuckets(t) for api, t in (throttling or {}).items()}
        self.cors = {api: dataclasses.replace(c, allow_origins=(*c.allow_origins, *web_origins))
                     for api, c in (cors_configurations or {}).items()}
        apis = {r.api_logical_id for r in routes}
        self._sole_api = apis.pop() if len(apis) == 1 else None
        self.integrations = integrations
        self.domain_name = domain_name
        self.account_id = account_id
        self.static = StaticSite(static_dir) if static_dir else None
        self.endpoints_json = endpoints_json
        self._api_ids: dict[str, str] = {}
        # The inspector (inspector/service.py) answers everything under /_apigw-local/.
        self.inspector: Any = None

    def upgrade(self, request: Request, connection: HttpConnection) -> Awaitable[None] | None:
        if self.inspector is not None and self.inspector.wants(request.path):
            return self.inspector.upgrade(request, connection)
        return None

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        if self.inspector is not None and self.inspector.wants(request.path):
            return self.inspector.handle(request)  # its own guards; never CORS
        if request.path == ENDPOINTS_PATH and request.method in ("GET", "HEAD"):
            # For the served web client only (same origin): no CORS, so other pages cannot
            # read which ports the local stack listens on.
            return json_response(200, self.endpoints_json, [("Cache-Control", "no-store")])
        origin = request.header("Origin")
        asked = request.header("Access-Control-Request-Method")
        if request.method == "OPTIONS" and origin and asked:
            found = self.router.match(asked, request.path)
            config = self._cors_for(found.route if found else None)
            if config is not None:
                return Response(204, cors.preflight(
                    config, origin, request.header("Access-Control-Request-Headers")))
        match = self.router.match(request.method, request.path)
        if match is not None and match.route_key != DEFAULT:
            return self._invoke(request, match.route, match.route_key, match.path_parameters)
        if self.static is not None and request.method in ("GET", "HEAD"):
            static = self.static.get(request.path)
            if static is not None:
                return static
        if match is not None:
            return self._invoke(request, match.route, match.route_key, match.path_parameters)
        return self._with_cors(json_response(404, b'{"message":"Not Found"}'), None, origin)

    # --- routes -------------------------------------------------------------------------

    def _invoke(self, request: Request, route: HttpRoute, route_key: str,
                path_parameters: Mapping[str, str]) -> Response | Awaitable[Response]:
        throttle = self.throttles.get(route.api_logical_id)
        if throttle is not None and not throttle.take(route_key, time.monotonic()):
            # "Throttling requests to your HTTP API": 429 Too Many Requests (docs/fidelity.md).
            return self._with_cors(json_response(429, b'{"message":"Too Many Requests"}',
                                                 [("apigw-requestid", aws_id())]),
                                   route, request.header("Origin"))
        return self._call(request, route, route_key, path_parameters)

    async def _call(self, request: Request, route: HttpRoute, route_key: str,
                    path_parameters: Mapping[str, str]) -> Response:
        api_id = self._api_ids.get(route.api_logical_id)
        if api_id is None:
            api_id = self._api_ids[route.api_logical_id] = api_id_for(route.api_logical_id)
        info = HttpRequestInfo(
            method=request.method,
            raw_path=request.path,
            raw_query=request.query,
            headers=tuple(request.headers),
            body=request.body,
            source_ip=request.peer[0],
            protocol=f"HTTP/{request.http_version}",
        )
        request_id = aws_id()
        event = events.http_v2(
            info, route_key=route_key, path_parameters=path_parameters, api_id=api_id,
            domain_name=self.domain_name, account_id=self.account_id, request_id=request_id,
            epoch_ms=now_ms(),
        )
        inv, timed_out = await self.integrations.invoke(route.function, event)
        if timed_out:
            answer = events.HttpAnswer(503, [("Content-Type", "application/json")],
                                       b'{"message":"Service Unavailable"}')
        elif not inv.ok:
            answer = events.internal_server_error()
        else:
            answer = events.http_v2_answer(inv.payload)
        headers = [*answer.headers, ("apigw-requestid", request_id)]
        return self._with_cors(Response(answer.status, headers, answer.body), route,
                               request.header("Origin"))

    # --- CORS ---------------------------------------------------------------------------

    def _cors_for(self, route: HttpRoute | None) -> Cors | None:
        """The CorsConfiguration of the API a request belongs to: its route's, else (no route
        matched) the only API's."""
        api = route.api_logical_id if route is not None else self._sole_api
        return self.cors.get(api) if api is not None else None

    def _with_cors(self, response: Response, route: HttpRoute | None,
                   origin: str | None) -> Response:
        config = self._cors_for(route)
        if config is not None:
            response.headers = cors.apply(config, origin, response.headers)
        return response

