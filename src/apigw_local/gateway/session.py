"""One open WebSocket connection of a WebSocket API, without I/O.

In the manner of python-websockets' `Protocol`: the session is fed what arrived and the time,
and answers with what that means. `receive_data(data, now)` feeds bytes from the client;
`events_received()` hands back `Invoke` (run a route's integration with this event) and
`Closed` (the connection is over: run `$disconnect` with this status); `data_to_send()` hands
back the bytes to write (an empty `bytes` means "close the TCP connection"); `deadline()` is
the monotonic time at which `tick(now)` must be called next. It reads no clock of its own
(the wall-clock time events carry comes from an injected `epoch_ms`), never awaits and never
touches a socket: `server/websocket.py` is the pump around it.

The API Gateway rules it keeps (sources in `quotas.py` and docs/fidelity.md):

- frames over 32 KB and messages over 128 KB close with 1009, binary frames with 1003, text
  that is not UTF-8 with 1007; fragments are joined into one message;
- the idle timeout (10 minutes without traffic either way) and the maximum duration (2 hours)
  close with 1001 "Going away";
- the stage's throttling (a token bucket shared by the stage's connections) answers a message
  over the limit with a "Too Many Requests" error frame and keeps the connection open;
- a message for which no route matches (and no `$default` exists) gets the "Forbidden" frame;
- an integration that fails sends "Internal server error" (or "Endpoint request timed out"),
  and a two-way route sends the handler's body back (`invocation_done`).

And the bounds that are not API Gateway's but keep one client from hurting the others:

- at most `quotas.connection_inflight` invocations of one connection run at once; once
  `quotas.connection_queue` messages (or `connection_queue_bytes`) wait behind them, `reading`
  is False and the pump stops reading the client: its frames wait in its own socket, as
  python-websockets applies backpressure at `max_queue`, and nothing is lost. Frames already
  read keep queueing up to four times those limits; beyond that, a message gets the "Too Many
  Requests" frame;
- bytes for a client that does not read wait here while the socket's buffer is full
  (`pause_writing`), up to `quotas.client_write_buffer_bytes`; beyond that the connection is
  closed (and logged): a client that never reads cannot make the gateway hold unbounded memory.
  While writing is paused, `reading` is False and the pump stops reading the client, so pongs
  (answers to its pings) obey the same backpressure as every other frame.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from ..model import WebSocketRoute
from . import events
from .events import ConnectionInfo, aws_id
from .invocation import Invocation
from .quotas import (
    CLOSE_GOING_AWAY,
    CLOSE_INVALID_DATA,
    CLOSE_UNSUPPORTED_DATA,
    Quotas,
)
from .routing import WebSocketRouter
from .throttle import TokenBucket

log = logging.getLogger("apigw_local.gateway")

CLOSE_TIMEOUT = 2.0  # seconds to wait for the client's close frame after ours
ABNORMAL = 1006

REASONS = {
    1000: "Connection Closed Normally",
    1001: "Going away",
    1003: "Unsupported data",
    1005: "",
    1006: "Connection was closed abnormally",
    1007: "Invalid frame payload data",
    1009: "Message too big",
}

# The error frames' messages (events.error_frame builds the frame).
FORBIDDEN = "Forbidden"
INTERNAL_ERROR = "Internal server error"
TIMED_OUT = "Endpoint request timed out"
# "Clients may receive 429 Too Many Requests" ("Protect your WebSocket APIs in API Gateway").
TOO_MANY_REQUESTS = "Too Many Requests"


@dataclass(frozen=True)
class Invoke:
    """Run `function` (a logical id) with `event`, then call `Session.invocation_done`."""

    route_key: str
    function: str
    event: dict[str, Any]
    request_id: str
    route_response: bool = False


@dataclass(frozen=True)
class Closed:
    """The connection is over (once per session): `$disconnect` reports this status."""

    code: int
    reason: str


Event = Invoke | Closed


@dataclass
class _Pending:
    route: WebSocketRoute
    body: str
    size: int  # bytes of the message
    request_id: str = field(default_factory=aws_id)


class Session:
    """One connection after a successful handshake (see the module doc)."""

    def __init__(
        self,
        info: ConnectionInfo,
        router: WebSocketRouter,
        quotas: Quotas,
        now: float,
        *,
        throttle: TokenBucket | None = None,
        route_throttles: Mapping[str, TokenBucket] | None = None,
        epoch_ms: Callable[[], int] = events.now_ms,
    ) -> None:
        """`epoch_ms` gives the wall-clock time the events carry (`requestTimeEpoch`); every
        decision uses the monotonic `now` the caller passes."""
        self.info = info
        self.epoch_ms = epoch_ms
        self.router = router
        self.quotas = quotas
        self.throttle = throttle
        # Routes with RouteSettings of their own spend from their bucket, not the stage's.
        self.route_throttles = route_throttles or {}
        self.protocol = ServerProtocol(state=State.OPEN, max_size=quotas.websocket_max_size())
        self.opened_at = now
        self.last_active = now
        self._events: list[Event] = []
        self._fragments: list[bytes] | None = None
        self._inflight = 0
        self._queue: deque[_Pending] = deque()
        self._queued_bytes = 0
        self._outbox: deque[bytes] = deque()
        self._outbox_bytes = 0
        self._paused = False
        self._closing_since: float | None = None
        self._status: tuple[int, str] | None = None  # our own close (quotas, timeouts, ...)
        self._eof = False  # the TCP connection must close now (after the outbox)
        self._aborted = False  # ... without sending what is left
        self._closed = False
        # What the inspector shows: messages and their bytes, each way.
        self.messages_in = self.bytes_in = self.messages_out = self.bytes_out = 0

    @property
    def connection_id(self) -> str:
        return self.info.connection_id

    @property
    def open(self) -> bool:
        return self.protocol.state is State.OPEN and not self._eof

    @property
    def aborted(self) -> bool:
        """True when the connection must be dropped without sending anything more."""
        return self._aborted

    @property
    def reading(self) -> bool:
        """False while the client does not read what we write (stop reading it too), or while
        enough of its messages wait for their turn."""
        quotas = self.quotas
        return not self._paused and len(self._queue) < quotas.connection_queue \
            and self._queued_bytes < quotas.connection_queue_bytes

    # --- input ---------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the client."""
        protocol = self.protocol
        protocol.receive_data(data)
        frames = protocol.events_received()
        if frames:
            self.last_active = now
            for frame in frames:
                self._frame(frame)
        self._take_protocol_output()
        if protocol.state is State.CLOSING and self._closing_since is None:
            self._closing_since = now

    def _frame(self, frame: Frame) -> None:
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
            self._fail(CLOSE_UNSUPPORTED_DATA, REASONS[CLOSE_UNSUPPORTED_DATA])

    def _message(self, data: bytes) -> None:
        if self.protocol.state is not State.OPEN:
            return
        self.messages_in += 1
        self.bytes_in += len(data)
        # Cheap refusals first: a flooding client costs no JSON parsing beyond its share
        # (unless some route has a bucket of its own: then the route must be known first).
        if (self.throttle is not None and not self.route_throttles
                and not self.throttle.take(self.last_active)):
            self._error(TOO_MANY_REQUESTS, aws_id())
            return
        quotas = self.quotas
        if self._inflight >= quotas.connection_inflight and (
                len(self._queue) >= 4 * quotas.connection_queue
                or self._queued_bytes + len(data) > 4 * quotas.connection_queue_bytes):
            self._error(TOO_MANY_REQUESTS, aws_id())
            return
        try:
            body = data.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(CLOSE_INVALID_DATA, REASONS[CLOSE_INVALID_DATA])
            return
        route = self.router.select(body).route
        if route is None or route.function is None:
            self._error(FORBIDDEN, aws_id())
            return
        if self.route_throttles:
            bucket = self.route_throttles.get(route.route_key, self.throttle)
            if bucket is not None and not bucket.take(self.last_active):
                self._error(TOO_MANY_REQUESTS, aws_id())
                return
        pending = _Pending(route, body, len(data))
        if self._inflight < self.quotas.connection_inflight:
            self._start(pending)
        else:
            self._queue.append(pending)
            self._queued_bytes += len(data)

    def _start(self, pending: _Pending) -> None:
        assert pending.route.function is not None
        self._inflight += 1
        event = events.websocket_message(
            self.info, pending.route.route_key, pending.body, request_id=pending.request_id,
            message_id=aws_id(), epoch_ms=self.epoch_ms(),
        )
        self._events.append(Invoke(pending.route.route_key, pending.route.function, event,
                                   pending.request_id, pending.route.route_response))

    def invocation_done(self, invoke: Invoke, invocation: Invocation, now: float) -> None:
        """An `Invoke` finished: answer the client as API Gateway does, start the next one."""
        self._inflight -= 1
        if self.open:
            if not invocation.ok:
                assert invocation.error is not None
                timed_out = invocation.error.type == "Gateway.IntegrationTimeout"
                self._error(TIMED_OUT if timed_out else INTERNAL_ERROR, invoke.request_id)
            elif invoke.route_response:
                reply = events.route_response_body(invocation.payload)
                if reply is not None:
                    self.send_text(reply, now)
        while self._queue and self._inflight < self.quotas.connection_inflight:
            pending = self._queue.popleft()
            self._queued_bytes -= pending.size
            if self.open:
                self._start(pending)
        if not self.open:
            self._queue.clear()
            self._queued_bytes = 0

    # --- output --------------------------------------------------------------------------

    def send_text(self, text: str, now: float) -> bool:
        """Queue one text frame (a post, a route response); False if it cannot be sent."""
        if not self.open:
            return False
        data = text.encode("utf-8")
        self.protocol.send_text(data)
        self.messages_out += 1
        self.bytes_out += len(data)
        self.last_active = now
        self._take_protocol_output()
        return not self._eof

    def _error(self, message: str, request_id: str) -> None:
        self.protocol.send_text(
            events.error_frame(message, self.connection_id, request_id).encode("utf-8"))
        self._take_protocol_output()

    def _take_protocol_output(self) -> None:
        for chunk in self.protocol.data_to_send():
            if not chunk:  # SEND_EOF: the closing handshake is over on our side
                self._eof = True
                continue
            self._outbox.append(chunk)
            self._outbox_bytes += len(chunk)
        if self._paused and self._outbox_bytes > self.quotas.client_write_buffer_bytes:
            log.warning("connection %s does not read what it is sent (%d bytes waiting): "
                        "closing it", self.connection_id, self._outbox_bytes)
            self._abort(CLOSE_GOING_AWAY, REASONS[CLOSE_GOING_AWAY])

    def data_to_send(self) -> list[bytes]:
        """What to write now; a final `b""` means: close the TCP connection."""
        if self._paused and not self._eof:
            return []
        out = list(self._outbox)
        self._outbox.clear()
        self._outbox_bytes = 0
        if self._eof:
            out.append(b"")
        return out

    def pause_writing(self) -> None:
        """The socket's write buffer is full (the client does not read fast enough)."""
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False

    @property
    def buffered(self) -> int:
        """Bytes waiting here for a client that does not read."""
        return self._outbox_bytes

    # --- closing -------------------------------------------------------------------------

    def close(self, code: int, reason: str, now: float) -> None:
        """Start the closing handshake (DeleteConnection, timeouts, shutdown)."""
        if self.protocol.state is not State.OPEN:
            return
        if self._status is None:
            self._status = (code, reason or REASONS.get(code, ""))
        self.protocol.send_close(code, reason)
        self._closing_since = now
        self._take_protocol_output()

    def _fail(self, code: int, reason: str) -> None:
        if self._status is None:
            self._status = (code, reason)
        self.protocol.fail(code, reason)
        self._take_protocol_output()

    def _abort(self, code: int, reason: str) -> None:
        """Drop the connection now: nothing more is sent."""
        if self._status is None:
            self._status = (code, reason)
        self._outbox.clear()
        self._outbox_bytes = 0
        self._eof = self._aborted = True

    def connection_lost(self) -> None:
        """The socket is gone: report `Closed` once."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._queued_bytes = 0
        self._events.append(Closed(*self.status()))

    def status(self) -> tuple[int, str]:
        """The code and reason `$disconnect` reports."""
        if self._status is not None:
            return self._status
        rcvd: Close | None = self.protocol.close_rcvd
        if rcvd is not None:
            return rcvd.code, rcvd.reason or REASONS.get(rcvd.code, "")
        sent: Close | None = self.protocol.close_sent
        if sent is not None:
            return sent.code, sent.reason or REASONS.get(sent.code, "")
        return ABNORMAL, REASONS[ABNORMAL]

    # --- time ----------------------------------------------------------------------------

    def deadline(self) -> float:
        """The monotonic time at which `tick` must run next (inf: none)."""
        if self._closed:
            return math.inf
        if self._closing_since is not None:
            return self._closing_since + CLOSE_TIMEOUT
        if self.protocol.state is not State.OPEN:
            return math.inf
        when, _ = self.quotas.deadline(self.opened_at, self.last_active)
        return when

    def tick(self, now: float) -> None:
        """Apply the deadlines due at `now`."""
        if self._closed:
            return
        if self._closing_since is not None:
            if now >= self._closing_since + CLOSE_TIMEOUT:
                self._abort(*self.status())
            return
        if self.protocol.state is State.OPEN and now >= self.deadline() - 0.001:
            # Both the idle timeout and the maximum duration close with 1001 "Going away": what
            # AWS's $disconnect reports after an idle timeout (docs/fidelity.md, Q5/Q6).
            self.close(CLOSE_GOING_AWAY, REASONS[CLOSE_GOING_AWAY], now)

    def events_received(self) -> list[Event]:
        out, self._events = self._events, []
        return out
