"""The WebSocket API's port: handshakes, the pump around each session, and `@connections`.

Everything API Gateway decides is decided in `gateway/`: the handshake's `$connect` sequence
(`gateway.connect`), each connection's frames, limits and deadlines (`gateway.session`), the
Management API (`gateway.management`). Here are only the asyncio parts: the HTTP requests of
this port (`http11` hands over upgrade requests for `/{stage}`), the `Pump` that moves bytes
and events between a socket and its `Session`, and the tasks that run invocations.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from websockets.datastructures import Headers
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse
from websockets.server import ServerProtocol

from ..gateway import events
from ..gateway.connect import open_connection, rejection_body
from ..gateway.connections import Connection, ConnectionRegistry
from ..gateway.events import ConnectionInfo, HandshakeRequest, aws_id, now_ms
from ..gateway.management import Management
from ..gateway.observer import Observers
from ..gateway.quotas import CLOSE_GOING_AWAY, Quotas
from ..gateway.session import CLOSE_TIMEOUT, Closed, Invoke, Session
from ..gateway.stage import Stage
from .http11 import HttpConnection, Request, Response, reject_upgrade
from .invoke import Integrations

log = logging.getLogger("apigw_local.server")

SLICE = 4096  # bytes fed to a session at a time
TURN = 0.0005  # seconds of one connection's frames per turn of the event loop...
REST = 0.0015  # ...and the pause before its next turn when it still has more


class WebSocketPort:
    """The HTTP application of the WebSocket port (see `http11.HttpApp`)."""

    def __init__(
        self,
        stages: list[Stage],
        integrations: Integrations,
        registry: ConnectionRegistry,
        management: Management,
        *,
        domain_name: str,
        region: str,
        account_id: str,
        quotas: Quotas,
        observers: Observers | None = None,
    ) -> None:
        self.stages = {s.name: s for s in stages}
        self.integrations = integrations
        self.registry = registry
        self.management = management
        self.domain_name = domain_name
        self.region = region
        self.account_id = account_id
        self.quotas = quotas
        self.observers = observers or Observers()
        self.pumps: set[Pump] = set()
        self.background: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    # --- plain HTTP: the Management API -------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.rstrip("/").lstrip("/") in self.stages and path.count("/") <= 2:
            return Response(426, [("Content-Type", "text/plain"), ("Upgrade", "websocket")],
                            b"Upgrade Required: this is a WebSocket API stage URL.\n")
        answer = self.management.handle(request.method, path, request.headers, request.body)
        return Response(answer.status, answer.headers, answer.body)

    # --- upgrades: $connect -------------------------------------------------------------

    def upgrade(self, request: Request, connection: HttpConnection) -> Awaitable[None] | None:
        stage = self.stages.get(request.path.strip("/"))
        if stage is None or request.method != "GET":
            return None
        return self._connect(request, connection, stage)

    async def _connect(self, request: Request, http: HttpConnection, stage: Stage) -> None:
        handshake = ServerProtocol(max_size=self.quotas.websocket_max_size())
        response = handshake.accept(WsRequest(request.target, Headers(request.headers)))
        if response.status_code != 101:
            reject_upgrade(http, _from_ws_response(response))
            return
        info = ConnectionInfo(
            connection_id=self.registry.new_id(),
            api_id=stage.api.api_id,
            stage=stage.name,
            domain_name=self.domain_name,
            source_ip=request.peer[0],
            user_agent=request.header("User-Agent"),
            connected_at=now_ms(),
        )
        hs = HandshakeRequest(
            path=request.path, query=request.query, headers=tuple(request.headers),
            source_ip=request.peer[0], scheme="wss" if request.scheme == "https" else "ws",
            port=request.local_port,
        )
        conn = self.registry.add(info)
        try:
            outcome = await open_connection(
                stage, info, hs, self.integrations.gateway_invoker, now=time.monotonic(),
                region=self.region, account_id=self.account_id)
        except BaseException:
            self.registry.remove(info.connection_id)
            raise
        if not outcome.accepted or http.closed:
            self.registry.remove(info.connection_id)
            reject_upgrade(http, Response(outcome.status, [("Content-Type", "application/json")],
                                          rejection_body(outcome.status), close=True))
            return
        if outcome.subprotocol is not None:
            response.headers["Sec-WebSocket-Protocol"] = outcome.subprotocol
        http.write_raw(response.serialize())
        session = Session(info, stage.router, self.quotas, time.monotonic(),
                          throttle=stage.throttle, route_throttles=stage.route_throttles)
        pump = Pump(self, stage, http, session, conn)
        conn.transport = pump
        self.registry.open(info.connection_id)
        self.pumps.add(pump)
        self.observers.connection("connected", info, {})
        http.switch(pump)
        pump.process()

    # --- $disconnect ----------------------------------------------------------------------

    def closed(self, pump: Pump, code: int, reason: str) -> None:
        """A pump's socket is gone: forget it and run `$disconnect` once."""
        self.pumps.discard(pump)
        info = pump.session.info
        self.registry.remove(info.connection_id, code, reason)
        self.observers.connection("disconnected", info, {"code": code, "reason": reason})
        route = pump.stage.disconnect_route
        if route is None or route.function is None:
            return
        event = events.websocket_disconnect(info, status_code=code, reason=reason,
                                            request_id=aws_id(), epoch_ms=now_ms())
        self.spawn(self._disconnect(route.function, event))

    async def _disconnect(self, function: str, event: dict[str, Any]) -> None:
        await self.integrations.invoke(function, event)

    async def shutdown(self) -> None:
        """Close every connection with 1001 and wait (briefly) for their `$disconnect`s."""
        for pump in list(self.pumps):
            pump.close(CLOSE_GOING_AWAY, "Going away")
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while self.pumps and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for pump in list(self.pumps):
            pump.abort()
        if self.background:
            await asyncio.wait(list(self.background), timeout=5.0)


class Pump:
    """Moves bytes and events between one socket and its `Session` (also the registry's
    `Transport` for that connection: posts arrive through `send_text`)."""

    __slots__ = ("port", "stage", "http", "session", "conn", "_timer", "_timer_at",
                 "_reading", "_done", "_inbox", "_feeding", "_lingering")

    def __init__(self, port: WebSocketPort, stage: Stage, http: HttpConnection,
                 session: Session, conn: Connection) -> None:
        self.port = port
        self.stage = stage
        self.http = http
        self.session = session
        self.conn = conn  # the registry's record (GetConnection's lastActiveAt)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._reading = True
        self._done = False
        self._lingering = False  # closed on our side: read and drop until the client closes
        self._inbox = bytearray()  # read, not yet fed to the session (one read at most)
        self._feeding = False

    # --- from the socket (http11.Upgraded) ------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._lingering:  # failed and half-closed: read only to drop, never buffered
            return
        self._inbox += data
        if not self._feeding:
            self._feed()

    def _feed(self) -> None:
        """Feed the session for at most TURN seconds, then let the other connections run.

        One read can hold thousands of small frames (a ping flood: 2 000 pings in 256 KB); fed
        at once they would hold the event loop for tens of milliseconds and every other client
        would wait. Fed slice by slice within a time budget, with a REST between turns, a
        flooding client gets at most a quarter of the gateway's time, and reading it pauses
        until what it sent has been handled.
        """
        self._feeding = False
        session, inbox = self.session, self._inbox
        before = session.last_active
        started = time.perf_counter()
        while inbox and not self._done:
            chunk = bytes(inbox[:SLICE])
            del inbox[:SLICE]
            session.receive_data(chunk, time.monotonic())
            if time.perf_counter() - started > TURN:
                break
        if session.last_active != before:  # at least one frame came in
            self.conn.touch()
        if inbox and not self._done:
            self._feeding = True
            asyncio.get_running_loop().call_later(REST, self._feed)
        self.process()

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.connection_lost()
        self.process()

    def pause_writing(self) -> None:
        self.session.pause_writing()
        self.process()

    def resume_writing(self) -> None:
        self.session.resume_writing()
        self.process()

    # --- from the Management API (connections.Transport) ----------------------------------

    def send_text(self, data: str) -> bool:
        ok = self.session.send_text(data, time.monotonic())
        self.process()
        return ok

    def close(self, code: int, reason: str) -> None:
        self.session.close(code, reason, time.monotonic())
        self.process()

    def counters(self) -> tuple[int, int, int, int]:
        """(bytes in, bytes out, messages in, messages out), for the inspector."""
        s = self.session
        return s.bytes_in, s.bytes_out, s.messages_in, s.messages_out

    def abort(self) -> None:
        transport = self.http.transport
        if transport is not None:
            transport.abort()

    # --- the pump -------------------------------------------------------------------------

    def process(self) -> None:
        """Write what the session has to send, act on its events, follow its deadline."""
        session = self.session
        transport = self.http.transport
        if transport is not None and not self._done:
            for chunk in session.data_to_send():
                if chunk:
                    transport.write(chunk)
                elif session.aborted:
                    transport.abort()
                else:
                    self._lingering = True
                    self.http.close_after_eof()
            reading = session.reading and not self._inbox
            if reading != self._reading and not transport.is_closing() and not self._lingering:
                self._reading = reading
                if reading:
                    transport.resume_reading()
                else:
                    transport.pause_reading()
        for event in session.events_received():
            if isinstance(event, Invoke):
                self.port.spawn(self._invoke(event))
            elif isinstance(event, Closed):
                self._done = True
                if self._timer is not None:
                    self._timer.cancel()
                self.port.closed(self, event.code, event.reason)
        if not self._done:
            self._follow_deadline()

    async def _invoke(self, invoke: Invoke) -> None:
        inv = await self.port.integrations.gateway_invoker.invoke(invoke.function, invoke.event)
        self.session.invocation_done(invoke, inv, time.monotonic())
        self.process()

    def _follow_deadline(self) -> None:
        when = self.session.deadline()
        if self._timer is not None:
            if self._timer_at <= when:
                return  # fires first; `_tick` re-arms for the later deadline
            self._timer.cancel()
        if when == float("inf"):
            self._timer = None
            return
        self._timer_at = when
        delay = max(0.0, when - time.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.session.tick(time.monotonic())
        self.process()


def _from_ws_response(response: WsResponse) -> Response:
    headers = [(k, v) for k, v in response.headers.raw_items()]
    return Response(response.status_code, headers, response.body or b"", close=True)
