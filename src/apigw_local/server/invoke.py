"""Calling a function from the gateway: API Gateway's integration timeout and the observers'
records (see `gateway/observer.py`; the Lambda-style log lines are an observer's, `logs.py`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from ..gateway.invocation import FunctionError, Invocation, Invoker
from ..gateway.observer import InvocationRecord, Observers
from ..model import Function

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
            fn = self.functions.get(function)
            payload = inv.payload
            self.observers.invocation(InvocationRecord(
                function=function, route_key=str(context.get("routeKey", "")),
                connection_id=context.get("connectionId"), request_id=inv.request_id,
                duration_ms=inv.duration_ms, status="ok" if inv.error is None else inv.error.type,
                logs=inv.logs, error_message=inv.error.message if inv.error else "",
                event=event, init_duration_ms=inv.init_duration_ms,
                max_memory_mb=inv.max_memory_mb, memory_size_mb=fn.memory_size if fn else 128,
                payload_status=payload.get("statusCode") if isinstance(payload, dict) else None))
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
    """`Integrations` as the gateway core's `Invoker` (observed, as every invocation is)."""

    def __init__(self, integrations: Integrations) -> None:
        self.integrations = integrations

    async def invoke(self, function: str, event: dict[str, Any], *,
                     request_id: str | None = None) -> Invocation:
        inv, _ = await self.integrations.invoke(function, event)
        return inv
