"""The WebSocket API and its Management API, on one port (plain and TLS).

The HTTP layer (`http11`) hands over upgrade requests for `/{stage}`; the handshake is checked
by websockets' sans-I/O `ServerProtocol`, `$connect` (and its authorizer) decides, and the
connection then runs on a fresh sans-I/O protocol whose frame and message limits are API
Gateway's quotas. Every frame is seen here, so binary frames close with 1003 and oversize frames
or messages with 1009, as API Gateway does. Management API requests on
`/{stage}/@connections/{id}` act on the shared `ConnectionRegistry`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any
from urllib.parse import unquote

from websockets.datastructures import Headers
from websockets.frames import Close, Opcode
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol

from .. import authorizers, events
from ..connections import Connection, ConnectionRegistry, ManagementError
from ..events import ConnectionInfo, HandshakeRequest, aws_id, now_ms
from ..model import WebSocketApi
from ..quotas import (
    CLOSE_GOING_AWAY,
    CLOSE_INVALID_DATA,
    CLOSE_UNSUPPORTED_DATA,
    Quotas,
)
from ..routing import CONNECT, DISCONNECT, WebSocketRouter
from .http11 import HttpConnection, Request, Response, json_response, reject_upgrade
from .invoke import Integrations, log_line

log = logging.getLogger("apigw_local.server")

CLOSE_TIMEOUT = 2.0  # seconds to wait for the client's close frame after ours

_REASONS = {
    1000: "Connection Closed Normally",
    1001: "Going away",
    1003: "Unsupported data",
    1005: "",
    1006: "Connection was closed abnormally",
    1007: "Invalid frame payload data",
    1009: "Message too big",
}


class ApiService:
    """One WebSocket API at its stage: router, lifecycle routes, event context."""

    def __init__(self, api: WebSocketApi, stage: str) -> None:
        self.api = api
        self.stage = stage
        self.router = WebSocketRouter(api)
        self.connect_route = self.router.lifecycle(CONNECT)
        self.disconnect_route = self.router.lifecycle(DISCONNECT)


class WebSocketGateway:
    """The HTTP application of the WebSocket port (see `http11.HttpApp`)."""

    def __init__(
        self,
        services: list[ApiService],
        integrations: Integrations,
        registry: ConnectionRegistry,
        *,
        domain_name: str,
        region: str,
        account_id: str,
        quotas: Quotas,
    ) -> None:
        self.services = {s.stage: s for s in services}
        self.integrations = integrations
        self.registry = registry
        self.domain_name = domain_name
        self.region = region
        self.account_id = account_id
        self.quotas = quotas
        self.sessions: set[WebSocketSession] = set()
        self.background: set[asyncio.Task[Any]] = set()
        self.extra_routes: dict[str, Response] = {}

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    # --- plain HTTP: the Management API -------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path in self.extra_routes:
            return self.extra_routes[request.path]
        parts = request.path.split("/")
        # ['', stage, '@connections', id]
        if len(parts) == 4 and unquote(parts[2]) == "@connections":
            service = self.services.get(unquote(parts[1]))
            if service is None:
                return _mgmt_error(ManagementError(403, "ForbiddenException", "Forbidden"))
            return self._management(request, service, unquote(parts[3]))
        if len(parts) == 2 and parts[1] in self.services or (
            len(parts) == 3 and parts[2] == "" and parts[1] in self.services
        ):
            return Response(426, [("Content-Type", "text/plain"), ("Upgrade", "websocket")],
                            b"Upgrade Required: this is a WebSocket API stage URL.\n")
        return _mgmt_error(ManagementError(403, "ForbiddenException", "Forbidden"))

    def _management(self, request: Request, service: ApiService, connection_id: str) -> Response:
        try:
            conn = self.registry.get(connection_id)
            if conn is not None and conn.info.api_id != service.api.api_id:
                raise ManagementError(410, "GoneException")
            if request.method == "POST":
                self.registry.post(connection_id, request.body)
                return Response(200, [("Content-Type", "application/json"),
                                      ("x-amzn-RequestId", aws_id())])
            if request.method == "GET":
                body = json.dumps(self.registry.describe(connection_id)).encode()
                return json_response(200, body, [("x-amzn-RequestId", aws_id())])
            if request.method == "DELETE":
                self.registry.delete(connection_id)
                return Response(204, [("x-amzn-RequestId", aws_id())])
            raise ManagementError(403, "ForbiddenException", "Forbidden")
        except ManagementError as err:
            return _mgmt_error(err)

    # --- upgrades: $connect -------------------------------------------------------------

    def upgrade(self, request: Request, connection: HttpConnection) -> Awaitable[None] | None:
        stage = request.path.strip("/")
        service = self.services.get(stage)
        if service is None or request.method != "GET":
            return None
        return self._connect(request, connection, service)

    async def _connect(self, request: Request, http: HttpConnection, service: ApiService) -> None:
        ws_request = WsRequest(request.target, Headers(request.headers))
        handshake = ServerProtocol(max_size=self.quotas.websocket_max_size())
        response = handshake.accept(ws_request)
        if response.status_code != 101:
            reject_upgrade(http, _from_ws_response(response))
            return
        user_agent = request.header("User-Agent")
        info = ConnectionInfo(
            connection_id=self.registry.new_id(),
            api_id=service.api.api_id,
            stage=service.stage,
            domain_name=self.domain_name,
            source_ip=request.peer[0],
            user_agent=user_agent,
            connected_at=now_ms(),
        )
        hs = HandshakeRequest(
            path=request.path, query=request.query, headers=tuple(request.headers),
            source_ip=request.peer[0], scheme="wss" if request.scheme == "https" else "ws",
            port=request.local_port,
        )
        conn = self.registry.add(info)
        try:
            status, answer_headers = await self._run_connect(service, info, hs)
        except BaseException:
            self.registry.remove(info.connection_id)
            raise
        if not 200 <= status < 300 or http.closed:
            self.registry.remove(info.connection_id)
            reject_upgrade(http, _status_response(status))
            return
        # API Gateway completes the handshake with a subprotocol only when $connect's
        # response carries Sec-WebSocket-Protocol ("Working with subprotocols" in the guide).
        for k, v in answer_headers.items():
            if k.lower() == "sec-websocket-protocol":
                response.headers["Sec-WebSocket-Protocol"] = v
        http.write_raw(response.serialize())
        protocol = ServerProtocol(state=WsState.OPEN, max_size=self.quotas.websocket_max_size())
        session = WebSocketSession(self, service, http, conn, protocol)
        conn.transport = session
        self.registry.open(info.connection_id)
        self.sessions.add(session)
        http.switch(session)
        session.arm_timer()

    async def _run_connect(
        self, service: ApiService, info: ConnectionInfo, hs: HandshakeRequest
    ) -> tuple[int, Mapping[str, str]]:
        route = service.connect_route
        if route is None:
            return 200, {}
        epoch = now_ms()
        request_id = aws_id()
        event = events.websocket_connect(info, hs, request_id=request_id, epoch_ms=epoch)
        authorizer = route.authorizer
        if authorizer is not None:
            if not authorizers.identity_present(authorizer, hs):
                return 401, {}
            auth_event = authorizers.request_event(
                authorizer, event, hs, region=self.region, account_id=self.account_id
            )
            inv, _ = await self.integrations.invoke(authorizer.function, auth_event)
            decision = authorizers.decide(inv)
            log_line("AUTH", "$connect", inv, decision.status)
            if not decision.allowed:
                return decision.status, {}
            info.authorizer = decision.context
            event["requestContext"]["authorizer"] = dict(decision.context or {})
        if route.function is None:
            return 200, {}
        inv, _ = await self.integrations.invoke(route.function, event)
        if not inv.ok:
            log_line("WS", "$connect", inv, 502)
            # A failing $connect integration refuses the handshake with 502 Bad Gateway.
            return 502, {}
        answer = events.connect_answer(inv.payload)
        log_line("WS", "$connect", inv, answer.status)
        return answer.status, answer.headers

    # --- messages and $disconnect -------------------------------------------------------

    async def run_message(self, session: WebSocketSession, route_key: str, function: str | None,
                          route_response: bool, body: str) -> None:
        conn = session.conn
        request_id = aws_id()
        if function is None:
            session.send_text(events.error_frame("Forbidden", conn.id, request_id))
            return
        event = events.websocket_message(
            conn.info, route_key, body, request_id=request_id, message_id=aws_id(),
            epoch_ms=now_ms(),
        )
        inv, timed_out = await self.integrations.invoke(function, event)
        if not inv.ok:
            log_line("WS", route_key, inv, "error")
            message = "Endpoint request timed out" if timed_out else "Internal server error"
            session.send_text(events.error_frame(message, conn.id, request_id))
            return
        log_line("WS", route_key, inv, "ok")
        if route_response:
            reply = events.route_response_body(inv.payload)
            if reply is not None:
                session.send_text(reply)

    def closed(self, session: WebSocketSession, code: int, reason: str) -> None:
        """A session's socket is gone: forget it and run `$disconnect` once."""
        self.sessions.discard(session)
        self.registry.remove(session.conn.id, code, reason)
        route = session.service.disconnect_route
        if route is None or route.function is None:
            return
        event = events.websocket_disconnect(
            session.conn.info, status_code=code, reason=reason, request_id=aws_id(),
            epoch_ms=now_ms(),
        )
        self.spawn(self._run_disconnect(route.function, event))

    async def _run_disconnect(self, function: str, event: dict[str, Any]) -> None:
        inv, _ = await self.integrations.invoke(function, event)
        log_line("WS", "$disconnect", inv, "ok" if inv.ok else "error")

    async def shutdown(self) -> None:
        """Close every connection with 1001 and wait (briefly) for their `$disconnect`s."""
        for session in list(self.sessions):
            session.close(CLOSE_GOING_AWAY, "Going away")
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for session in list(self.sessions):
            session.abort()
        if self.background:
            await asyncio.wait(list(self.background), timeout=5.0)


class WebSocketSession:
    """One open WebSocket connection: frames in, frames out, quotas, timers."""

    __slots__ = ("gateway", "service", "http", "conn", "protocol", "_fragments", "_timer",
                 "_close_timer", "_done", "_paused", "_reported")

    def __init__(self, gateway: WebSocketGateway, service: ApiService, http: HttpConnection,
                 conn: Connection, protocol: ServerProtocol) -> None:
        self.gateway = gateway
        self.service = service
        self.http = http
        self.conn = conn
        self.protocol = protocol
        self._fragments: list[bytes] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._done = False
        self._paused = False
        self._reported: tuple[int, str] | None = None

    # --- socket events ------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        protocol.receive_data(data)
        frames = protocol.events_received()
        if frames:
            self.conn.touch()
            for frame in frames:
                self._frame(frame)
        self._flush()

    def _frame(self, frame: Any) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT:
            if frame.fin:
                self._message(frame.data)
            else:
                self._fragments = [frame.data]
        elif opcode is Opcode.CONT:
            if self._fragments is None:
                return  # websockets already failed the connection (protocol error)
            self._fragments.append(frame.data)
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), None
                self._message(data)
        elif opcode is Opcode.BINARY:
            # "API Gateway doesn't support binary frames from clients": close with 1003.
            self._fail(CLOSE_UNSUPPORTED_DATA, "Binary frames are not supported")

    def _message(self, data: bytes) -> None:
        if self.protocol.state is not WsState.OPEN:
            return
        try:
            body = data.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(CLOSE_INVALID_DATA, "Invalid UTF-8")
            return
        selection = self.service.router.select(body)
        route = selection.route
        self.gateway.spawn(self.gateway.run_message(
            self,
            route.route_key if route else "$default",
            route.function if route else None,
            route.route_response if route else False,
            body,
        ))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._done:
            return
        self._done = True
        for t in (self._timer, self._close_timer):
            if t is not None:
                t.cancel()
        self.gateway.closed(self, *self._disconnect_status())

    def _disconnect_status(self) -> tuple[int, str]:
        if self.conn.close_code is not None:  # Management API DeleteConnection
            return self.conn.close_code, self.conn.close_reason
        if self._reported is not None:  # our own close: quotas, timeouts, shutdown
            return self._reported
        rcvd: Close | None = self.protocol.close_rcvd
        if rcvd is not None:
            return rcvd.code, rcvd.reason or _REASONS.get(rcvd.code, "")
        sent: Close | None = self.protocol.close_sent
        if sent is not None:
            return sent.code, sent.reason or _REASONS.get(sent.code, "")
        return 1006, _REASONS[1006]

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False

    # --- writing ------------------------------------------------------------------------

    def _flush(self) -> None:
        transport = self.http.transport
        if transport is None:
            return
        for chunk in self.protocol.data_to_send():
            if chunk:
                transport.write(chunk)
            else:  # SEND_EOF: the closing handshake is over on our side
                transport.close()
                return
        if self.protocol.state is WsState.CLOSING and self._close_timer is None:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(CLOSE_TIMEOUT, self.abort)

    def send_text(self, data: str) -> None:
        """Send one text frame (the registry's Transport protocol)."""
        if self.protocol.state is not WsState.OPEN:
            return
        transport = self.http.transport
        if transport is None:
            return
        if transport.get_write_buffer_size() > self.gateway.quotas.client_write_buffer_bytes:
            # A client that does not read: drop it rather than buffer without bound.
            log.warning("connection %s is not reading; closing it", self.conn.id)
            self._reported = (CLOSE_GOING_AWAY, "Going away")
            self.abort()
            return
        self.protocol.send_text(data.encode("utf-8"))
        self._flush()

    def close(self, code: int, reason: str) -> None:
        if self.protocol.state is not WsState.OPEN:
            return
        if self._reported is None and self.conn.close_code is None:
            self._reported = (code, reason or _REASONS.get(code, ""))
        self.protocol.send_close(code, reason)
        self._flush()

    def _fail(self, code: int, reason: str) -> None:
        if self._reported is None:
            self._reported = (code, reason)
        self.protocol.fail(code, reason)
        self._flush()

    def abort(self) -> None:
        transport = self.http.transport
        if transport is not None:
            transport.abort()

    # --- idle and maximum duration ------------------------------------------------------

    def arm_timer(self) -> None:
        quotas = self.gateway.quotas
        when, _ = quotas.deadline(self.conn.opened_monotonic, self.conn.last_active_monotonic)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + max(0.0, when - time.monotonic()), self._check)

    def _check(self) -> None:
        self._timer = None
        if self._done:
            return
        quotas = self.gateway.quotas
        when, _why = quotas.deadline(self.conn.opened_monotonic, self.conn.last_active_monotonic)
        if time.monotonic() >= when - 0.001:
            # Both the idle timeout and the maximum duration close with 1001 "Going away": what
            # AWS's $disconnect reports after an idle timeout (docs/fidelity.md, Q5/Q6).
            self.close(CLOSE_GOING_AWAY, "Going away")
            return
        self.arm_timer()


def _mgmt_error(err: ManagementError) -> Response:
    body: dict[str, Any] = {}
    if err.message is not None:
        body["message"] = err.message
    return Response(
        err.status,
        [("Content-Type", "application/json"), ("x-amzn-ErrorType", err.error_type),
         ("x-amzn-RequestId", aws_id())],
        json.dumps(body).encode(),
    )


def _from_ws_response(response: WsResponse) -> Response:
    headers = [(k, v) for k, v in response.headers.raw_items()]
    return Response(response.status_code, headers, response.body or b"", close=True)


def _status_response(status: int) -> Response:
    if status == 401:
        body = b'{"message":"Unauthorized"}'
    elif status == 403:
        body = b'{"message":"Forbidden"}'
    elif status >= 500:
        body = b'{"message":"Internal server error"}'
    else:
        body = b""
    return Response(status, [("Content-Type", "application/json")], body, close=True)
