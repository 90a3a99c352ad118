"""A listening socket that answers plain HTTP and TLS on the same port.

Each accepted socket is peeked at before any protocol sees it: a first byte of 0x16 is a TLS
handshake record (RFC 8446 5.1, ContentType handshake = 22), so the socket is wrapped with the
server's SSLContext; anything else is served in the clear. That lets `ws://localhost:3001/dev`,
`wss://localhost:3001/dev` and `https://localhost:3001/dev/@connections/…` share one port, the
one in the events' `domainName`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable

log = logging.getLogger("apigw_local.server")

TLS_HANDSHAKE = 0x16


class PortInUse(OSError):
    def __init__(self, host: str, port: int, err: OSError) -> None:
        super().__init__(err.errno, f"{host}:{port} is already in use ({err.strerror})")
        self.host, self.port, self.reason = host, port, err.strerror or str(err)


class Listener:
    """Serves `protocol_factory` on a socket made by `Listener.bind` (bound first, so its port
    is known before what it serves is built)."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.sock: socket.socket | None = sock
        self.protocol_factory = protocol_factory
        self.ssl_context = ssl_context
        self.loop: asyncio.AbstractEventLoop | None = None
        self._waiting: set[socket.socket] = set()
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def port(self) -> int:
        assert self.sock is not None
        return self.sock.getsockname()[1]

    @staticmethod
    def bind(host: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            sock.close()
            raise PortInUse(host, port, err) from err
        sock.listen(1024)
        sock.setblocking(False)
        return sock

    def start(self) -> None:
        assert self.sock is not None
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.sock.fileno(), self._accept)

    def _accept(self) -> None:
        assert self.sock is not None and self.loop is not None
        for _ in range(128):
            try:
                client, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # EMFILE and friends: log and keep serving
                log.warning("accept failed: %s", err)
                return
            client.setblocking(False)
            with contextlib.suppress(OSError):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._waiting.add(client)
            self.loop.add_reader(client.fileno(), self._first_byte, client)

    def _first_byte(self, client: socket.socket) -> None:
        assert self.loop is not None
        self.loop.remove_reader(client.fileno())
        self._waiting.discard(client)
        try:
            first = client.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            self._waiting.add(client)
            self.loop.add_reader(client.fileno(), self._first_byte, client)
            return
        except OSError:
            client.close()
            return
        if not first:
            client.close()
            return
        tls = self.ssl_context if first[0] == TLS_HANDSHAKE else None
        coro = self.loop.connect_accepted_socket(
            self.protocol_factory, client, ssl=tls,
            **({"ssl_handshake_timeout": 10.0} if tls else {}),
        )
        task = self.loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("connection setup failed: %s", task.exception())

    def close(self) -> None:
        if self.loop is not None and self.sock is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock.fileno())
        for client in list(self._waiting):
            if self.loop is not None:
                with contextlib.suppress(Exception):
                    self.loop.remove_reader(client.fileno())
            client.close()
        self._waiting.clear()
        for task in list(self._tasks):
            task.cancel()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
