"""The inspector's ears: the gateway's observer (invocations, connections opening and
closing) and a poll of the live connections' counters before each live batch."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from ..logs import lambda_block, route_status
from .model import InspectorModel


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class InspectorObserver:
    def __init__(self, model: InspectorModel, *, api_names: Callable[[str], str],
                 connections: Callable[[], Iterable[Any]]) -> None:
        """`api_names`: api id → the API's logical id; `connections`: the registry's live
        connections (each with `.id`, `.last_active_ms` and its session's counters)."""
        self.model = model
        self.api_names = api_names
        self.connections = connections
        # $connect's authorizer principal, until the connection opens (bounded: a refused
        # handshake never opens).
        self._principals: dict[str, str] = {}

    def invocation(self, record: Any) -> None:
        if record.route_key == "$connect" and record.connection_id and record.status == "ok":
            context = (getattr(record, "event", None) or {}).get("requestContext") or {}
            principal = (context.get("authorizer") or {}).get("principalId")
            if principal:
                if len(self._principals) > 1024:
                    self._principals.clear()
                self._principals[record.connection_id] = str(principal)
        self.model.invocation(
            function=record.function, route_key=record.route_key,
            api="websocket" if record.connection_id else "http",
            status=route_status(record), duration_ms=record.duration_ms, now_ms=_now_ms(),
            request_id=record.request_id, connection_id=record.connection_id,
            error_type=None if record.status == "ok" else record.status,
            error_message=getattr(record, "error_message", None) or None,
            logs=lambda_block(record), event=getattr(record, "event", None),
        )

    def connection(self, event: str, info: Any, detail: Any) -> None:
        if event == "connected":
            self.model.connection_opened(
                info.connection_id, api=self.api_names(info.api_id), stage=info.stage,
                source_ip=info.source_ip, user_agent=info.user_agent,
                connected_at=info.connected_at,
                principal=self._principals.pop(info.connection_id, None))
            self.model.connection_state(info.connection_id, "OPEN", _now_ms())
        elif event == "disconnected":
            self.model.connection_closed(info.connection_id, (detail or {}).get("code"),
                                         _now_ms())

    def poll(self) -> None:
        """Copy the live connections' counters into the model (before each live batch)."""
        for conn in self.connections():
            counters = getattr(getattr(conn, "transport", None), "counters", None)
            if counters is None:
                continue
            bytes_in, bytes_out, frames_in, frames_out = counters()
            self.model.activity(conn.id, bytes_in=bytes_in, bytes_out=bytes_out,
                                frames_in=frames_in, frames_out=frames_out,
                                last_active=conn.last_active_ms)
