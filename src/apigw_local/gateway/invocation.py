"""What an invocation returns to the gateway: the contract between the runtime and the gateway.

The gateway defines it and the runtime implements it (`runtime.Runtime` is an `Invoker`), so
`gateway/` never imports `runtime/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class FunctionError:
    """An invocation that did not return: Lambda's errorType / errorMessage / stackTrace.

    `type` is the exception's class name for a handler exception ("ValueError"),
    "Sandbox.Timedout" when the function's Timeout ran out, "Gateway.IntegrationTimeout"
    when API Gateway's integration timeout (29 s) cut it, "Runtime.ExitError" when
    the worker process died, "Runtime.ImportModuleError" / "Runtime.HandlerNotFound"
    when the handler could not be loaded, and "Runtime.MarshalError" when the result
    was not JSON-serialisable.
    """

    type: str
    message: str
    trace: tuple[str, ...] = ()


@dataclass(frozen=True)
class Invocation:
    function: str  # logical id
    request_id: str  # the context's aws_request_id
    duration_ms: float
    payload: Any = None  # the handler's return value, JSON-decoded; None when error is set
    error: FunctionError | None = None
    logs: tuple[str, ...] = field(default=())  # the handler's log lines, for observers
    init_duration_ms: float | None = None  # the worker's init phase, on a cold start only
    max_memory_mb: int | None = None  # the worker's peak resident memory (Lambda's REPORT)

    @property
    def ok(self) -> bool:
        return self.error is None


class Invoker(Protocol):
    """Anything that runs a function with an event (the worker pool; a fake in core tests).

    It never raises for the handler's faults: they come back as `Invocation.error`.
    """

    async def invoke(
        self, function: str, event: dict[str, Any], *, request_id: str | None = None
    ) -> Invocation: ...
