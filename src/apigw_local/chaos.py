"""Chaos mode: deterministic faults, so retry and cleanup paths can be tested locally.

A `Chaos` is the user's setting (fractions, latency, seed), parsed from one spec string that the
CLI (`--chaos gone=0.2,latency=50-200 --chaos-seed 7`), the testing API (`serve(chaos=...)`) and
the pytest plugin share. A `ChaosPolicy` turns it into decisions, one independent random stream
per kind of fault, so the n-th @connections post of a run gets the same answer every time with
the same seed, and enabling drops does not change which posts answer Gone.

The faults are AWS's own answers, so the SDK reacts to them as in the cloud:
- `gone`: PostToConnection answers 410 `GoneException` — the client went away between the
  query that found it and the post (the connection is then dropped too, so state stays true);
- `throttle`: PostToConnection answers 429 `LimitExceededException` (botocore retries it);
- `latency`: each post waits a uniform time in the range first;
- `dynamodb`: a DynamoDB request answers 400 `ProvisionedThroughputExceededException`
  (botocore retries it, with backoff);
- `drop`: after a client's message, its connection is dropped without a close frame (1006);
- `timeout`: an invocation answers `Sandbox.Timedout` ("Task timed out after N seconds").

Sources: "Use @connections commands in your backend service" (API Gateway developer guide),
the PostToConnection API reference (GoneException, LimitExceededException), and DynamoDB's
"Error handling with DynamoDB" (ProvisionedThroughputExceededException, 400).

The policy is pure (no clock, no I/O); the adapters at the end apply its decisions where the
emulator offers a seam: the Management API core's fault policy, the workers' channel, the
invoker, and a botocore plugin in the workers for DynamoDB.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = ["Chaos", "ChaosError", "ChaosPolicy", "PostFault"]

_FRACTIONS = ("gone", "throttle", "dynamodb", "drop", "timeout")
KINDS = (*_FRACTIONS, "latency")


class ChaosError(ValueError):
    """A chaos spec that cannot be read; the message names the part and what is expected."""


@dataclass(frozen=True)
class Chaos:
    """What to break, and how often. Every fraction is in [0, 1]; latency is in milliseconds.

    `functions` limits `timeout` to those function logical ids (empty: every function).
    """

    gone: float = 0.0
    throttle: float = 0.0
    latency: tuple[float, float] = (0.0, 0.0)
    dynamodb: float = 0.0
    drop: float = 0.0
    timeout: float = 0.0
    functions: frozenset[str] = field(default_factory=frozenset)
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in _FRACTIONS:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ChaosError(f"chaos {name}={value!r}: expected a fraction from 0 to 1")
        low, high = self.latency
        if not 0.0 <= low <= high:
            raise ChaosError(f"chaos latency={low:g}-{high:g}: expected MIN-MAX milliseconds, "
                             f"0 <= MIN <= MAX")
        if self.gone + self.throttle > 1.0:
            raise ChaosError("chaos gone + throttle: together at most 1 (each post answers "
                             "one of them at most)")

    @property
    def active(self) -> bool:
        return any(getattr(self, n) for n in _FRACTIONS) or self.latency[1] > 0

    @classmethod
    def parse(cls, spec: str, *, seed: int | None = None) -> Chaos:
        """Read `gone=0.2,throttle=0.1,latency=50-200,dynamodb=0.05,drop=0.01,timeout=0.02,
        functions=Message+Connect,seed=7` (commas or spaces between items; `latency=100` is a
        fixed 100 ms). An explicit `seed` argument wins over one in the spec."""
        values: dict[str, object] = {}
        for item in spec.replace(",", " ").split():
            name, sep, raw = item.partition("=")
            name = name.strip().lower().replace("_", "-")
            if name == "dynamodb-throttle":
                name = "dynamodb"
            if not sep or not raw:
                raise ChaosError(f"chaos {item!r}: expected NAME=VALUE")
            if name in _FRACTIONS:
                values[name] = _fraction(name, raw)
            elif name == "latency":
                values[name] = _latency(raw)
            elif name == "functions":
                values[name] = frozenset(f for f in raw.split("+") if f)
            elif name == "seed":
                values[name] = _integer(name, raw)
            else:
                raise ChaosError(f"chaos {name!r}: unknown; expected one of "
                                 f"{', '.join((*KINDS, 'functions', 'seed'))}")
        if seed is not None:
            values["seed"] = seed
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def coerce(cls, value: Chaos | str | dict[str, object] | None) -> Chaos | None:
        """The testing API's forms: a Chaos, a spec string, or keyword values."""
        if value is None or isinstance(value, Chaos):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, dict):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ChaosError(f"chaos {unknown[0]!r}: unknown; expected one of "
                                 f"{', '.join(sorted(known))}")
            kwargs = dict(value)
            if "latency" in kwargs:
                kwargs["latency"] = _latency(str(kwargs["latency"]).replace(",", "-")
                                             .strip("()[] ").replace(" ", ""))
            if "functions" in kwargs:
                kwargs["functions"] = frozenset(kwargs["functions"])  # type: ignore[arg-type]
            return cls(**kwargs)  # type: ignore[arg-type]
        raise ChaosError(f"chaos: expected a Chaos, a spec string or a dict, got "
                         f"{type(value).__name__}")

    def with_seed(self, seed: int | None) -> Chaos:
        return self if seed is None else replace(self, seed=seed)

    def describe(self) -> str:
        """One line for the banner: what is active, in the spec's own syntax."""
        parts = [f"{n}={getattr(self, n):g}" for n in _FRACTIONS if getattr(self, n)]
        if self.latency[1]:
            low, high = self.latency
            parts.append(f"latency={low:g}-{high:g}" if low != high else f"latency={low:g}")
        if self.functions and self.timeout:
            parts.append("functions=" + "+".join(sorted(self.functions)))
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ",".join(parts) or "off"


def _fraction(name: str, raw: str) -> float:
    text = raw.strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ChaosError(f"chaos {name}={raw!r}: expected a fraction such as 0.2 or 20%") from None
    if not 0.0 <= value <= 1.0:
        raise ChaosError(f"chaos {name}={raw!r}: expected a fraction from 0 to 1")
    return value


def _latency(raw: str) -> tuple[float, float]:
    text = raw.strip().removesuffix("ms")
    low, sep, high = text.partition("-")
    try:
        bounds = (float(low), float(high if sep else low))
    except ValueError:
        raise ChaosError(f"chaos latency={raw!r}: expected milliseconds, MS or MIN-MAX "
                         f"(e.g. 50-200)") from None
    if not 0.0 <= bounds[0] <= bounds[1]:
        raise ChaosError(f"chaos latency={raw!r}: expected 0 <= MIN <= MAX")
    return bounds


def _integer(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ChaosError(f"chaos {name}={raw!r}: expected an integer") from None


@dataclass(frozen=True)
class PostFault:
    """An error a @connections post answers instead of delivering; `disconnect`: drop the
    connection as well (a Gone is then true)."""

    status: int
    error_type: str
    message: str | None = None
    disconnect: bool = False

    def body(self) -> bytes:
        """The error body API Gateway sends (the type travels in x-amzn-ErrorType)."""
        return json.dumps({"message": self.message}).encode()


THROTTLED_DYNAMODB_BODY = json.dumps({
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded. "
               "Consider increasing your provisioning level with the UpdateTable API.",
}).encode()


class ChaosPolicy:
    """Decisions for one run of the emulator. Not thread-safe: the gateway's loop owns it.

    Each fault kind draws from its own `random.Random`, seeded from (seed, kind): a run is
    reproducible given the same seed and the same order of events of that kind.
    """

    def __init__(self, chaos: Chaos) -> None:
        self.chaos = chaos
        base = chaos.seed if chaos.seed is not None else random.SystemRandom().randrange(1 << 32)
        self.seed = base
        self._streams = {kind: random.Random(f"{base}:{kind}") for kind in KINDS}
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)  # faults injected, by kind

    def _hit(self, kind: str, fraction: float) -> bool:
        if fraction <= 0.0:
            return False
        hit = self._streams[kind].random() < fraction
        if hit:
            self.counts[kind] += 1
        return hit

    def post_delay(self) -> float:
        """Seconds the next @connections post waits before it is answered."""
        low, high = self.chaos.latency
        if high <= 0:
            return 0.0
        self.counts["latency"] += 1
        return self._streams["latency"].uniform(low, high) / 1000

    def post_fault(self) -> PostFault | None:
        """The error the next PostToConnection answers, if any."""
        c = self.chaos
        if not (c.gone or c.throttle):
            return None
        # One draw decides between gone, throttled and delivered, so each keeps its share.
        draw = self._streams["gone"].random()
        if draw < c.gone:
            self.counts["gone"] += 1
            return PostFault(410, "GoneException", None, disconnect=True)
        if draw < c.gone + c.throttle:
            self.counts["throttle"] += 1
            return PostFault(429, "LimitExceededException", "Rate exceeded")
        return None

    def on_message(self) -> bool:
        """True: drop the connection this client message arrived on."""
        return self._hit("drop", self.chaos.drop)

    def on_invoke(self, function: str) -> bool:
        """True: this invocation of `function` (logical id) times out."""
        c = self.chaos
        if c.functions and function not in c.functions:
            return False
        return self._hit("timeout", c.timeout)

    def summary(self) -> str:
        injected = [f"{k} {n}" for k, n in self.counts.items() if n]
        return ", ".join(injected) or "no faults injected"


# -- worker side: DynamoDB throttling ---------------------------------------------------------
# The decision is made in the worker, just before botocore sends a DynamoDB request, so the
# SDK's own retry logic (backoff, retry quotas) sees a real 400 answer, as it would in AWS. It
# is a botocore client plugin (BOTOCORE_EXPERIMENTAL__PLUGINS names this module): only the
# DynamoDB clients a handler creates are touched, and the worker's code is not.

DYNAMODB_ENV = "APIGW_LOCAL_CHAOS_DYNAMODB"  # "FRACTION:SEED" in the workers' environment
PLUGIN = f"apigw_local_chaos={__name__}"
_streams: dict[str, random.Random] = {}  # one per worker process and seed


def dynamodb_env(chaos: Chaos, seed: int) -> dict[str, str]:
    """The variable the workers get (empty when DynamoDB chaos is off)."""
    return {DYNAMODB_ENV: f"{chaos.dynamodb}:{seed}"} if chaos.dynamodb else {}


def dynamodb_throttle_handler(fraction: float, stream: random.Random) -> Any:
    """A botocore `before-send` handler answering a `fraction` of requests with
    ProvisionedThroughputExceededException (HTTP 400), as DynamoDB does."""
    from botocore.awsrequest import AWSResponse

    class _Raw:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def stream(self, **_: Any) -> Any:
            yield self.body

    def before_send(request: Any, **_: Any) -> Any:
        if stream.random() >= fraction:
            return None
        headers = {"Content-Type": "application/x-amz-json-1.0",
                   "x-amzn-RequestId": f"chaos-{stream.randrange(1 << 30):08x}",
                   "Content-Length": str(len(THROTTLED_DYNAMODB_BODY))}
        return AWSResponse(request.url, 400, headers, _Raw(THROTTLED_DYNAMODB_BODY))

    return before_send


def initialize_client_plugin(client: Any, environ: Any = None) -> None:
    """botocore's plugin hook, called for every client a worker creates."""
    import os

    env = os.environ if environ is None else environ
    value = env.get(DYNAMODB_ENV)
    if not value or client.meta.service_model.service_name != "dynamodb":
        return
    fraction, _, seed = value.partition(":")
    # One stream per function's worker, so a run with the same seed throttles the same
    # requests of each function.
    key = f"{seed}:{env.get('AWS_LAMBDA_FUNCTION_NAME', '')}"
    stream = _streams.setdefault(key, random.Random(key))
    client.meta.events.register("before-send.dynamodb",
                                dynamodb_throttle_handler(float(fraction), stream))


# -- the emulator's side: where the decisions are applied --------------------------------------

Drop = Callable[[str], None]  # drops a connection (by id) without a close frame


class ChaosFaults:
    """The Management API core's `FaultPolicy`: PostToConnection answers Gone (dropping the
    connection, so the answer is true) or 429 as the policy decides."""

    def __init__(self, policy: ChaosPolicy, drop: Drop) -> None:
        self.policy, self.drop = policy, drop

    def fault(self, operation: str, connection_id: str) -> Any:
        if operation != "PostToConnection":
            return None
        fault = self.policy.post_fault()
        if fault is None:
            return None
        if fault.disconnect:
            self.drop(connection_id)
        from .gateway.connections import ManagementError

        return ManagementError(fault.status, fault.error_type, fault.message)


class ChaosInvoker:
    """Wraps the runtime: drops a client's connection after some of its messages (the message
    is still routed, as it had arrived) and answers some invocations with a timeout."""

    def __init__(self, invoker: Any, policy: ChaosPolicy, drop: Drop,
                 timeouts: Callable[[str], float]) -> None:
        self.invoker, self.policy, self.drop, self.timeouts = invoker, policy, drop, timeouts

    async def invoke(self, function: str, event: dict[str, Any], *,
                     request_id: str | None = None) -> Any:
        context = event.get("requestContext") or {}
        if context.get("eventType") == "MESSAGE" and self.policy.on_message():
            self.drop(context["connectionId"])
        if self.policy.on_invoke(function):
            import uuid

            from .gateway.invocation import FunctionError, Invocation

            return Invocation(function, request_id or str(uuid.uuid4()), 0.0, error=FunctionError(
                "Sandbox.Timedout", f"Task timed out after {self.timeouts(function):.2f} seconds"))
        return await self.invoker.invoke(function, event, request_id=request_id)


def delayed(policy: ChaosPolicy, answer: Callable[..., Any]) -> Callable[..., Any]:
    """The workers' Management API channel with chaos latency before each post."""
    import asyncio

    async def later(delay: float, args: tuple[Any, ...]) -> Any:
        await asyncio.sleep(delay)
        return answer(*args)

    def handle(method: str, path: str, body: bytes) -> Any:
        delay = policy.post_delay() if method == "POST" else 0.0
        if delay <= 0:
            return answer(method, path, body)
        return later(delay, (method, path, body))

    return handle
