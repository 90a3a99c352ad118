"""HTTP/1.1 over asyncio.Protocol with httptools: keep-alive, pipelining in order, upgrades.

One `HttpConnection` per accepted socket. Requests are answered strictly in the order they
arrived (RFC 9112 9.3.2, pipelining); a handler may answer synchronously — the Management API's
PostToConnection does, which keeps the hot path free of task creation — or with an awaitable.
A request asking for `Upgrade: websocket` is handed to the application together with this
connection, which then forwards every later byte to the upgraded protocol.

Every size a client controls is bounded before it is buffered (HTTP APIs' quotas, below): a
request over a bound is *refused*. Its answer (413, 431, 417 or 400) takes its place in the
pipeline, after the answers to the requests that came before it; the connection then reads and
drops whatever the client still sends for a short while (so the client reads the answer instead
of a reset) and closes.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

import httptools

from ..peers import OwnerCheck
from ..redact import redact

log = logging.getLogger("apigw_local.server")

# "Quotas for configuring and running an HTTP API in API Gateway",
# https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html
MAX_BODY = 10 * 1024 * 1024  # "Payload size: 10 MB"
MAX_HEAD = 10240  # "Total combined size of request line and header values: 10240 bytes"
# Bounds of our own where AWS documents none.
MAX_HEADERS = 200  # header fields per request
MAX_HEAD_RAW = 64 * 1024  # raw bytes of an unfinished head (names, separators and all)
MAX_PENDING = 64  # pipelined requests buffered before reading pauses...
MAX_PENDING_BYTES = 16 * 1024 * 1024  # ...or their bodies' bytes
MAX_UPGRADE_BUFFER = 256 * 1024  # bytes after an upgrade request, before its answer
LINGER = 5.0  # seconds a refused request's remaining bytes are read and dropped before closing
IDLE_TIMEOUT = 60.0  # seconds without a byte: an idle connection closes, a stalled request 408

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


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


# API Gateway's words where they differ from RFC 9110's reason phrase.
_MESSAGES = {413: "Request Entity Too Large", 500: "Internal Server Error"}


def error_response(status: int) -> Response:
    """API Gateway's JSON error body, `{"message":"…"}`; closes the connection."""
    body = b'{"message":"%s"}' % _MESSAGES.get(status, HTTPStatus(status).phrase).encode()
    return Response(status, [("Content-Type", "application/json")], body, close=True)


class _Refused(Exception):
    """Raised from a parser callback: the request breaks a bound; answer `response`, close."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.response = error_response(status)


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
        "_paused", "_pending_bytes", "_head_size", "_head_raw", "_in_body", "_body_size",
        "_refused", "_linger", "_eof", "_last_activity", "_idle_timer", "idle_timeout",
        "max_body", "local", "owners", "owners_on_upgrades", "_owner_known",
    )

    def __init__(self, app: HttpApp, on_close: Callable[[HttpConnection], None] | None = None,
                 max_body: int = MAX_BODY, owners: OwnerCheck | None = None,
                 owners_on_upgrades: bool = True):
        self.app = app
        self.max_body = max_body
        self.on_close = on_close
        # Peers of another local user are refused (peers.py): on every request, and on
        # upgrades unless `owners_on_upgrades` is False (the WebSocket API, public in AWS too).
        self.owners = owners
        self.owners_on_upgrades = owners_on_upgrades
        self._owner_known = False
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        # Requests waiting for the one in progress, and at most one final refusal after them.
        self.pending: deque[Request | Response] = deque()
        self.busy = False
        self.upgraded: Upgraded | None = None
        self.scheme = "http"
        self.peer: tuple[str, int] = ("127.0.0.1", 0)
        self.local_port = 0
        self.local: tuple[str, int] = ("127.0.0.1", 0)
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._upgrade_request: Request | None = None
        self._closed = False
        self._paused = False
        self._pending_bytes = 0
        self._head_size = 0  # request target + header values, as the quota counts them
        self._head_raw = 0  # raw bytes received since the current head began
        self._in_body = False
        self._body_size = 0
        self._refused = False  # a request was refused: drop every later byte, then close
        self._linger: asyncio.TimerHandle | None = None
        self._eof = False  # the client half-closed: answer what it sent, then close
        self.idle_timeout = IDLE_TIMEOUT
        self._last_activity = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

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
            self.local = (sock[0], sock[1])
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self._last_activity = asyncio.get_running_loop().time()
        self._watch_idle(self.idle_timeout)

    def data_received(self, data: bytes) -> None:
        if self.upgraded is not None:
            self.upgraded.data_received(data)
            return
        if self._refused:  # the rest of a refused request: read and dropped
            return
        self._last_activity = asyncio.get_running_loop().time()
        if self._upgrade_request is not None:  # bytes after an upgrade request, before 101
            self._body.append(data)
            self._body_size += len(data)
            if self._body_size > MAX_UPGRADE_BUFFER and self.transport and not self._paused:
                self._paused = True
                self.transport.pause_reading()
            return
        if not self._in_body:
            self._head_raw += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self._start_upgrade(data[offset:])
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _Refused):
                log.error("HTTP parser callback failed", exc_info=exc.__context__)
                self._refuse(error_response(500))
            else:
                self._refuse(exc.__context__.response)
        except httptools.HttpParserError:
            self._refuse(error_response(400))
        else:
            if not self._in_body and self._head_raw > MAX_HEAD_RAW:
                self._refuse(error_response(431))

    def eof_received(self) -> bool | None:
        if self.upgraded is not None or not (self.busy or self.pending):
            return None  # nothing owed: close
        self._eof = True
        return True  # keep the transport to write the answers still owed (see _drain)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        for timer in (self._linger, self._idle_timer):
            if timer is not None:
                timer.cancel()
        if self.upgraded is not None:
            self.upgraded.connection_lost(exc)
        if self.on_close is not None:
            self.on_close(self)

    def _watch_idle(self, delay: float) -> None:
        self._idle_timer = asyncio.get_running_loop().call_later(delay, self._idle_check)

    def _idle_check(self) -> None:
        """Bound how long a socket may be held without a byte: a keep-alive connection with
        nothing in flight closes; a request that stopped arriving midway is answered 408."""
        if self._closed or self.upgraded is not None or self._refused:
            return  # a WebSocket keeps its own deadlines; a refusal its lingering close
        quiet = asyncio.get_running_loop().time() - self._last_activity
        if self.busy or self.pending or self._upgrade_request:
            self._watch_idle(self.idle_timeout)  # the integration has its own timeout
        elif quiet < self.idle_timeout:
            self._watch_idle(self.idle_timeout - quiet)
        elif self._in_body or self._head_raw:
            self._refuse(error_response(408))
        else:
            self.close()

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
        self._head_size = 0
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._grow_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self._headers) >= MAX_HEADERS:
            raise _Refused(431)
        self._grow_head(len(value))
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def _grow_head(self, n: int) -> None:
        self._head_size += n
        if self._head_size > MAX_HEAD:
            raise _Refused(431)

    def on_headers_complete(self) -> None:
        p = self.parser
        version = p.get_http_version()
        # The request line: method, target and version with their two spaces.
        self._grow_head(len(p.get_method()) + len(version) + 7)
        self._in_body = True
        self._head_raw = 0
        length = expect = None
        for name, value in self._headers:
            lname = name.lower()
            if lname == "content-length":
                length = value
            elif lname == "expect":
                expect = value
        # Refused before reading a byte of it: a body announced over the payload quota.
        if length is not None and length.strip().isdigit() and int(length) > self.max_body:
            raise _Refused(413)
        if expect is not None and version == "1.1":
            # RFC 9110 10.1.1: 100-continue is the only expectation; others may get 417.
            if expect.strip().lower() != "100-continue":
                raise _Refused(417)
            # Interim answers must not overtake earlier requests' answers: when some are still
            # owed the 100 is left out, and the client sends its body after its own wait.
            if not (self.busy or self.pending) and self.transport is not None:
                self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.max_body:  # a chunked body growing past the quota
            raise _Refused(413)
        self._body.append(body)

    def on_message_complete(self) -> None:
        p = self.parser
        self._in_body = False
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
        self._body = []
        if p.should_upgrade():
            self._upgrade_request = request
            self._body_size = 0
            return
        self._enqueue(request)

    # --- dispatch -----------------------------------------------------------------------

    def _enqueue(self, item: Request | Response) -> None:
        if not (self.busy or self.pending):
            self._run(item)
            self._drain()
            return
        self.pending.append(item)
        if isinstance(item, Request):
            self._pending_bytes += len(item.body)
        if (len(self.pending) >= MAX_PENDING or self._pending_bytes >= MAX_PENDING_BYTES) and (
                self.transport and not self._paused):
            self._paused = True
            self.transport.pause_reading()

    def _drain(self) -> None:
        while self.pending and not self.busy and not self._closed:
            item = self.pending.popleft()
            if isinstance(item, Request):
                self._pending_bytes -= len(item.body)
            self._maybe_resume()
            self._run(item)
        if self._eof and not (self.busy or self.pending):
            self.close()

    def _run(self, item: Request | Response) -> None:
        """Answer one request (or write a refusal); an awaitable answer makes us busy."""
        if isinstance(item, Response):
            self._write_now(item, keep_alive=False)
            return
        if not self._owner_allows():
            return
        try:
            result = self.app.handle(item)
        except Exception:
            log.exception("handler failed for %s %s", item.method, redact(item.target))
            result = error_response(500)
            result.close = False
        if inspect.isawaitable(result):
            self.busy = True
            asyncio.ensure_future(self._finish(item, result))
            return
        self._write_now(result, item.keep_alive, item.method == "HEAD")

    async def _finish(self, request: Request, result: Awaitable[Response]) -> None:
        try:
            response = await result
        except Exception:
            log.exception("handler failed for %s %s", request.method,
                          redact(request.target))
            response = error_response(500)
            response.close = False
        self.busy = False
        self._write_now(response, request.keep_alive, request.method == "HEAD")
        self._drain()

    def _maybe_resume(self) -> None:
        if (self._paused and len(self.pending) < MAX_PENDING // 2
                and self._pending_bytes < MAX_PENDING_BYTES // 2 and self.transport):
            self._paused = False
            self.transport.resume_reading()

    def _refuse(self, response: Response) -> None:
        """Answer `response` after the answers still owed, then close; nothing more is parsed."""
        self._refused = True
        self._upgrade_request = None
        self._body = []
        if self.transport is not None and self._paused:  # keep reading, to drop the bytes
            self._paused = False
            self.transport.resume_reading()
        if self.transport is not None and not self._closed:
            self._linger = asyncio.get_running_loop().call_later(LINGER, self.close)
        self._enqueue(response)

    def _write_now(self, response: Response, keep_alive: bool, head_only: bool = False) -> None:
        if self.transport is None or self._closed:
            return
        keep_alive = keep_alive and not response.close
        self.transport.write(response.serialize(keep_alive, head_only))
        self._last_activity = asyncio.get_running_loop().time()
        if keep_alive:
            return
        if self._refused:
            # Lingering close: say we are done, but keep reading (and dropping) what the client
            # still sends, so it reads our answer rather than a connection reset.
            if self.transport.can_write_eof():
                self.transport.write_eof()
            return
        self.close()

    def write_raw(self, data: bytes) -> None:
        if self.transport is not None and not self._closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self._closed:
            self._closed = True
            self.transport.close()

    def close_after_eof(self) -> None:
        """Half-close (FIN after what is written), then read and drop until the peer closes or
        LINGER passes. Closing a socket with unread input sends RST instead, and the peer's
        kernel may then drop what we sent last: a WebSocket close frame with its code."""
        if self.transport is None or self._closed:
            return
        if not self.transport.can_write_eof():  # TLS: no half-close
            self.close()
            return
        self.transport.write_eof()
        self.transport.resume_reading()
        if self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(LINGER, self.close)

    @property
    def closed(self) -> bool:
        return self._closed or self.transport is None or self.transport.is_closing()

    def _owner_allows(self) -> bool:
        """Once per connection: a peer owned by another local user gets 403 and the connection
        closes (docs/security.md)."""
        if self.owners is None or self._owner_known:
            return True
        stranger = self.owners.stranger(self.peer, self.local)
        if stranger is None:
            self._owner_known = True
            return True
        log.warning("refused a connection from uid %d (another local user)", stranger)
        self._upgrade_request = None
        body = json.dumps({"message": self.owners.explain(stranger)}).encode()
        self._write_now(Response(403, [("Content-Type", "application/json")], body),
                        keep_alive=False)
        return False

    # --- upgrades -----------------------------------------------------------------------

    def _start_upgrade(self, rest: bytes) -> None:
        request = self._upgrade_request
        if request is None:  # the parser saw Upgrade but the message is not complete
            self._refuse(error_response(400))
            return
        if rest:
            self._body.append(rest)
            self._body_size += len(rest)
        if self.owners_on_upgrades and not self._owner_allows():
            return
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
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        if buffered:
            upgraded.data_received(buffered)


def reject_upgrade(connection: HttpConnection, response: Response) -> None:
    connection._upgrade_request = None
    connection._write_now(response, keep_alive=False)


def make_factory(app: HttpApp, registry: set[Any], max_body: int = MAX_BODY, *,
                 owners: OwnerCheck | None = None,
                 owners_on_upgrades: bool = True) -> Callable[[], HttpConnection]:
    def factory() -> HttpConnection:
        conn = HttpConnection(app, on_close=registry.discard, max_body=max_body, owners=owners,
                              owners_on_upgrades=owners_on_upgrades)
        registry.add(conn)
        return conn

    return factory
