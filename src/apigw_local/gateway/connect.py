"""Opening a connection: identity sources → authorizer → `$connect`, over an injected invoker.

Follows "Control access to WebSocket APIs with Lambda REQUEST authorizers" and "Working with
$connect" in the API Gateway developer guide:

- a `$connect` request over the stage's throttling limit is refused with 429;
- a REQUEST authorizer whose identity sources are missing from the request refuses the
  handshake with 401 without being invoked; its Deny answers 403, its failure 500 (or 401
  when it raises "Unauthorized"); an Allow's `principalId` and `context` become
  `requestContext.authorizer` of every later event of the connection;
- `$connect`'s integration accepts with a 2xx `statusCode` (or no statusCode at all), refuses
  with its own status otherwise, and a failing integration refuses with 502; no `$connect`
  route, or one without an integration, accepts;
- the answer's `Sec-WebSocket-Protocol` header completes the handshake with that subprotocol
  ("Working with subprotocols").

`open_connection` awaits only the `Invoker` it is given: no sockets, no event loop of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import authorizers, events
from .events import ConnectionInfo, HandshakeRequest, aws_id, now_ms
from .invocation import Invoker
from .routing import CONNECT
from .stage import Stage


@dataclass
class ConnectOutcome:
    status: int  # 2xx: accepted; else the handshake's HTTP status
    headers: dict[str, str] = field(default_factory=dict)  # $connect's answer headers

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def subprotocol(self) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == "sec-websocket-protocol":
                return v
        return None


async def open_connection(
    stage: Stage,
    info: ConnectionInfo,
    request: HandshakeRequest,
    invoker: Invoker,
    *,
    now: float,
    region: str,
    account_id: str,
) -> ConnectOutcome:
    """Decide whether `request` may connect; sets `info.authorizer` when an authorizer allowed."""
    bucket = stage.bucket(CONNECT)
    if bucket is not None and not bucket.take(now):
        return ConnectOutcome(429)
    route = stage.connect_route
    if route is None:
        return ConnectOutcome(200)
    event = events.websocket_connect(info, request, request_id=aws_id(), epoch_ms=now_ms())
    authorizer = route.authorizer
    if authorizer is not None:
        if not authorizers.identity_present(authorizer, request):
            return ConnectOutcome(401)
        auth_event = authorizers.request_event(
            authorizer, event, request, region=region, account_id=account_id)
        decision = authorizers.decide(await invoker.invoke(authorizer.function, auth_event))
        if not decision.allowed:
            return ConnectOutcome(decision.status)
        info.authorizer = decision.context
        event["requestContext"]["authorizer"] = dict(decision.context or {})
    if route.function is None:
        return ConnectOutcome(200)
    invocation = await invoker.invoke(route.function, event)
    if not invocation.ok:
        # A failing $connect integration refuses the handshake with 502 Bad Gateway.
        return ConnectOutcome(502)
    answer = events.connect_answer(invocation.payload)
    return ConnectOutcome(answer.status, dict(answer.headers))


def rejection_body(status: int) -> bytes:
    """The JSON body API Gateway sends with a refused handshake."""
    if status == 401:
        return b'{"message":"Unauthorized"}'
    if status == 403:
        return b'{"message":"Forbidden"}'
    if status == 429:
        return b'{"message":"Too Many Requests"}'
    if status >= 500:
        return b'{"message":"Internal server error"}'
    return b""
