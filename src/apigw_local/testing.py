"""Test your own SAM application against apigw-local from pytest.

    from apigw_local.testing import serve, connect

    def test_echo():
        with serve(["template.yaml"], parameter_overrides={"AuthSecret": SECRET}) as ep:
            async def scenario():
                async with connect(ep.websocket, query={"token": TOKEN}) as ws:
                    await ws.send_json({"action": "ping"})
                    assert (await ws.receive_json(timeout=5))["type"] == "pong"
            asyncio.run(scenario())

`serve` runs the whole emulator (workers, embedded DynamoDB, both ports on free ports) in a
background thread with its own event loop, and stops it on exit. `connect` is a small client
over the `websockets` library, like Channels' WebsocketCommunicator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import websockets

from .chaos import Chaos
from .emulator import Config, Emulator, Endpoints, load_env_vars
from .gateway.management import FaultPolicy
from .gateway.observer import Observer

__all__ = ["Endpoints", "WebSocketClient", "connect", "serve"]


@contextlib.contextmanager
def serve(
    templates: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    parameter_overrides: Mapping[str, str] | None = None,
    env_vars: Mapping[str, Mapping[str, str]] | str | os.PathLike[str] | None = None,
    seed: str | os.PathLike[str] | None = None,
    static_dir: str | os.PathLike[str] | None = None,
    dynamodb_endpoint: str | None = None,
    stage: str | None = None,
    idle_timeout: float | None = None,
    max_connection_duration: float | None = None,
    max_concurrency: int | None = None,
    worker_idle_timeout: float = 300.0,
    host: str = "127.0.0.1",
    port: int = 0,
    ws_port: int = 0,
    region: str = "us-east-1",
    stack_name: str = "apigw-local",
    prewarm: bool = False,
    startup_timeout: float = 60.0,
    chaos: Chaos | str | Mapping[str, Any] | None = None,
    reload: bool = False,
    log_format: str = "text",
    inspector: bool = True,
    observers: Sequence[Observer] = (),
    fault_policy: FaultPolicy | None = None,
) -> Iterator[Endpoints]:
    """Run apigw-local for the duration of a `with` block; yields its `Endpoints`.

    Ports default to free ones. Errors while starting (a bad template, a port in use, a chaos
    spec that does not read) are raised here, in the caller's thread. `chaos`: a spec such as
    "gone=0.3,seed=7", a `Chaos`, or its fields as a dict (docs/chaos.md); `reload`: watch the
    code and templates (docs/devloop.md). `observers` are told of every invocation and
    connection (`apigw_local.gateway.observer`), on the emulator's thread; `fault_policy` may
    answer `@connections` calls in place of the gateway (`apigw_local.gateway.management`).
    """
    chaos = Chaos.coerce(dict(chaos) if isinstance(chaos, Mapping) else chaos)
    if isinstance(templates, str | os.PathLike):
        templates = [templates]
    if isinstance(env_vars, str | os.PathLike):
        env_vars = load_env_vars(Path(env_vars))
    state = tempfile.TemporaryDirectory(prefix="apigw-local-test-")
    config = Config(
        templates=[Path(t) for t in templates],
        host=host,
        port=port,
        ws_port=ws_port,
        stage=stage,
        parameter_overrides=dict(parameter_overrides or {}),
        env_vars={k: dict(v) for k, v in (env_vars or {}).items()},
        dynamodb_endpoint=dynamodb_endpoint,
        seed=Path(seed) if seed else None,
        static_dir=Path(static_dir) if static_dir else None,
        idle_timeout=idle_timeout,
        max_connection_duration=max_connection_duration,
        max_concurrency=max_concurrency,
        worker_idle_timeout=worker_idle_timeout,
        chaos=chaos,
        reload=reload,
        log_format=log_format,
        inspector=inspector,
        state_dir=Path(state.name),
        region=region,
        stack_name=stack_name,
        prewarm=prewarm,
    )
    runner = _Runner(Emulator(config, observers=list(observers), fault_policy=fault_policy))
    try:
        endpoints = runner.start(startup_timeout)
        yield endpoints
    finally:
        runner.stop()
        state.cleanup()


class _Runner:
    """The emulator on its own loop in a daemon thread."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="apigw-local", daemon=True)
        self._stop: asyncio.Event | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def start(self, timeout: float) -> Endpoints:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(self.emulator.start(), self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.emulator.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class WebSocketClient:
    """A connected test client: JSON in, JSON out, with timeouts."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.skipped: list[str | bytes] = []

    @property
    def subprotocol(self) -> str | None:
        return self.connection.subprotocol

    async def send(self, text: str) -> None:
        await self.connection.send(text)

    async def send_json(self, data: Any) -> None:
        await self.connection.send(json.dumps(data))

    async def receive(self, timeout: float = 5.0) -> str:
        message = await asyncio.wait_for(self.connection.recv(), timeout)
        return message if isinstance(message, str) else message.decode()

    async def receive_json(self, timeout: float = 5.0) -> Any:
        return json.loads(await self.receive(timeout))

    async def receive_until(self, predicate: Any, timeout: float = 5.0) -> Any:
        """Receive JSON frames until one satisfies `predicate`; returns it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.receive_json(max(0.0, deadline - loop.time()))
            if predicate(frame):
                return frame

    async def receive_nothing(self, timeout: float = 0.2) -> bool:
        """True when no frame arrives within `timeout` (a frame that does is kept in
        `self.skipped`)."""
        try:
            message = await asyncio.wait_for(self.connection.recv(), timeout)
        except TimeoutError:
            return True
        self.skipped.append(message)
        return False

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.connection.close(code, reason)

    @property
    def close_code(self) -> int | None:
        return self.connection.close_code

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        await asyncio.wait_for(self.connection.wait_closed(), timeout)
        return self.connection.close_code

    async def __aenter__(self) -> WebSocketClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Connect:
    def __init__(self, url: str, kwargs: dict[str, Any]) -> None:
        self.url, self.kwargs = url, kwargs
        self.client: WebSocketClient | None = None

    def __await__(self) -> Any:
        return self._open().__await__()

    async def _open(self) -> WebSocketClient:
        connection = await websockets.connect(self.url, **self.kwargs)
        self.client = WebSocketClient(connection)
        return self.client

    async def __aenter__(self) -> WebSocketClient:
        return await self._open()

    async def __aexit__(self, *exc: object) -> None:
        if self.client is not None:
            await self.client.close()


def connect(
    url: str,
    *,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    subprotocols: Sequence[str] | None = None,
    open_timeout: float = 10.0,
    **kwargs: Any,
) -> _Connect:
    """Open a WebSocket to `url` (`await connect(...)` or `async with connect(...) as ws`).

    A refused handshake raises `websockets.exceptions.InvalidStatus` (its `.response.status_code`
    is `$connect`'s answer).
    """
    if query:
        url = f"{url}{'&' if '?' in url else '?'}{urlencode(dict(query))}"
    options: dict[str, Any] = {"open_timeout": open_timeout, "max_size": None, **kwargs}
    if headers:
        options["additional_headers"] = dict(headers)
    if subprotocols:
        options["subprotocols"] = list(subprotocols)
    return _Connect(url, options)
