"""CORS as API Gateway applies an HTTP API's `CorsConfiguration` (pure; no I/O).

"Configure CORS for HTTP APIs in API Gateway",
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html:

- with a configuration, API Gateway answers preflight `OPTIONS` requests itself (an `Origin`
  and an `Access-Control-Request-Method` make a preflight), even without an OPTIONS route;
- it adds the configured CORS headers to the integration's answer, and ignores the CORS
  headers the integration returns;
- CORS headers are only returned to a request that carries an `Origin`;
- `AllowOrigins` entries are exact origins, `*` (any), or `https://*` / `http://*` (any origin
  with that scheme).

An origin that is not allowed gets no CORS headers at all (the browser then refuses the
exchange); its preflight is still answered, 204 without them.
"""

from __future__ import annotations

from ..model import Cors

_ANY = "*"
_CORS_PREFIX = "access-control-"


def allows(cors: Cors, origin: str) -> bool:
    for allowed in cors.allow_origins:
        if allowed in (_ANY, origin):
            return True
        if allowed.endswith("://*") and origin.startswith(allowed[:-1]):
            return True
    return False


def _allow_origin(cors: Cors, origin: str) -> list[tuple[str, str]]:
    if _ANY in cors.allow_origins and not cors.allow_credentials:
        return [("Access-Control-Allow-Origin", _ANY)]
    return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]


def preflight(cors: Cors, origin: str, request_headers: str | None) -> list[tuple[str, str]]:
    """Headers of the 204 answer to a preflight from `origin`."""
    if not allows(cors, origin):
        return []
    headers = _allow_origin(cors, origin)
    if cors.allow_methods:
        headers.append(("Access-Control-Allow-Methods", ",".join(cors.allow_methods)))
    if cors.allow_headers:
        # `*` in AllowHeaders: every header the browser asks for.
        allowed = request_headers if _ANY in cors.allow_headers and request_headers else (
            ",".join(cors.allow_headers))
        headers.append(("Access-Control-Allow-Headers", allowed))
    if cors.max_age is not None:
        headers.append(("Access-Control-Max-Age", str(cors.max_age)))
    if cors.allow_credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    return headers


def apply(cors: Cors, origin: str | None,
          headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """An integration's answer `headers` as API Gateway sends them: the integration's own CORS
    headers dropped, the configured ones added when `origin` is allowed."""
    out = [(k, v) for k, v in headers if not k.lower().startswith(_CORS_PREFIX)]
    if origin is None or not allows(cors, origin):
        return out
    out.extend(_allow_origin(cors, origin))
    if cors.expose_headers:
        out.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
    if cors.allow_credentials:
        out.append(("Access-Control-Allow-Credentials", "true"))
    return out
