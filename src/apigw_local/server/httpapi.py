"""The HTTP API port: the template's routes (payload format 2.0), the static web client, and
`/.apigw-local/endpoints.json`.

Order of precedence: the endpoints document; a route that matches (other than `$default`); a
static file (GET/HEAD only); the `$default` route; 404 `{"message":"Not Found"}` as HTTP APIs
answer. CORS is permissive locally (the model does not carry the API's CorsConfiguration):
a preflight is answered 204 with what it asked for, and every answer to a request with an
`Origin` gets `Access-Control-Allow-Origin` unless the function set it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from pathlib import Path

from .. import events
from ..events import HttpRequestInfo, aws_id, now_ms
from ..model import HttpRoute
from ..routing import DEFAULT, HttpRouter
from ..template import api_id_for
from .http11 import HttpConnection, Request, Response, json_response
from .invoke import Integrations, log_line
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
    ) -> None:
        self.router = HttpRouter(routes)
        self.integrations = integrations
        self.domain_name = domain_name
        self.account_id = account_id
        self.static = StaticSite(static_dir) if static_dir else None
        self.endpoints_json = endpoints_json
        self._api_ids: dict[str, str] = {}

    def upgrade(self, request: Request, connection: HttpConnection) -> Awaitable[None] | None:
        return None

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        if request.path == ENDPOINTS_PATH and request.method in ("GET", "HEAD"):
            return json_response(200, self.endpoints_json, [("Cache-Control", "no-store"),
                                                            ("Access-Control-Allow-Origin", "*")])
        origin = request.header("Origin")
        if (request.method == "OPTIONS" and origin
                and request.header("Access-Control-Request-Method")):
            return self._preflight(request, origin)
        match = self.router.match(request.method, request.path)
        if match is not None and match.route_key != DEFAULT:
            return self._invoke(request, match.route, match.route_key, match.path_parameters)
        if self.static is not None and request.method in ("GET", "HEAD"):
            static = self.static.get(request.path)
            if static is not None:
                return static
        if match is not None:
            return self._invoke(request, match.route, match.route_key, match.path_parameters)
        return _with_cors(json_response(404, b'{"message":"Not Found"}'), origin)

    # --- routes -------------------------------------------------------------------------

    async def _invoke(self, request: Request, route: HttpRoute, route_key: str,
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
        log_line("HTTP", route_key, inv, answer.status)
        headers = [*answer.headers, ("apigw-requestid", request_id)]
        return _with_cors(Response(answer.status, headers, answer.body), request.header("Origin"))

    def _preflight(self, request: Request, origin: str) -> Response:
        methods = self.router.allowed_methods(request.path) or {"GET", "POST", "PUT", "PATCH",
                                                                "DELETE"}
        if "ANY" in methods:
            methods = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}
        headers = [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Methods", ",".join(sorted(methods))),
            ("Access-Control-Max-Age", "600"),
            ("Vary", "Origin"),
        ]
        asked = request.header("Access-Control-Request-Headers")
        if asked:
            headers.append(("Access-Control-Allow-Headers", asked))
        return Response(204, headers)

def _with_cors(response: Response, origin: str | None) -> Response:
    if origin and not any(k.lower() == "access-control-allow-origin" for k, _ in response.headers):
        response.headers.append(("Access-Control-Allow-Origin", origin))
        response.headers.append(("Vary", "Origin"))
    return response

