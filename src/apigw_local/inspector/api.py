"""The inspector's HTTP interface under `/_apigw-local/`: the page, its JSON API, its guards.

Every local web page is hostile: any site the developer visits can make the browser send
requests to 127.0.0.1. So the inspector
- answers loopback peers only, and only for a `Host` that names this server (127.0.0.1,
  localhost, [::1] with its port): a rebound DNS name is refused;
- sends no CORS headers at all, so no other origin can read an answer;
- requires, for every request that changes something (POST, DELETE) and for its live
  WebSocket, an `Origin` that is the inspector's own, and POST bodies in JSON (a cross-site
  form cannot send one without a preflight, which finds no CORS answer);
- is framed by nobody (`frame-ancestors 'none'`) and runs only its own scripts (CSP).

Requests are plain values in and an `Answer` out (or an awaitable one), so the guards are
tested without sockets; `Actions` is what the emulator lends it (post, disconnect, replay, scan).
"""

from __future__ import annotations

import ipaddress
import json
import mimetypes
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

from .model import InspectorModel, InvocationView

PREFIX = "/_apigw-local"
LIVE_PATH = f"{PREFIX}/live"
STATIC_DIR = Path(__file__).parent / "static"
MAX_POST_BYTES = 128 * 1024 + 1024  # @connections Data is at most 128 KB; room for the JSON
MAX_PAGE = 100  # items per page of the table browser

SECURITY_HEADERS = (
    ("Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
     "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @classmethod
    def json(cls, status: int, data: Any) -> Answer:
        return cls(status, (("Content-Type", "application/json"), *SECURITY_HEADERS),
                   json.dumps(data, default=str).encode())

    @classmethod
    def error(cls, status: int, message: str) -> Answer:
        return cls.json(status, {"message": message})


class ActionError(Exception):
    """An action that could not be done: the status and message the page shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Actions(Protocol):
    """What the inspector may do to the running emulator."""

    def describe(self) -> dict[str, Any]:
        """The application: endpoints, routes, tables, chaos setting."""
        ...

    def post(self, connection_id: str, data: bytes) -> None:
        """Post a frame, as PostToConnection does; ActionError on failure."""
        ...

    def disconnect(self, connection_id: str) -> None:
        """Close the connection, as DeleteConnection does; ActionError on failure."""
        ...

    def replay(self, invocation: InvocationView) -> Awaitable[InvocationView]:
        """Invoke the same function with the same event again."""
        ...

    def items(self, table: str, limit: int, start: str | None) -> Awaitable[dict[str, Any]]:
        """One page of a table's items: {"items": [...], "next": token or None}."""
        ...


@dataclass
class Request:
    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    peer: str = "127.0.0.1"


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def own_hosts(port: int) -> frozenset[str]:
    return frozenset({f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"})


class InspectorApi:
    def __init__(self, model: InspectorModel, actions: Actions, *, port: int,
                 static_dir: Path = STATIC_DIR, poll: Callable[[], None] | None = None) -> None:
        """`poll` brings the connections' counters up to date before a snapshot."""
        self.model = model
        self.poll = poll
        self.actions = actions
        self.hosts = own_hosts(port)
        self.static_dir = static_dir.resolve()

    @staticmethod
    def wants(path: str) -> bool:
        return path == PREFIX or path.startswith(PREFIX + "/")

    # -- guards --------------------------------------------------------------------------------

    def refusal(self, request: Request, *, changes_state: bool) -> Answer | None:
        """Why this request may not be served (None: it may)."""
        if not is_loopback(request.peer):
            return Answer.error(403, "the inspector answers loopback clients only")
        host = request.headers.get("host", "")
        if host not in self.hosts:
            return Answer.error(403, f"host {host!r} is not this inspector's")
        if changes_state:
            origin = request.headers.get("origin")
            if origin not in {f"http://{h}" for h in self.hosts} | {
                    f"https://{h}" for h in self.hosts}:
                return Answer.error(403, "cross-origin request refused (Origin must be the "
                                         "inspector's own)")
        return None

    def check_live(self, request: Request) -> Answer | None:
        """The live WebSocket's handshake guard (browsers let any page open WebSockets)."""
        return self.refusal(request, changes_state=True)

    # -- routing -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Answer | Awaitable[Answer]:
        method, path = request.method.upper(), request.path
        changes_state = method not in ("GET", "HEAD")
        refused = self.refusal(request, changes_state=changes_state)
        if refused is not None:
            return refused
        if path == PREFIX:
            return Answer(308, (("Location", PREFIX + "/"), *SECURITY_HEADERS))
        rest = path[len(PREFIX) + 1:]
        if not rest.startswith("api/"):
            if method not in ("GET", "HEAD"):
                return Answer.error(405, "method not allowed")
            return self._static(rest or "index.html")
        parts = [unquote(p) for p in rest.split("/")[1:]]
        route = self._route(method, parts)
        if route is None:
            return Answer.error(404 if method in ("GET", "POST", "DELETE") else 405,
                                f"no inspector API {method} /{'/'.join(parts)}")
        if method == "POST":
            if request.headers.get("content-type", "").split(";")[0].strip() != \
                    "application/json":
                return Answer.error(415, "send JSON (Content-Type: application/json)")
            if len(request.body) > MAX_POST_BYTES:
                return Answer.error(413, f"body over {MAX_POST_BYTES} bytes")
        try:
            return route(request, parts)
        except ActionError as err:
            return Answer.error(err.status, err.message)

    def _route(self, method: str, parts: list[str]) -> Callable[..., Any] | None:
        match method, parts:
            case "GET", ["state"]:
                return self._state
            case "GET", ["invocations", _]:
                return self._invocation
            case "POST", ["invocations", _, "replay"]:
                return self._replay
            case "POST", ["connections", _, "messages"]:
                return self._post
            case "DELETE", ["connections", _]:
                return self._disconnect
            case "GET", ["tables", _, "items"]:
                return self._items
        return None

    def _state(self, request: Request, parts: list[str]) -> Answer:
        if self.poll is not None:
            self.poll()
        return Answer.json(200, {"app": self.actions.describe(), **self.model.snapshot()})

    def _find(self, raw: str) -> InvocationView:
        view = self.model.find_invocation(int(raw)) if raw.isdigit() else None
        if view is None:
            raise ActionError(404, f"no recent invocation {raw}")
        return view

    def _invocation(self, request: Request, parts: list[str]) -> Answer:
        return Answer.json(200, self._find(parts[1]).as_json())

    def _replay(self, request: Request, parts: list[str]) -> Awaitable[Answer]:
        view = self._find(parts[1])
        if view.event is None:
            raise ActionError(409, "this invocation's event was too large to keep")

        async def run() -> Answer:
            try:
                new = await self.actions.replay(view)
            except ActionError as err:
                return Answer.error(err.status, err.message)
            return Answer.json(200, new.as_json())

        return run()

    def _post(self, request: Request, parts: list[str]) -> Answer:
        try:
            data = json.loads(request.body)["data"]
        except (ValueError, KeyError, TypeError):
            return Answer.error(400, 'expected {"data": "the frame\'s text"}')
        if not isinstance(data, str):
            return Answer.error(400, '"data" must be a string (sent as one text frame)')
        self.actions.post(parts[1], data.encode())
        return Answer.json(200, {"posted": parts[1], "bytes": len(data.encode())})

    def _disconnect(self, request: Request, parts: list[str]) -> Answer:
        self.actions.disconnect(parts[1])
        return Answer.json(200, {"disconnected": parts[1]})

    def _items(self, request: Request, parts: list[str]) -> Awaitable[Answer]:
        query = parse_qs(request.query)
        raw_limit = (query.get("limit") or ["25"])[0]
        limit = int(raw_limit) if raw_limit.isdigit() else 25
        limit = max(1, min(limit, MAX_PAGE))
        start = (query.get("start") or [None])[0]

        async def run() -> Answer:
            try:
                page = await self.actions.items(parts[1], limit, start)
            except ActionError as err:
                return Answer.error(err.status, err.message)
            return Answer.json(200, page)

        return run()

    def _static(self, name: str) -> Answer:
        path = (self.static_dir / name).resolve()
        if not path.is_relative_to(self.static_dir) or not path.is_file():
            return Answer.error(404, "not found")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix == ".js":
            kind = "text/javascript"
        if kind.startswith("text/"):
            kind += "; charset=utf-8"
        return Answer(200, (("Content-Type", kind), *SECURITY_HEADERS), path.read_bytes())
