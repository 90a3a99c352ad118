"""The Management API (`@connections`) as a function: request in, answer out, no I/O.

`Management.handle(method, path, headers, body)` answers PostToConnection, GetConnection and
DeleteConnection on `/{stage}/@connections/{connectionId}` over the `ConnectionRegistry`, with
the status, `x-amzn-ErrorType` and JSON body every AWS SDK maps to its typed exceptions
(botocore's `apigatewaymanagementapi` model). The HTTP adapter (`server/websocket.py`) and the
workers' direct channel (`runtime/channel.py`) both call it: one code path, one hop.

Signatures. AWS refuses a request without a SigV4 `Authorization` header before looking at
it: 403 with `x-amzn-ErrorType: MissingAuthenticationTokenException` and
`{"message":"Missing Authentication Token"}` (the API Gateway knowledge-center article
"How do I troubleshoot 403 Missing Authentication Token errors", docs/fidelity.md). The
emulator does the same; it checks the header's SigV4 shape and does not verify the signature:
the only keys it knows are public or the developer's own, and any other key id must pass on
its shape for every SDK to work, so verifying would authenticate nobody (docs/security.md;
the caller is authenticated by its socket's owner instead, peers.py). The workers' direct
channel calls with `signed=True`: it is a socket the runtime handed to its own workers, which
nobody else holds, and botocore answers there before it signs.

Seam for fault injection: a `FaultPolicy` is asked before each operation and may answer it
instead (a GoneException now and then, a LimitExceededException...), e.g. for a chaos mode.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote

from .connections import ConnectionRegistry, ManagementError
from .events import aws_id

Headers = Sequence[tuple[str, str]]
log = logging.getLogger("apigw_local.gateway")

_JSON = ("Content-Type", "application/json")
# "AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…" (SigV4 "Authorization header").
_SIGV4 = re.compile(r"^AWS4-HMAC-SHA256\s+Credential=[^,\s]+,\s*SignedHeaders=[^,\s]+,"
                    r"\s*Signature=[0-9a-f]{64}\s*$")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class FaultPolicy(Protocol):
    """Asked before every Management API operation on a connection.

    `operation` is "PostToConnection", "GetConnection" or "DeleteConnection". Return a
    `ManagementError` to answer the call with it instead (the operation does not happen), or
    None to let it through. Called on the gateway's event loop: keep it quick. One that raises
    is logged and ignored (the call goes through).
    """

    def fault(self, operation: str, connection_id: str) -> ManagementError | None: ...


_OPERATIONS = {"POST": "PostToConnection", "GET": "GetConnection",
               "DELETE": "DeleteConnection"}


class Management:
    """The `@connections` API of the WebSocket APIs served on one port."""

    def __init__(self, registry: ConnectionRegistry, stages: Mapping[str, str],
                 fault_policy: FaultPolicy | None = None) -> None:
        """`stages`: stage name → the api id served there."""
        self.registry = registry
        self.stages = dict(stages)
        self.fault_policy = fault_policy

    def _fault(self, operation: str, connection_id: str) -> ManagementError | None:
        """The policy's answer; a policy that raises is logged and ignored, as an observer
        is: an exception here would reach the worker's channel and close it."""
        if self.fault_policy is None:
            return None
        try:
            return self.fault_policy.fault(operation, connection_id)
        except Exception:
            log.exception("fault policy failed on %s; the call goes through", operation)
            return None

    def handle(self, method: str, path: str, headers: Headers, body: bytes, *,
               signed: bool = False) -> Answer:
        """Answer one request (`path` without the query string)."""
        parts = path.split("/")
        # ['', stage, '@connections', id]
        if len(parts) != 4 or unquote(parts[2]) != "@connections":
            return error(ManagementError(403, "ForbiddenException", "Forbidden"))
        if not signed:
            refused = _unsigned(headers)
            if refused is not None:
                return error(refused)
        api_id = self.stages.get(unquote(parts[1]))
        operation = _OPERATIONS.get(method)
        if api_id is None or operation is None:
            return error(ManagementError(403, "ForbiddenException", "Forbidden"))
        connection_id = unquote(parts[3])
        try:
            fault = self._fault(operation, connection_id)
            if fault is not None:
                raise fault
            conn = self.registry.get(connection_id)
            if conn is not None and conn.info.api_id != api_id:
                raise ManagementError(410, "GoneException")  # another API's connection
            if method == "POST":
                self.registry.post(connection_id, body)
                return Answer(200, [_JSON, ("x-amzn-RequestId", aws_id())])
            if method == "GET":
                described = json.dumps(self.registry.describe(connection_id)).encode()
                return Answer(200, [_JSON, ("x-amzn-RequestId", aws_id())], described)
            self.registry.delete(connection_id)
            return Answer(204, [("x-amzn-RequestId", aws_id())])
        except ManagementError as err:
            return error(err)


def error(err: ManagementError) -> Answer:
    body: dict[str, str] = {}
    if err.message is not None:
        body["message"] = err.message
    return Answer(err.status, [_JSON, ("x-amzn-ErrorType", err.error_type),
                               ("x-amzn-RequestId", aws_id())], json.dumps(body).encode())


def _unsigned(headers: Headers) -> ManagementError | None:
    """Why AWS would refuse the request's signature before reading it; None: it is signed."""
    for name, value in headers:
        if name.lower() == "authorization":
            if _SIGV4.match(value):
                return None
            return ManagementError(403, "IncompleteSignatureException",
                                   "Authorization header is not a valid SigV4 signature")
    return ManagementError(403, "MissingAuthenticationTokenException",
                           "Missing Authentication Token")
