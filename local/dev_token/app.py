"""Local only (local/template.yaml is never deployed): `POST /dev/token` signs a token for
the web client's dev sign-in, with the same secret the app checks.

Any page open in the developer's browser can send this request; only the web client apigw-local
serves may have an answer. A browser always sends `Origin` with a POST, so a request whose
Origin is not that client's — a loopback host (`localhost`, `127.0.0.1`, `[::1]`) on the port
the request came to — is refused with 403. A request without `Origin` does not come from a
page (curl, a script) and is served: apigw-local lets only its own local user reach this port
(it refuses other users' connections by their socket's owner, docs/security.md), and that
user can read the key anyway. The origin check also stops DNS rebinding: a rebound page keeps
its own host name in `Origin`.
"""

import json
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from realtime import auth
from realtime.models import TokenRequest

logger = Logger()
app = APIGatewayHttpResolver(enable_validation=True)

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def foreign_origin(headers: dict) -> str | None:
    """The request's Origin when it is not the served web client's, else None (HTTP APIs hand
    header names in lower case)."""
    origin = headers.get("origin")
    if origin is None:
        return None
    try:
        seen, served = urlsplit(origin), urlsplit("//" + headers.get("host", ""))
        same_port = seen.port == served.port and seen.port is not None
    except ValueError:  # a port that is not a number
        return origin
    if seen.scheme in ("http", "https") and seen.hostname in LOOPBACK and same_port:
        return None
    return origin


@app.exception_handler(RequestValidationError)
def invalid_request(error: RequestValidationError) -> Response:
    message = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
        for e in error.errors()
    )
    return Response(
        status_code=400,
        content_type="application/json",
        body=json.dumps({"code": "invalid_request", "message": message}),
    )


@app.exception_handler(RecursionError)
def nested_too_deeply(error: RecursionError) -> Response:
    return Response(
        status_code=400,
        content_type="application/json",
        body=json.dumps({"code": "invalid_request", "message": "body: nested too deeply"}),
    )


@app.exception_handler(UnicodeDecodeError)
def not_utf8(error: UnicodeDecodeError) -> Response:
    # A binary body comes base64-encoded; decoded, it must be UTF-8 text to be JSON.
    return Response(
        status_code=400,
        content_type="application/json",
        body=json.dumps({"code": "invalid_request", "message": "body: not UTF-8 text"}),
    )


@app.post("/dev/token")
def dev_token(body: TokenRequest) -> dict:
    return {"token": auth.issue(auth.secret(), body.user, body.role)}


@logger.inject_lambda_context
def lambda_handler(event: dict, context: object) -> dict:
    origin = foreign_origin(event.get("headers") or {})  # before anything else is looked at
    if origin is not None:
        message = ("local sign-in is only for the web client apigw-local serves, "
                   f"not for pages from {origin[:100]}")
        return {"statusCode": 403, "headers": {"content-type": "application/json"},
                "body": json.dumps({"code": "forbidden_origin", "message": message})}
    return app.resolve(event, context)
