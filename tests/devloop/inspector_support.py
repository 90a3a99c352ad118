"""The inspector on a real socket with a stand-in emulator: what its page and guards need,
without starting workers (the full emulator's inspector is tested in test_inspector_live.py)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

from apigw_local.inspector.api import ActionError
from apigw_local.inspector.model import InspectorModel, InvocationView
from apigw_local.inspector.service import InspectorService
from apigw_local.server.http11 import make_factory

XSS = "<img src=x onerror=alert(1)>"


def now_ms() -> int:
    return int(time.time() * 1000)


class FakeActions:
    """Acts on the model as the emulator would, and records what was asked."""

    def __init__(self, model: InspectorModel) -> None:
        self.model = model
        self.posted: list[tuple[str, bytes]] = []
        self.disconnected: list[str] = []

    def describe(self) -> dict[str, Any]:
        return {
            "routes": [{"api": "ChatApi", "route_key": "$connect", "function": "Connect"},
                       {"api": "ChatApi", "route_key": "$default", "function": "Message"},
                       {"api": "HttpApi", "route_key": "GET /items", "function": "Items"}],
            "tables": [{"logical_id": "Items", "name": "app-Items"}],
            "chaos": "off",
        }

    def post(self, connection_id: str, data: bytes) -> None:
        if connection_id not in self.model.connections:
            raise ActionError(410, "GoneException")
        self.posted.append((connection_id, data))
        view = self.model.connections[connection_id]
        self.model.activity(connection_id, bytes_in=view.bytes_in,
                            bytes_out=view.bytes_out + len(data), frames_in=view.frames_in,
                            frames_out=view.frames_out + 1, last_active=now_ms())

    def disconnect(self, connection_id: str) -> None:
        if connection_id not in self.model.connections:
            raise ActionError(410, "GoneException")
        self.disconnected.append(connection_id)
        self.model.connection_closed(connection_id, 1000, now_ms())

    async def replay(self, inv: InvocationView) -> InvocationView:
        return self.model.invocation(function=inv.function, route_key=inv.route_key,
                                     api=inv.api, status=200, duration_ms=1.5, now_ms=now_ms(),
                                     logs=["replayed"], event=inv.event, replay_of=inv.seq)

    async def items(self, table: str, limit: int, start: str | None) -> dict[str, Any]:
        if table != "Items":
            raise ActionError(404, f"no table {table}")
        items = [{"pk": f"item-{i:02d}", "text": XSS if i == 0 else f"t{i}", "n": i}
                 for i in range(30)]
        first = int(start or 0)
        page = items[first:first + limit]
        more = first + limit < len(items)
        return {"items": page, "next": str(first + limit) if more else None}


class InspectorServer:
    """An InspectorService on 127.0.0.1, its loop in a background thread."""

    def __init__(self) -> None:
        self.model = InspectorModel()
        self.actions = FakeActions(self.model)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/_apigw-local/"
        self.service = InspectorService(self.model, self.actions, port=self.port)
        self.server: Any = None
        self.connections: set[Any] = set()

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on the server's loop (the model is the loop's alone)."""
        async def run() -> Any:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def __enter__(self) -> InspectorServer:
        self.thread.start()

        async def start() -> None:
            self.service.start()
            self.server = await self.loop.create_server(
                make_factory(self.service, self.connections), sock=self.sock)

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            await self.service.stop()
            self.server.close()
            for conn in list(self.connections):
                conn.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def populate(model: InspectorModel) -> None:
    t = now_ms()
    model.connection_opened("AAAAAAAAAAAAAAA=", api="ChatApi", stage="dev", source_ip="127.0.0.1",
                            user_agent=XSS, connected_at=t, principal="alice")
    model.connection_state("AAAAAAAAAAAAAAA=", "OPEN", t)
    model.activity("AAAAAAAAAAAAAAA=", bytes_in=42, bytes_out=0, frames_in=1, frames_out=0,
                   last_active=t)
    model.invocation(function="Message", route_key="$default", api="websocket", status=200,
                     duration_ms=12.5, now_ms=t, request_id="r-1",
                     connection_id="AAAAAAAAAAAAAAA=",
                     logs=["START RequestId: r-1 Version: $LATEST", XSS, "END RequestId: r-1"],
                     event={"body": XSS, "requestContext": {"routeKey": "$default"}})
    model.invocation(function="Message", route_key="$default", api="websocket", status=502,
                     duration_ms=3.0, now_ms=t, error_type="ValueError", error_message="boom",
                     logs=["[ERROR] ValueError: boom"], event={"body": "x"})
