"""A WSGI application served by `http11`: keep-alive HTTP/1.1, bounded, one request at a time.

The application runs on the event loop's thread, synchronously (PEP 3333 environ in, status,
headers and body out), so no two requests are ever inside it together, and no thread hand-off
sits between a request's last byte and its answer.
"""

from __future__ import annotations

import io
import sys
from typing import Any
from urllib.parse import unquote_to_bytes

from .http11 import Request, Response

__all__ = ["WsgiApp"]


class WsgiApp:
    """An `http11.HttpApp` over a WSGI callable; it refuses upgrades."""

    def __init__(self, app: Any, server_name: str, server_port: int) -> None:
        self.app = app
        self.server_name = server_name
        self.server_port = server_port

    def handle(self, request: Request) -> Response:
        status: list[str] = []
        headers: list[tuple[str, str]] = []
        written: list[bytes] = []  # from the legacy write() callable, before the iterable

        def start_response(line: str, answer_headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Any:
            status[:] = [line]
            headers[:] = answer_headers
            return written.append

        chunks = self.app(self.environ(request), start_response)
        try:
            body = b"".join([*written, *chunks])
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return Response(int(status[0].split(" ", 1)[0]), headers, body)

    def upgrade(self, request: Request, connection: Any) -> None:
        return None  # answered 404 by http11

    def environ(self, request: Request) -> dict[str, Any]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            # PEP 3333: PATH_INFO is the percent-decoded path, its bytes as latin-1 characters.
            "PATH_INFO": unquote_to_bytes(request.path).decode("latin-1"),
            "QUERY_STRING": request.query,
            "RAW_URI": request.target,
            "REQUEST_URI": request.target,
            "SERVER_NAME": self.server_name,
            "SERVER_PORT": str(self.server_port),
            "SERVER_PROTOCOL": f"HTTP/{request.http_version}",
            "REMOTE_ADDR": request.peer[0],
            "REMOTE_PORT": str(request.peer[1]),
            # A chunked body arrives decoded: its length is what was read.
            "CONTENT_LENGTH": str(len(request.body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": request.scheme,
            "wsgi.input": io.BytesIO(request.body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in request.headers:
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):  # the body is whole: see above
                continue
            if key != "CONTENT_TYPE":
                key = "HTTP_" + key
            # RFC 9110 5.3: repeated fields combine into one, comma-separated.
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ
