"""REQUEST Lambda authorizers on `$connect` (pure: the invocation itself is the caller's).

Follows "Controlling access to WebSocket APIs with AWS Lambda REQUEST authorizers" in the API
Gateway developer guide: when an identity source is missing from the request API Gateway answers
401 without invoking the authorizer; the authorizer returns an IAM policy — Allow lets `$connect`
run, Deny answers 403 — plus `principalId` and a `context` map, which later events of the
connection carry as `requestContext.authorizer`. An authorizer that fails answers 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from ..model import Authorizer
from .events import HandshakeRequest, handshake_headers
from .invocation import Invocation


@dataclass(frozen=True)
class Decision:
    allowed: bool
    status: int  # the handshake's answer when not allowed (401, 403, 500)
    context: dict[str, Any] | None = None  # requestContext.authorizer for later events


UNAUTHORIZED = Decision(False, 401)
FORBIDDEN = Decision(False, 403)
FAILED = Decision(False, 500)


def identity_present(authorizer: Authorizer, request: HandshakeRequest) -> bool:
    """True when every identity source has a non-empty value in the request."""
    query = dict(parse_qsl(request.query, keep_blank_values=True))
    for source in authorizer.identity_sources:
        parts = source.split(".")
        if len(parts) >= 4 and parts[0] == "route" and parts[1] == "request":
            kind, name = parts[2].lower(), ".".join(parts[3:])
            if kind == "header":
                value = request.header(name)
            elif kind == "querystring":
                value = query.get(name)
            else:
                continue
            if not value:
                return False
    return True


def request_event(
    authorizer: Authorizer,
    connect_event: Mapping[str, Any],
    request: HandshakeRequest,
    *,
    region: str,
    account_id: str,
) -> dict[str, Any]:
    """The REQUEST authorizer's event: the `$connect` event plus type, methodArn, stageVariables."""
    ctx = dict(connect_event["requestContext"])
    ctx.pop("authorizer", None)
    method_arn = (
        f"arn:aws:execute-api:{region}:{account_id}:{ctx['apiId']}/{ctx['stage']}/$connect"
    )
    # Unlike `$connect`'s event, the authorizer's input keeps the handshake's Connection and
    # Upgrade headers and a `content-length: 0` (the sample input in "Control access to WebSocket
    # APIs with AWS Lambda REQUEST authorizers"); the rest are `$connect`'s headers, trace id
    # included.
    pairs = [(k, v) for k, v in request.headers if k.lower() in ("connection", "upgrade")]
    if request.header("content-length") is None:
        pairs.append(("content-length", "0"))
    multi_connect = connect_event.get("multiValueHeaders") or {}
    if multi_connect:
        pairs.extend((k, v) for k, values in multi_connect.items() for v in values)
    else:
        pairs.extend(handshake_headers(request))
    headers: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for k, v in pairs:
        headers[k] = v
        multi.setdefault(k, []).append(v)
    event: dict[str, Any] = {
        "type": "REQUEST",
        "methodArn": method_arn,
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": connect_event.get("queryStringParameters", {}),
        "multiValueQueryStringParameters": connect_event.get(
            "multiValueQueryStringParameters", {}
        ),
        "stageVariables": {},
        "requestContext": ctx,
    }
    return event


def _effects(policy: Any) -> list[str]:
    if not isinstance(policy, Mapping):
        return []
    statements = policy.get("Statement") or []
    if isinstance(statements, Mapping):
        statements = [statements]
    effects = []
    for st in statements:
        if isinstance(st, Mapping):
            effects.append(str(st.get("Effect", "")).capitalize())
    return effects


def decide(invocation: Invocation) -> Decision:
    """Read an authorizer's answer: an explicit Deny wins, an Allow allows, anything else fails."""
    if not invocation.ok:
        # An authorizer that throws "Unauthorized" is API Gateway's documented way to get 401.
        if invocation.error and invocation.error.message == "Unauthorized":
            return UNAUTHORIZED
        return FAILED
    payload = invocation.payload
    if not isinstance(payload, Mapping) or "principalId" not in payload:
        return FAILED
    effects = _effects(payload.get("policyDocument"))
    if not effects:
        return FAILED
    if "Deny" in effects:
        return FORBIDDEN
    if "Allow" not in effects:
        return FAILED
    context: dict[str, Any] = {"principalId": payload["principalId"]}
    extra = payload.get("context") or {}
    if isinstance(extra, Mapping):
        for k, v in extra.items():
            # Context values are strings, numbers or booleans; nested objects and arrays make
            # API Gateway treat the authorizer's answer as invalid.
            if isinstance(v, Mapping | list):
                return FAILED
            context[str(k)] = v
    if "usageIdentifierKey" in payload:
        context["usageIdentifierKey"] = payload["usageIdentifierKey"]
    return Decision(True, 200, context)
