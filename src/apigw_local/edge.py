"""A LocalStack-style edge port, so LocalStack's tools work against apigw-local unchanged.

With `--edge-port 4566`, one port answers as LocalStack's edge does:

- `GET /_localstack/health`: `{"services": {name: "running"}, ...}` for the services served.
- The Management API (`@connections`) in LocalStack's URL forms for API Gateway
  (docs.localstack.cloud, "API Gateway", endpoint URLs):
  `{apiId}.execute-api.localhost.localstack.cloud:4566/{stage}/@connections/{id}` (by Host),
  `/_aws/execute-api/{apiId}/{stage}/@connections/{id}`, and `/@connections/{id}` as an SDK,
  `awslocal` or a `localstack_client` session sends it when given the edge itself as the
  endpoint (then the connection's own stage is used). All reach the gateway's
  `gateway/management.py` core, with its signature check.
- Everything else (DynamoDB, Secrets Manager, …) is forwarded as it is to the backend
  (the embedded moto server), which tells services apart as LocalStack does: by the request's
  SigV4 scope and target.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Callable, Sequence
from urllib.parse import unquote, urlsplit

from . import __version__
from .gateway.management import Management
from .server.http11 import Request, Response, json_response

__all__ = ["LocalStackEdge"]

HEALTH = "/_localstack/health"
EXECUTE_API_PREFIX = "/_aws/execute-api/"
EXECUTE_API_HOST = ".execute-api.localhost.localstack.cloud"
# Hop-by-hop headers (RFC 9110, 7.6.1) are the edge's own, not forwarded.
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-connection", "content-length"}


class LocalStackEdge:
    """An `HttpApp` for the edge port."""

    def __init__(self, management: Callable[[], Management | None], backend_url: str | None,
                 services: Sequence[str], timeout: float = 60.0) -> None:
        self.management = management
        self.backend = urlsplit(backend_url) if backend_url else None
        self.services = sorted({*services, "apigatewaymanagementapi"})
        self.timeout = timeout

    def upgrade(self, request: Request, connection: object) -> None:
        return None  # WebSockets are served on the WebSocket port

    async def handle(self, request: Request) -> Response:
        if request.path == HEALTH:
            body = {"services": {name: "running" for name in self.services},
                    "edition": "community", "version": f"apigw-local {__version__}"}
            return json_response(200, json.dumps(body).encode())
        target = self._connections_path(request)
        if target is not None:
            management = self.management()
            if management is None:
                return json_response(503, b'{"message":"Service Unavailable"}')
            answer = management.handle(request.method, target, request.headers, request.body)
            return Response(answer.status, answer.headers, answer.body)
        if self.backend is None:
            return json_response(404, b'{"message":"no backend behind this edge"}')
        return await asyncio.to_thread(self._forward, request)

    def _connections_path(self, request: Request) -> str | None:
        """`/{stage}/@connections/{id}` when the request is for the Management API."""
        path = request.path
        host = (request.header("host") or "").split(":", 1)[0].lower()
        if host.endswith(EXECUTE_API_HOST) and "/@connections/" in path:
            return path
        if path.startswith(EXECUTE_API_PREFIX):
            # /_aws/execute-api/{apiId}/{stage}/@connections/{id} → /{stage}/@connections/{id}
            rest = path[len(EXECUTE_API_PREFIX):].split("/", 1)
            return "/" + rest[1] if len(rest) == 2 and "/@connections/" in path else None
        parts = path.split("/")
        if len(parts) == 3 and unquote(parts[1]) == "@connections":
            management = self.management()
            if management is None or not management.stages:
                return f"/-{path}"  # no API: Management answers Forbidden
            conn = management.registry.get(unquote(parts[2]))
            # An unknown connection goes to any stage, which answers GoneException for it.
            stage = conn.info.stage if conn is not None else next(iter(management.stages))
            return f"/{stage}{path}"
        return None

    def _forward(self, request: Request) -> Response:
        assert self.backend is not None
        connection_class = (http.client.HTTPSConnection if self.backend.scheme == "https"
                            else http.client.HTTPConnection)
        connection = connection_class(self.backend.netloc, timeout=self.timeout)
        try:
            headers = {k: v for k, v in request.headers if k.lower() not in _HOP}
            connection.request(request.method, request.target, body=request.body,
                               headers=headers)
            answer = connection.getresponse()
            body = answer.read()
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP]
            return Response(answer.status, kept, body)
        except OSError as exc:
            return json_response(502, json.dumps(
                {"message": f"the backend at {self.backend.netloc} did not answer: {exc}"}
            ).encode())
        finally:
            connection.close()
