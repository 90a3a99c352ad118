"""What the inspector shows: live connections and recent invocations, kept bounded.

The gateway reports what happens (a connection opened or closed, an invocation with its log
lines) and the connections' counters are copied in before each batch (`activity`); this model
keeps the latest state and collects changes, which the live channel sends in batches
(`drain`), so a burst of thousands of frames costs nothing here and one message per flush.
State only; no I/O, no clock of its own.
"""

from __future__ import annotations

import itertools
import json
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from ..redact import redact

MAX_INVOCATIONS = 200  # recent invocations kept (older ones drop off)
MAX_LOG_LINES = 200  # log lines kept per invocation
MAX_EVENT_BYTES = 128 * 1024  # larger events are not kept (no replay): a message's quota
MAX_CLOSED = 50  # recently closed connections kept for a look back


@dataclass
class ConnectionView:
    id: str
    api: str  # the API's logical id
    stage: str
    source_ip: str
    user_agent: str | None
    principal: str | None  # the authorizer's principalId, when there is one
    connected_at: int  # epoch ms
    last_active: int  # epoch ms
    state: str = "CONNECTING"  # CONNECTING | OPEN | CLOSED
    bytes_in: int = 0
    bytes_out: int = 0
    frames_in: int = 0
    frames_out: int = 0
    close_code: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InvocationView:
    seq: int
    time: int  # epoch ms when it finished
    function: str
    route_key: str
    api: str  # "websocket" | "http"
    status: int | str  # the route's answer (HTTP status), or "error"
    duration_ms: float
    request_id: str = ""
    connection_id: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    logs: list[str] = field(default_factory=list)
    logs_truncated: int = 0  # lines left out
    event: Any = None  # the event as the function received it (None: too large to keep)
    replay_of: int | None = None

    def summary(self) -> dict[str, Any]:
        """A row of the page's table (live batches and snapshots): no logs, no event."""
        out = asdict(self)
        del out["logs"], out["event"]
        out["replayable"] = self.event is not None
        return out

    def as_json(self) -> dict[str, Any]:
        """The detail view: credentials masked (the event kept for a replay is the real one)."""
        out = asdict(self)
        out["logs"] = [redact(line) for line in self.logs]
        if self.event is not None:
            text = redact(json.dumps(self.event, default=str))
            try:
                out["event"] = json.loads(text)
            except ValueError:
                out["event"] = text
        return out


class InspectorModel:
    def __init__(self, *, max_invocations: int = MAX_INVOCATIONS,
                 max_log_lines: int = MAX_LOG_LINES,
                 max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.connections: dict[str, ConnectionView] = {}
        self.closed: OrderedDict[str, ConnectionView] = OrderedDict()
        self.invocations: deque[InvocationView] = deque(maxlen=max_invocations)
        self.max_log_lines = max_log_lines
        self.max_event_bytes = max_event_bytes
        self.notices: list[str] = []
        self._seq = itertools.count(1)
        self._dirty: set[str] = set()
        self._gone: list[str] = []
        self._new: list[InvocationView] = []
        self._pending_notices: list[str] = []

    # -- what the gateway reports --------------------------------------------------------------

    def connection_opened(self, connection_id: str, *, api: str, stage: str, source_ip: str,
                          user_agent: str | None, connected_at: int,
                          principal: str | None = None) -> None:
        self.connections[connection_id] = ConnectionView(
            connection_id, api, stage, source_ip, user_agent, principal, connected_at,
            connected_at)
        self._dirty.add(connection_id)

    def connection_state(self, connection_id: str, state: str, now_ms: int) -> None:
        view = self.connections.get(connection_id)
        if view is not None:
            view.state, view.last_active = state, now_ms
            self._dirty.add(connection_id)

    def activity(self, connection_id: str, *, bytes_in: int, bytes_out: int, frames_in: int,
                 frames_out: int, last_active: int) -> None:
        """The connection's counters as the gateway has them now (polled, so a burst of
        frames costs nothing here); a change marks the connection for the next batch."""
        view = self.connections.get(connection_id)
        if view is None:
            return
        figures = (bytes_in, bytes_out, frames_in, frames_out, last_active)
        if figures != (view.bytes_in, view.bytes_out, view.frames_in, view.frames_out,
                       view.last_active):
            (view.bytes_in, view.bytes_out, view.frames_in, view.frames_out,
             view.last_active) = figures
            self._dirty.add(connection_id)

    def connection_closed(self, connection_id: str, code: int | None, now_ms: int) -> None:
        view = self.connections.pop(connection_id, None)
        if view is None:
            return
        view.state, view.close_code, view.last_active = "CLOSED", code, now_ms
        self.closed[connection_id] = view
        while len(self.closed) > MAX_CLOSED:
            self.closed.popitem(last=False)
        self._dirty.discard(connection_id)
        self._gone.append(connection_id)
        del self._gone[:-MAX_CLOSED]  # nobody drained: the page reloads a snapshot anyway

    def invocation(self, *, function: str, route_key: str, api: str, status: int | str,
                   duration_ms: float, now_ms: int, request_id: str = "",
                   connection_id: str | None = None, error_type: str | None = None,
                   error_message: str | None = None, logs: tuple[str, ...] | list[str] = (),
                   event: Any = None, replay_of: int | None = None) -> InvocationView:
        kept = list(logs[-self.max_log_lines:])
        if event is not None and _approximate_size(event) > self.max_event_bytes:
            event = None
        view = InvocationView(next(self._seq), now_ms, function, route_key, api, status,
                              round(duration_ms, 3), request_id, connection_id, error_type,
                              error_message, kept, len(logs) - len(kept), event, replay_of)
        self.invocations.append(view)
        self._new.append(view)
        del self._new[:-len(self.invocations)]
        return view

    def notice(self, text: str) -> None:
        """A line for the page's banner (a template reload, chaos turned on)."""
        self.notices.append(text)
        del self.notices[:-20]
        self._pending_notices.append(text)

    # -- what the page reads -------------------------------------------------------------------

    def find_invocation(self, seq: int) -> InvocationView | None:
        for view in self.invocations:
            if view.seq == seq:
                return view
        return None

    def snapshot(self) -> dict[str, Any]:
        return {
            "connections": [v.as_json() for v in self.connections.values()],
            "closed": [v.as_json() for v in reversed(self.closed.values())],
            "invocations": [v.summary() for v in self.invocations],
            "notices": list(self.notices),
        }

    def forget_changes(self) -> None:
        """Nobody is watching: drop what a batch would have carried."""
        self._dirty, self._gone, self._new, self._pending_notices = set(), [], [], []

    def drain(self) -> dict[str, Any] | None:
        """The changes since the last drain, as one live message; None when nothing changed."""
        if not (self._dirty or self._gone or self._new or self._pending_notices):
            return None
        message = {
            "type": "changes",
            "connections": [self.connections[c].as_json() for c in sorted(self._dirty)
                            if c in self.connections],
            "closed": [self.closed[c].as_json() for c in self._gone if c in self.closed],
            "invocations": [v.summary() for v in self._new],
            "notices": self._pending_notices,
        }
        self._dirty, self._gone, self._new, self._pending_notices = set(), [], [], []
        return message


def _approximate_size(event: Any) -> int:
    """An event's size without serialising it: its body dominates (API Gateway's events are a
    few KB besides)."""
    body = event.get("body") if isinstance(event, dict) else None
    return (len(body) if isinstance(body, str | bytes) else 0) + 4096
