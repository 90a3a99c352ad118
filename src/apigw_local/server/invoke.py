"""Calling a function from the gateway, with one readable log line per invocation."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Mapping
from typing import Any

from ..model import Function
from ..redact import redact
from ..runtime.invocation import FunctionError, Invocation, Invoker

log = logging.getLogger("apigw_local.invocations")

# API Gateway's integration timeout: 29 s by default for WebSocket and HTTP APIs.
INTEGRATION_TIMEOUT = 29.0


class Integrations:
    """Invokes functions for the gateway; never raises, always logs."""

    def __init__(
        self,
        invoker: Invoker,
        functions: Mapping[str, Function],
        integration_timeout: float = INTEGRATION_TIMEOUT,
    ) -> None:
        self.invoker = invoker
        self.functions = functions
        self.integration_timeout = integration_timeout

    async def invoke(self, function: str, event: dict[str, Any]) -> tuple[Invocation, bool]:
        """Run `function`; the flag is True when API Gateway's integration timeout cut it."""
        start = time.perf_counter()
        fn = self.functions.get(function)
        try:
            if fn is not None and fn.timeout <= self.integration_timeout:
                # The function's own Timeout (enforced by the runtime) comes first: no timer here.
                return await self.invoker.invoke(function, event), False
            return await asyncio.wait_for(
                self.invoker.invoke(function, event), self.integration_timeout
            ), False
        except TimeoutError:
            return self._failed(function, start, "Gateway.IntegrationTimeout",
                                "Endpoint request timed out"), True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the runtime itself failed: treat as a function error
            log.debug("invoker failed", exc_info=True)
            return self._failed(function, start, "Runtime.Unknown", str(exc)), False

    @staticmethod
    def _failed(function: str, start: float, kind: str, message: str) -> Invocation:
        return Invocation(
            function=function,
            request_id="",
            duration_ms=(time.perf_counter() - start) * 1000,
            error=FunctionError(kind, message),
        )


def log_line(kind: str, route: str, inv: Invocation, status: str | int) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    detail = ""
    if inv.error is not None:
        detail = redact(f"  {inv.error.type}: {inv.error.message}")[:300]
    log.info("%-4s %-28s %-24s %8.1f ms  %s%s", kind, route, inv.function, inv.duration_ms,
             status, detail)


def management_handler(get_app: Any, *, host: str, port: int) -> Any:
    """The runtime's direct Management API path, answered by `get_app().handle` (the WebSocket
    port's HTTP application, which serves `@connections`), so both transports share one code
    path: the same request object, routing, registry calls and error answers.

    Returns `(method, path, body) → (status, headers, body)`; the headers are those the HTTP
    route would send on the wire (Content-Length and Connection included), so botocore parses
    the same response either way.
    """
    from .http11 import Request

    peer = ("127.0.0.1", 0)
    host_header = [("Host", f"{host}:{port}")]

    def answer(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [(k, v) for k, v in response.headers
                   if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        if response.status not in (204, 304) and not 100 <= response.status < 200:
            headers.append(("Content-Length", str(len(response.body))))
        headers.append(("Connection", "keep-alive"))
        body = b"" if response.status in (204, 304) else response.body
        return response.status, headers, body

    async def later(pending: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        return answer(await pending)

    def handle(method: str, path: str, body: bytes) -> Any:
        request = Request(method=method, target=path, headers=host_header, body=body,
                          keep_alive=True, http_version="1.1", peer=peer, scheme="https",
                          local_port=port)
        app = get_app()
        if app is None:  # not serving yet (or any more)
            return 503, [("Content-Type", "application/json")], b'{"message":"Unavailable"}'
        response = app.handle(request)
        if inspect.isawaitable(response):
            return later(response)
        return answer(response)

    return handle
