"""Seam: what the gateway reports to observers (an inspector page, Lambda-style logs).

An `Observer` is given to `Emulator(config, observer=…)`. The gateway calls it on its event
loop, after the fact, and never waits for it: keep each call quick and never raise (an
exception is logged and ignored).

- `invocation(record)`: one function invocation ended (routes, `$connect`, `$disconnect`,
  authorizers, HTTP API routes), with its duration, status and the handler's log lines;
- `connection(event, info, detail)`: a connection's lifecycle: "connected" once `$connect`
  accepted it, "disconnected" with `{"code", "reason"}` when it ended.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .events import ConnectionInfo

log = logging.getLogger("apigw_local.gateway")


@dataclass(frozen=True)
class InvocationRecord:
    function: str  # logical id
    route_key: str  # "$connect", "$default", "sendmessage", "GET /items"…
    connection_id: str | None  # None for HTTP API routes
    request_id: str  # the handler's context.aws_request_id
    duration_ms: float
    status: str  # "ok", or the error type ("ValueError", "Sandbox.Timedout"…)
    logs: tuple[str, ...] = ()
    error_message: str = ""
    event: Any = None  # the event the function received (the inspector replays it)
    init_duration_ms: float | None = None  # Lambda's REPORT: a cold start's init phase
    max_memory_mb: int | None = None
    memory_size_mb: int = 128
    payload_status: int | None = None  # the handler's statusCode, when it returned one


class Observer(Protocol):
    def invocation(self, record: InvocationRecord) -> None: ...

    def connection(self, event: str, info: ConnectionInfo, detail: Mapping[str, Any]) -> None:
        ...


class Observers:
    """Fans out to several observers; one that raises is logged and skipped."""

    def __init__(self, observers: list[Observer] | None = None) -> None:
        self.observers = list(observers or [])

    def invocation(self, record: InvocationRecord) -> None:
        for observer in self.observers:
            try:
                observer.invocation(record)
            except Exception:
                log.exception("observer failed")

    def connection(self, event: str, info: ConnectionInfo, detail: Mapping[str, Any]) -> None:
        for observer in self.observers:
            try:
                observer.connection(event, info, detail)
            except Exception:
                log.exception("observer failed")
