"""Route selection, as API Gateway does it (pure; no I/O).

WebSocket APIs: "Working with routes for WebSocket APIs" in the API Gateway developer guide.
The API's RouteSelectionExpression (`$request.body.action`) is evaluated against the message
body parsed as JSON; the selected value is matched exactly against the route keys; when the body
is not JSON, the path does not exist, or no route has that key, the `$default` route is used;
without a `$default` route the message is rejected (the client gets a "Forbidden" frame).

HTTP APIs: "Working with routes for HTTP APIs". Routes are `METHOD /path` with `{param}`
segments and a greedy `{proxy+}` last segment; the most specific route wins (literal segments
beat parameters, parameters beat greedy paths), a route for the method beats `ANY`, and the
`$default` route catches everything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ..model import HttpRoute, WebSocketApi, WebSocketRoute

CONNECT = "$connect"
DISCONNECT = "$disconnect"
DEFAULT = "$default"

_EXPRESSION = re.compile(r"^\$\{?request\.body\.([A-Za-z0-9_.\-]+)\}?$")


class RouteSelectionError(ValueError):
    """The API's RouteSelectionExpression is not one API Gateway accepts for WebSocket APIs."""


def body_path(expression: str) -> tuple[str, ...]:
    """The dotted JSON path of `$request.body.<path>` (also `${request.body.<path>}`)."""
    match = _EXPRESSION.match(expression.strip())
    if not match:
        raise RouteSelectionError(
            f"unsupported RouteSelectionExpression {expression!r}: "
            "expected $request.body.<path>"
        )
    return tuple(match.group(1).split("."))


@dataclass(frozen=True)
class Selection:
    """The outcome of route selection for one message."""

    route: WebSocketRoute | None  # None: no route matched and there is no $default

    @property
    def route_key(self) -> str:
        return self.route.route_key if self.route else DEFAULT


class WebSocketRouter:
    """Selects a WebSocket API's route for each incoming message."""

    def __init__(self, api: WebSocketApi) -> None:
        self.load(api)

    def load(self, api: WebSocketApi) -> None:
        """Route by `api` from now on (the sessions holding this router follow a reload)."""
        self.api = api
        self.path = body_path(api.route_selection_expression)
        self.routes: Mapping[str, WebSocketRoute] = api.routes
        self.default = api.routes.get(DEFAULT)
        # Custom keys only: a body selecting "$connect" must not run the connect route.
        self._custom = {k: r for k, r in api.routes.items() if not k.startswith("$")}

    def lifecycle(self, key: str) -> WebSocketRoute | None:
        """The `$connect` or `$disconnect` route, if the API defines it."""
        return self.routes.get(key)

    def select(self, body: str | bytes) -> Selection:
        selected = self._evaluate(body)
        if selected is not None:
            route = self._custom.get(selected)
            if route is not None:
                return Selection(route)
        return Selection(self.default)

    def _evaluate(self, body: str | bytes) -> str | None:
        if not self._custom:  # only $default: no need to parse
            return None
        try:
            value: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        for part in self.path:
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return json.dumps(value)
        return None


# --- HTTP APIs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpMatch:
    route: HttpRoute
    route_key: str  # "POST /transactions/{id}/verify" or "$default"
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class _Compiled:
    route: HttpRoute
    route_key: str
    segments: tuple[str, ...]
    greedy: str | None  # name of the trailing {name+} parameter
    rank: tuple[int, ...]  # sorts most specific first


def _split(path: str) -> list[str]:
    return [s for s in path.split("/") if s != ""]


def _compile(route: HttpRoute) -> _Compiled:
    if route.path == DEFAULT:
        return _Compiled(route, DEFAULT, (), None, (1, 0, 0, 0, 0))
    segments = _split(route.path)
    greedy = None
    if segments and segments[-1].startswith("{") and segments[-1].endswith("+}"):
        greedy = segments[-1][1:-2]
        segments = segments[:-1]
    literals = sum(1 for s in segments if not s.startswith("{"))
    method = route.method.upper()
    key = f"{method} {route.path}"
    # Rank: non-greedy first; more literal segments; longer; a concrete method before ANY.
    rank = (0, 1 if greedy else 0, -len(segments), -literals, 1 if method == "ANY" else 0)
    return _Compiled(route, key, tuple(segments), greedy, rank)


class HttpRouter:
    """Matches requests to an HTTP API's routes; `match` returns None for API Gateway's 404."""

    def __init__(self, routes: Iterable[HttpRoute]) -> None:
        compiled = [_compile(r) for r in routes]
        # Exact literal paths are most specific of all: keep them sorted first by rank.
        self._routes = sorted(compiled, key=lambda c: c.rank)

    def match(self, method: str, path: str) -> HttpMatch | None:
        method = method.upper()
        parts = _split(path)
        for c in self._routes:
            if c.route.path == DEFAULT:
                return HttpMatch(c.route, DEFAULT, {})
            route_method = c.route.method.upper()
            if route_method != "ANY" and route_method != method:
                continue
            params = _match_segments(c, parts)
            if params is not None:
                return HttpMatch(c.route, c.route_key, params)
        return None

    def allowed_methods(self, path: str) -> set[str]:
        """Methods routed for `path` (for CORS preflight answers)."""
        parts = _split(path)
        return {
            c.route.method.upper()
            for c in self._routes
            if c.route.path != DEFAULT and _match_segments(c, parts) is not None
        }


def _match_segments(c: _Compiled, parts: list[str]) -> dict[str, str] | None:
    n = len(c.segments)
    if c.greedy is None:
        if len(parts) != n:
            return None
    elif len(parts) <= n:  # {proxy+} needs at least one segment
        return None
    params: dict[str, str] = {}
    for pattern, value in zip(c.segments, parts, strict=False):
        if pattern.startswith("{") and pattern.endswith("}"):
            params[pattern[1:-1]] = unquote(value)
        elif pattern != value:
            return None
    if c.greedy is not None:
        params[c.greedy] = unquote("/".join(parts[n:]))
    return params
