"""Calling a function from the gateway: API Gateway's integration timeout, one readable log
line per invocation, and the observers' records (see `gateway/observer.py`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from ..gateway.invocation import FunctionError, Invocation, Invoker
from ..gateway.observer import InvocationRecord, Observers
from ..model import Function
from ..redact import redact

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
        observers: Observers | None = None,
    ) -> None:
        self.invoker = invoker
        self.functions = functions
        self.integration_timeout = integration_timeout
        self.observers = observers or Observers()
        self.gateway_invoker = _GatewayInvoker(self)

    async def invoke(self, function: str, event: dict[str, Any]) -> tuple[Invocation, bool]:
        """Run `function`; the flag is True when API Gateway's integration timeout cut it."""
        inv, timed_out = await self._invoke(function, event)
        if self.observers.observers:
            context = event.get("requestContext") or {}
            self.observers.invocation(InvocationRecord(
                function=function, route_key=str(context.get("routeKey", "")),
                connection_id=context.get("connectionId"), request_id=inv.request_id,
                duration_ms=inv.duration_ms, status="ok" if inv.error is None else inv.error.type,
                logs=inv.logs))
        return inv, timed_out

    async def _invoke(self, function: str, event: dict[str, Any]) -> tuple[Invocation, bool]:
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


class _GatewayInvoker:
    """`Integrations` as the gateway core's `Invoker`: one log line per invocation."""

    def __init__(self, integrations: Integrations) -> None:
        self.integrations = integrations

    async def invoke(self, function: str, event: dict[str, Any], *,
                     request_id: str | None = None) -> Invocation:
        inv, _ = await self.integrations.invoke(function, event)
        route = (event.get("requestContext") or {}).get("routeKey", "")
        log_line("AUTH" if event.get("type") == "REQUEST" else "WS", str(route), inv,
                 "ok" if inv.ok else "error")
        return inv


def log_line(kind: str, route: str, inv: Invocation, status: str | int) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    detail = ""
    if inv.error is not None:
        detail = redact(f"  {inv.error.type}: {inv.error.message}")[:300]
    log.info("%-4s %-28s %-24s %8.1f ms  %s%s", kind, route, inv.function, inv.duration_ms,
             status, detail)
