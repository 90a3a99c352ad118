"""The events API Gateway sends to Lambda, and how it reads Lambda's answers (pure).

WebSocket events follow "Setting up WebSocket API integration requests" and the sample events of
the Lambda developer guide ("Using Lambda with API Gateway WebSocket APIs"); HTTP API events are
payload format 2.0 ("Working with AWS Lambda proxy integrations for HTTP APIs"). Every builder
returns a fresh dict ready for `json.dumps`; nothing here touches a socket.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

_ALPHABET = string.ascii_letters + string.digits


def aws_id() -> str:
    """A 16-character id shaped like API Gateway's connection, request and message ids.

    AWS's ids are 11 random bytes in base64 (15 characters and one '=' of padding); we keep the
    shape but only letters and digits, so an id never needs escaping in an @connections URL.
    """
    raw = base64.b64encode(os.urandom(11)).decode()
    return "".join(c if c.isalnum() else secrets.choice(_ALPHABET) for c in raw[:15]) + "="


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def request_time(epoch_ms: int) -> str:
    """`25/Nov/2026:18:30:00 +0000`, the CLF-style requestTime of WebSocket and HTTP events."""
    t = time.gmtime(epoch_ms / 1000)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- requests as the gateway saw them ---------------------------------------------------------


@dataclass(frozen=True)
class HandshakeRequest:
    """The parts of a WebSocket opening handshake that events carry."""

    path: str
    query: str  # raw query string, without '?'
    headers: tuple[tuple[str, str], ...]  # as received, original case, in order
    source_ip: str
    scheme: str = "ws"  # or "wss"
    port: int = 0

    def header(self, name: str) -> str | None:
        lname = name.lower()
        values = [v for k, v in self.headers if k.lower() == lname]
        return ",".join(values) if values else None


@dataclass
class ConnectionInfo:
    """What every event of one connection shares."""

    connection_id: str
    api_id: str
    stage: str
    domain_name: str
    source_ip: str
    user_agent: str | None
    connected_at: int  # epoch ms
    authorizer: dict[str, Any] | None = None  # principalId + the authorizer's context
    extra: dict[str, Any] = field(default_factory=dict)


def _single_and_multi(
    pairs: Iterable[tuple[str, str]],
) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for k, v in pairs:
        single[k] = v  # REST-style single-value maps keep the last value
        multi.setdefault(k, []).append(v)
    return single, multi


def _ws_request_context(
    conn: ConnectionInfo, *, route_key: str, event_type: str, request_id: str, epoch_ms: int
) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(epoch_ms),
        "messageDirection": "IN",
        "stage": conn.stage,
        "connectedAt": conn.connected_at,
        "requestTimeEpoch": epoch_ms,
        "identity": {"userAgent": conn.user_agent, "sourceIp": conn.source_ip},
        "requestId": request_id,
        "domainName": conn.domain_name,
        "connectionId": conn.connection_id,
        "apiId": conn.api_id,
    }
    if conn.authorizer is not None:
        ctx["authorizer"] = dict(conn.authorizer)
    return ctx


def handshake_headers(request: HandshakeRequest) -> list[tuple[str, str]]:
    """The handshake's headers as API Gateway forwards them (it adds X-Forwarded-*)."""
    headers = [(k, v) for k, v in request.headers if k.lower() not in ("connection", "upgrade")]
    present = {k.lower() for k, _ in headers}
    if "x-forwarded-for" not in present:
        headers.append(("X-Forwarded-For", request.source_ip))
    if "x-forwarded-port" not in present and request.port:
        headers.append(("X-Forwarded-Port", str(request.port)))
    if "x-forwarded-proto" not in present:
        headers.append(("X-Forwarded-Proto", "https" if request.scheme == "wss" else "http"))
    if "x-amzn-trace-id" not in present:
        trace = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
        headers.append(("X-Amzn-Trace-Id", trace))
    return headers


def websocket_connect(
    conn: ConnectionInfo, request: HandshakeRequest, *, request_id: str, epoch_ms: int
) -> dict[str, Any]:
    """The `$connect` event: handshake headers and query string, eventType CONNECT."""
    headers, multi_headers = _single_and_multi(handshake_headers(request))
    event: dict[str, Any] = {
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "requestContext": _ws_request_context(
            conn, route_key="$connect", event_type="CONNECT", request_id=request_id,
            epoch_ms=epoch_ms,
        ),
        "isBase64Encoded": False,
    }
    query = parse_qsl(request.query, keep_blank_values=True)
    if query:
        single, multi = _single_and_multi(query)
        event["queryStringParameters"] = single
        event["multiValueQueryStringParameters"] = multi
    return event


def websocket_message(
    conn: ConnectionInfo,
    route_key: str,
    body: str,
    *,
    request_id: str,
    message_id: str,
    epoch_ms: int,
) -> dict[str, Any]:
    """A MESSAGE event: the frame's text as `body`, never base64 (binary frames are refused)."""
    ctx = _ws_request_context(
        conn, route_key=route_key, event_type="MESSAGE", request_id=request_id, epoch_ms=epoch_ms
    )
    ctx["messageId"] = message_id
    return {"requestContext": ctx, "body": body, "isBase64Encoded": False}


def websocket_disconnect(
    conn: ConnectionInfo,
    *,
    status_code: int,
    reason: str,
    request_id: str,
    epoch_ms: int,
) -> dict[str, Any]:
    """The `$disconnect` event, with disconnectStatusCode and disconnectReason."""
    ctx = _ws_request_context(
        conn, route_key="$disconnect", event_type="DISCONNECT", request_id=request_id,
        epoch_ms=epoch_ms,
    )
    ctx["disconnectStatusCode"] = status_code
    ctx["disconnectReason"] = reason
    # AWS sends these four headers on DISCONNECT (see the Lambda guide's sample event).
    headers = {
        "Host": conn.domain_name,
        "x-api-key": "",
        "X-Forwarded-For": "",
        "x-restapi": "",
    }
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": ctx,
        "isBase64Encoded": False,
    }


# --- Lambda's answers on WebSocket routes -----------------------------------------------------


@dataclass(frozen=True)
class ConnectAnswer:
    status: int
    headers: dict[str, str]


def connect_answer(payload: Any) -> ConnectAnswer:
    """How API Gateway reads `$connect`'s proxy response: a 2xx statusCode accepts.

    A result without statusCode (None, or a dict without it) is taken as 200, as API Gateway
    does for Lambda proxy integrations on `$connect`.
    """
    if isinstance(payload, Mapping) and "statusCode" in payload:
        try:
            status = int(payload["statusCode"])
        except (TypeError, ValueError):
            return ConnectAnswer(502, {})
        headers = {str(k): str(v) for k, v in (payload.get("headers") or {}).items()}
        for k, values in (payload.get("multiValueHeaders") or {}).items():
            headers[str(k)] = ",".join(str(v) for v in values)
        return ConnectAnswer(status, headers)
    return ConnectAnswer(200, {})


def route_response_body(payload: Any) -> str | None:
    """The frame a two-way route sends back: the proxy response's body, or the bare result."""
    if payload is None:
        return None
    if isinstance(payload, Mapping) and "statusCode" in payload:
        body = payload.get("body")
        if body is None:
            return None
        if payload.get("isBase64Encoded"):
            return base64.b64decode(body).decode("utf-8", "replace")
        return body if isinstance(body, str) else json.dumps(body)
    if isinstance(payload, str):
        return payload
    return json.dumps(payload)


def error_frame(message: str, connection_id: str, request_id: str) -> str:
    """API Gateway's own frame for a failed or unroutable message, byte for byte.

    AWS writes this frame from a fixed template, not a JSON serialiser: a space after the first
    colon and after the commas, none after the later colons, e.g.
    `{"message": "Forbidden", "connectionId":"XDmENcnwIE0CFEQ=", "requestId":"XDmGEE2RoE0FRdQ="}`
    (as captured from AWS in aws-samples/simple-websockets-chat-app#24; see docs/fidelity.md).
    """
    return (
        f'{{"message": {json.dumps(message)}, "connectionId":{json.dumps(connection_id)}, '
        f'"requestId":{json.dumps(request_id)}}}'
    )


# --- HTTP API payload format 2.0 -------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequestInfo:
    method: str
    raw_path: str
    raw_query: str
    headers: tuple[tuple[str, str], ...]  # as received
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"


_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
               "application/x-www-form-urlencoded", "+json", "+xml")


def _is_text(content_type: str | None) -> bool:
    if not content_type:
        return True
    ct = content_type.lower()
    return any(t in ct for t in _TEXT_TYPES)


def http_v2(
    request: HttpRequestInfo,
    *,
    route_key: str,
    path_parameters: Mapping[str, str],
    api_id: str,
    domain_name: str,
    account_id: str,
    request_id: str,
    epoch_ms: int,
    stage: str = "$default",
) -> dict[str, Any]:
    """An HTTP API event in payload format 2.0.

    Headers are lower-cased and repeated headers comma-joined; `cookies` holds the Cookie
    header's parts; repeated query parameters are comma-joined; a body that is not text
    (by Content-Type) is base64-encoded with isBase64Encoded true.
    """
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for k, v in request.headers:
        lk = k.lower()
        if lk == "cookie":
            cookies.extend(c.strip() for c in v.split(";") if c.strip())
            continue
        headers[lk] = f"{headers[lk]},{v}" if lk in headers else v
    query: dict[str, str] = {}
    for k, v in parse_qsl(request.raw_query, keep_blank_values=True):
        query[k] = f"{query[k]},{v}" if k in query else v
    domain_prefix = domain_name.split(".", 1)[0]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "domainName": domain_name,
            "domainPrefix": domain_prefix,
            "http": {
                "method": request.method.upper(),
                "path": request.raw_path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": stage,
            "time": request_time(epoch_ms),
            "timeEpoch": epoch_ms,
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if request.body:
        if _is_text(headers.get("content-type")):
            try:
                event["body"] = request.body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(request.body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(request.body).decode()
            event["isBase64Encoded"] = True
    return event


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def http_v2_answer(payload: Any) -> HttpAnswer:
    """Map a payload-2.0 Lambda result to an HTTP response, as API Gateway does.

    A dict with `statusCode` is a full response (headers, multiValueHeaders, cookies, body,
    isBase64Encoded). Anything else is inferred: status 200, content-type application/json, the
    body being a returned string as-is or the JSON of any other value.
    """
    if isinstance(payload, Mapping) and "statusCode" in payload:
        try:
            status = int(payload["statusCode"])
        except (TypeError, ValueError):
            return internal_server_error()
        headers: list[tuple[str, str]] = [
            (str(k), str(v)) for k, v in (payload.get("headers") or {}).items()
        ]
        for k, values in (payload.get("multiValueHeaders") or {}).items():
            headers.extend((str(k), str(v)) for v in values)
        for cookie in payload.get("cookies") or ():
            headers.append(("Set-Cookie", str(cookie)))
        body_value = payload.get("body")
        if body_value is None:
            body = b""
        elif payload.get("isBase64Encoded"):
            body = base64.b64decode(body_value)
        elif isinstance(body_value, str):
            body = body_value.encode()
        else:
            body = json.dumps(body_value).encode()
        if not any(k.lower() == "content-type" for k, _ in headers) and body:
            headers.append(("Content-Type", "text/plain; charset=utf-8"))
        return HttpAnswer(status, headers, body)
    body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    return HttpAnswer(200, [("Content-Type", "application/json")], body)


def internal_server_error() -> HttpAnswer:
    """HTTP APIs answer a failed integration with 500 and this body."""
    return HttpAnswer(500, [("Content-Type", "application/json")],
                      b'{"message":"Internal Server Error"}')
