"""The inspector's live channel: a WebSocket at `/_apigw-local/live` on the HTTP port.

Each page gets a snapshot when it connects, then the model's changes every `interval`
seconds in one message (so a burst of frames costs one message per flush, not one per frame).
The WebSocket runs on websockets' sans-I/O protocol over the HTTP connection that was
upgraded (anything with `write_raw`, `close` and `switch`, like `server.http11.HttpConnection`).

Bounded: at most `max_pages` pages watch at once (more are refused with 503), and a page that
does not read (its socket's send buffer over `max_buffer` bytes) is closed with 1013; it
reconnects and starts from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from websockets.datastructures import Headers
from websockets.frames import Close
from websockets.http11 import Request as WsRequest
from websockets.protocol import State
from websockets.server import ServerProtocol

from .model import InspectorModel

log = logging.getLogger("apigw_local.inspector")

MAX_PAGES = 16
MAX_BUFFER = 4 * 1024 * 1024
TRY_AGAIN_LATER = 1013


class Upgradable(Protocol):
    transport: Any

    def write_raw(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def switch(self, upgraded: Any) -> None: ...


class _Page:
    """One watching page: the sans-I/O protocol and the connection it writes to."""

    def __init__(self, hub: LiveHub, http: Upgradable, protocol: ServerProtocol) -> None:
        self.hub, self.http, self.protocol = hub, http, protocol

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.http.write_raw(data)
            else:  # the protocol wants the TCP connection closed
                self.http.close()

    def send(self, message: dict[str, Any]) -> None:
        if self.protocol.state is not State.OPEN:
            return
        transport = getattr(self.http, "transport", None)
        if transport is not None and transport.get_write_buffer_size() > self.hub.max_buffer:
            self.protocol.send_close(TRY_AGAIN_LATER, "too slow; reload")
        else:
            self.protocol.send_text(json.dumps(message, default=str).encode())
        self._flush()

    # -- Upgraded: bytes from the socket ------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Close):
                break  # the protocol answers the close itself
        self._flush()  # pongs, close replies
        if self.protocol.state is State.CLOSED:
            self.connection_lost(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.hub.pages.discard(self)

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


class LiveHub:
    def __init__(self, model: InspectorModel, describe: Callable[[], dict[str, Any]], *,
                 poll: Callable[[], None] | None = None, interval: float = 0.25,
                 max_pages: int = MAX_PAGES, max_buffer: int = MAX_BUFFER) -> None:
        """`poll` runs before each batch (to copy counters into the model)."""
        self.model = model
        self.describe = describe
        self.poll = poll
        self.interval = interval
        self.max_pages = max_pages
        self.max_buffer = max_buffer
        self.pages: set[_Page] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="inspector-live")

    async def stop(self) -> None:
        for page in list(self.pages):
            with contextlib.suppress(Exception):
                page.protocol.send_close(1001, "going away")
                page._flush()
                page.http.close()
        self.pages.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def accept(self, target: str, headers: list[tuple[str, str]], http: Upgradable) -> None:
        """Complete the handshake (the caller has checked Host and Origin) and start sending."""
        protocol = ServerProtocol(max_size=64 * 1024)
        response = protocol.accept(WsRequest(target, Headers(headers)))
        if response.status_code == 101 and len(self.pages) >= self.max_pages:
            response = protocol.reject(503, "Too many inspector pages are open.\n")
        protocol.send_response(response)
        page = _Page(self, http, protocol)
        page._flush()
        if response.status_code != 101:
            http.close()
            return
        self.pages.add(page)
        http.switch(page)
        if self.poll is not None:
            self.poll()
        page.send({"type": "snapshot", "app": self.describe(), **self.model.snapshot()})

    def flush(self) -> None:
        if not self.pages:
            self.model.forget_changes()
            return
        if self.poll is not None:
            self.poll()
        message = self.model.drain()
        if message is None or not self.pages:
            return
        for page in list(self.pages):
            page.send(message)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.flush()
            except Exception:
                log.exception("inspector live update failed")
