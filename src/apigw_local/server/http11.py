"""HTTP/1.1 over asyncio.Protocol with httptools: keep-alive, pipelining in order, upgrades.

One `HttpConnection` per accepted socket. Requests are answered strictly in the order they
arrived (RFC 9112 9.3.2, pipelining); a handler may answer synchronously — the Management API's
PostToConnection does, which keeps the hot path free of task creation — or with an awaitable.
A request asking for `Upgrade: websocket` is handed to the application together with this
connection, which then forwards every later byte to the upgraded protocol.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

import httptools

log = logging.getLogger("apigw_local.server")

MAX_BODY = 10 * 1024 * 1024  # HTTP APIs accept payloads up to 10 MB
MAX_PENDING = 64  # pipelined requests buffered before reading pauses


@dataclass
class Request:
    method: str
    target: str  # raw request target: path and query
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool
    http_version: str
    peer: tuple[str, int]
    scheme: str  # "http" or "https"
    local_port: int
    path: str = ""
    query: str = ""

    def __post_init__(self) -> None:
        path, _, query = self.target.partition("?")
        self.path, self.query = path, query

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    close: bool = False

    def serialize(self, keep_alive: bool, head_only: bool = False) -> bytes:
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [f"HTTP/1.1 {self.status} {phrase}"]
        for k, v in self.headers:
            lk = k.lower()
            if lk in ("content-length", "transfer-encoding", "connection"):
                continue
            lines.append(f"{k}: {v}")
        if self.status not in (204, 304) and not (100 <= self.status < 200):
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if head_only or self.status in (204, 304):
            return head
        return head + self.body


def json_response(
    status: int, body: bytes, headers: list[tuple[str, str]] | None = None
) -> Response:
    return Response(status, [("Content-Type", "application/json"), *(headers or [])], body)


class Upgraded(Protocol):
    """What an upgraded connection (a WebSocket session) receives from the socket."""

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...

    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...


class HttpApp(Protocol):
    def handle(self, request: Request) -> Response | Awaitable[Response]: ...

    def upgrade(self, request: Request, connection: HttpConnection) -> Awaitable[None] | None:
        """Take over `connection` for a WebSocket handshake; None: not upgradable here."""
        ...


class HttpConnection(asyncio.Protocol):
    __slots__ = (
        "app", "scheme", "transport", "parser", "pending", "busy", "upgraded", "peer",
        "local_port", "_url", "_headers", "_body", "_upgrade_request", "_closed", "on_close",
        "_paused",
    )

    def __init__(self, app: HttpApp, on_close: Callable[[HttpConnection], None] | None = None):
        self.app = app
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: deque[Request] = deque()
        self.busy = False
        self.upgraded: Upgraded | None = None
        self.scheme = "http"
        self.peer: tuple[str, int] = ("127.0.0.1", 0)
        self.local_port = 0
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._upgrade_request: Request | None = None
        self._closed = False
        self._paused = False

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = (peer[0], peer[1])
        sock = transport.get_extra_info("sockname")
        if sock:
            self.local_port = sock[1]
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"

    def data_received(self, data: bytes) -> None:
        if self.upgraded is not None:
            self.upgraded.data_received(data)
            return
        if self._upgrade_request is not None:  # bytes after an upgrade request, before 101
            self._body.append(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self._start_upgrade(data[offset:])
        except httptools.HttpParserError:
            self._write_now(Response(400, [("Content-Type", "text/plain")], b"Bad Request\n"),
                            keep_alive=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self.upgraded is not None:
            self.upgraded.connection_lost(exc)
        if self.on_close is not None:
            self.on_close(self)

    def pause_writing(self) -> None:
        if self.upgraded is not None:
            self.upgraded.pause_writing()

    def resume_writing(self) -> None:
        if self.upgraded is not None:
            self.upgraded.resume_writing()

    # --- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        p = self.parser
        request = Request(
            method=p.get_method().decode(),
            target=self._url.decode("latin-1"),
            headers=self._headers,
            body=b"".join(self._body),
            keep_alive=p.should_keep_alive(),
            http_version=p.get_http_version(),
            peer=self.peer,
            scheme=self.scheme,
            local_port=self.local_port,
        )
        if p.should_upgrade():
            self._upgrade_request = request
            self._body = []
            return
        if self.busy or self.pending:
            self.pending.append(request)
            if len(self.pending) >= MAX_PENDING and self.transport and not self._paused:
                self._paused = True
                self.transport.pause_reading()
            return
        self._dispatch(request)

    # --- dispatch -----------------------------------------------------------------------

    def _dispatch(self, request: Request) -> None:
        while True:
            try:
                result = self.app.handle(request)
            except Exception:
                log.exception("handler failed for %s %s", request.method, request.target)
                result = Response(500, [("Content-Type", "application/json")],
                                  b'{"message":"Internal Server Error"}')
            if inspect.isawaitable(result):
                self.busy = True
                asyncio.ensure_future(self._finish(request, result))
                return
            self._write_now(result, request.keep_alive, request.method == "HEAD")
            if not self.pending or self._closed:
                return
            request = self.pending.popleft()
            self._maybe_resume()

    async def _finish(self, request: Request, result: Awaitable[Response]) -> None:
        try:
            response = await result
        except Exception:
            log.exception("handler failed for %s %s", request.method, request.target)
            response = Response(500, [("Content-Type", "application/json")],
                                b'{"message":"Internal Server Error"}')
        self.busy = False
        self._write_now(response, request.keep_alive, request.method == "HEAD")
        if self.pending and not self._closed:
            nxt = self.pending.popleft()
            self._maybe_resume()
            self._dispatch(nxt)

    def _maybe_resume(self) -> None:
        if self._paused and len(self.pending) < MAX_PENDING // 2 and self.transport:
            self._paused = False
            self.transport.resume_reading()

    def _write_now(self, response: Response, keep_alive: bool, head_only: bool = False) -> None:
        if self.transport is None or self._closed:
            return
        keep_alive = keep_alive and not response.close
        self.transport.write(response.serialize(keep_alive, head_only))
        if not keep_alive:
            self.transport.close()
            self._closed = True

    def write_raw(self, data: bytes) -> None:
        if self.transport is not None and not self._closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self._closed:
            self._closed = True
            self.transport.close()

    @property
    def closed(self) -> bool:
        return self._closed or self.transport is None or self.transport.is_closing()

    # --- upgrades -----------------------------------------------------------------------

    def _start_upgrade(self, rest: bytes) -> None:
        request = self._upgrade_request
        if request is None:  # the parser saw Upgrade but the message is not complete
            self._write_now(Response(400, body=b"Bad Request\n"), keep_alive=False)
            return
        if rest:
            self._body.append(rest)
        result = self.app.upgrade(request, self)
        if result is None:
            self._upgrade_request = None
            self._write_now(
                Response(404, [("Content-Type", "application/json")],
                         b'{"message":"Not Found"}'), keep_alive=False)
            return
        asyncio.ensure_future(result)

    def switch(self, upgraded: Upgraded) -> None:
        """Hand every later byte (and any already buffered) to `upgraded`."""
        self.upgraded = upgraded
        buffered = b"".join(self._body)
        self._body = []
        self._upgrade_request = None
        if buffered:
            upgraded.data_received(buffered)


def reject_upgrade(connection: HttpConnection, response: Response) -> None:
    connection._upgrade_request = None
    connection._write_now(response, keep_alive=False)


def make_factory(app: HttpApp, registry: set[Any]) -> Callable[[], HttpConnection]:
    def factory() -> HttpConnection:
        conn = HttpConnection(app, on_close=registry.discard)
        registry.add(conn)
        return conn

    return factory
