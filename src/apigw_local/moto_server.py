"""The embedded moto server: every AWS service moto emulates, in a child process.

`EmbeddedMoto` runs moto's server in its own process (so its threads never compete with the
gateway's event loop for the GIL) on 127.0.0.1, on a free port or a given one. Workers reach
it through `AWS_ENDPOINT_URL`, so DynamoDB, Secrets Manager, SSM and the rest answer locally.
The child watches its stdin: when the parent closes it (stop) or dies (even by SIGKILL), the
child exits, so no server outlives the emulator. It runs in its own session, so a Ctrl-C in
the terminal reaches only the parent, which then stops it.

With a `persist` directory, DynamoDB's state is journaled and restored (see persistence.py);
other services' state lives only as long as the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["EmbeddedMoto", "LOCAL_CREDENTIALS", "serve_moto"]

LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
DYNAMODB_TARGET = "DynamoDB_20120810."

# The child: moto's server; it reports {"port": …} (or {"error": …}) on one line and lives
# until stdin closes (the parent stopped us, or died).
_CHILD = """
import sys
from apigw_local.moto_server import serve_moto
serve_moto(sys.argv[1], int(sys.argv[2]), sys.argv[3] or None, float(sys.argv[4]))
"""


# DynamoDB's largest request: "The total request size limit is 16 MB" (BatchWriteItem,
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html).
MAX_BODY = 16 * 1024 * 1024


def serve_moto(host: str, port: int, persist: str | None = None,
               lock_timeout: float = 30.0) -> None:
    """Run moto's server in this process (the embedded server's child process).

    DynamoDB isolates each request, and TransactWriteItems with its conditions is atomic;
    moto's backend takes no locks, so two requests inside it at once could both pass a
    condition. Every request runs to its end on the event loop's thread (`server.wsgi`), one
    at a time; the journal is written inside that turn, before the answer is sent. Clients
    keep their connections (HTTP/1.1 keep-alive): werkzeug's server, which moto ships with,
    closes each one after its answer, and a worker then pays a TCP handshake per call.
    """
    from .moto_instances import track_weakly
    from .persistence import Journal, PersistError

    track_weakly()  # moto would otherwise keep every item it ever answered
    moto_app = _dispatcher()
    journal: Journal | None = None
    restored = ""
    if persist:
        journal = Journal(Path(persist))
        try:
            journal.acquire(lock_timeout)
            report = journal.restore(_replayer(moto_app))
            counts = journal.compact(_items_of)
            restored = "" if report.empty else report.summary(*counts)
        except PersistError as exc:
            print(json.dumps({"error": str(exc)}), flush=True)
            os._exit(1)
        threading.Thread(target=journal.sync_forever, daemon=True).start()
    app = moto_app if journal is None else _journaled(moto_app, journal)
    asyncio.run(_serve(host, port, app, restored))
    if journal is not None:  # no request runs between the last snapshot and the exit
        with contextlib.suppress(Exception):
            journal.compact(_items_of)
        journal.close()
    os._exit(0)


async def _serve(host: str, port: int, app: Any, restored: str) -> None:
    """Serve `app` until stdin closes; reports the port (or the error) on stdout."""
    from .peers import OwnerCheck
    from .server.http11 import make_factory
    from .server.wsgi import WsgiApp

    loop = asyncio.get_running_loop()
    connections: set[Any] = set()
    wsgi = WsgiApp(app, host, port)
    try:
        # It holds the template's secrets (the token key): other local users are refused,
        # as on the gateway's ports (peers.py; the emulator already said if it cannot tell).
        factory = make_factory(wsgi, connections, MAX_BODY, owners=OwnerCheck(announce=False))
        server = await loop.create_server(factory, host, port)
    except OSError as exc:
        print(json.dumps({"error": f"cannot listen on {host}:{port}: {exc.strerror}"}),
              flush=True)
        os._exit(1)
    wsgi.server_port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": wsgi.server_port, "restored": restored}), flush=True)
    closed = loop.create_future()
    # A thread, not a reader on the loop: stdin may be a file or a terminal, not only a pipe.
    threading.Thread(target=_until_eof, args=(loop, closed), daemon=True).start()
    await closed
    server.close()
    for connection in list(connections):
        connection.close()


def _until_eof(loop: asyncio.AbstractEventLoop, closed: asyncio.Future[None]) -> None:
    with contextlib.suppress(Exception):
        sys.stdin.read()
    with contextlib.suppress(RuntimeError):  # the loop is already gone
        loop.call_soon_threadsafe(lambda: closed.done() or closed.set_result(None))


def _journaled(moto_app: Any, journal: Any) -> Any:
    """moto's app, with every DynamoDB request that changed state journaled before its
    answer leaves."""
    from .persistence import changes_state

    def app(environ: Any, start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(DYNAMODB_TARGET):
            return moto_app(environ, start_response)
        action = target[len(DYNAMODB_TARGET):]
        if not changes_state(action):
            return moto_app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        status: list[str] = []

        def capture(line: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(line)
            return start_response(line, headers, exc_info)

        answer = list(moto_app(environ, capture))
        if status and status[0].startswith("2"):
            journal.record(_region(environ), action, body, _items_of)
        return answer

    return app


def _dispatcher() -> Any:
    """moto's WSGI app, which picks a service's app by the request's host (or signature)."""
    from moto.server import DomainDispatcherApplication, create_backend_app

    class Dispatcher(DomainDispatcherApplication):  # type: ignore[misc]
        """Remembers which backend serves a host: moto finds out by listing its package's
        directories (a stat each) on every request, half its time on a PutItem."""

        KNOWN_HOSTS = 1024  # hosts carry the client's region: bounded

        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self.known: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            try:
                return self.known[host]
            except KeyError:
                backend = super().get_backend_for_host(host)
                if len(self.known) < self.KNOWN_HOSTS:
                    self.known[host] = backend
                return backend

    return Dispatcher()


def _region(environ: Any) -> str:
    """The region of a SigV4 request: `Credential=AKID/date/REGION/service/aws4_request`."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    try:
        return authorization.split("Credential=", 1)[1].split("/")[2]
    except IndexError:
        return "us-east-1"


def _replayer(moto_app: Any) -> Any:
    """A `persistence.Call` that sends a request straight into moto's WSGI app."""
    from werkzeug.test import Client

    client = Client(moto_app)

    def call(region: str, action: str, body: dict[str, Any]) -> int:
        headers = {
            "Host": "127.0.0.1",
            "X-Amz-Target": DYNAMODB_TARGET + action,
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20000101/"
                             f"{region}/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
        }
        return client.post("/", headers=headers, data=json.dumps(body)).status_code

    return call


def _items_of(region: str, name: str) -> list[dict[str, Any]]:
    """A `persistence.ItemsOf` over moto's model (moto's default account)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].tables.get(name)
    return [] if table is None else [item.to_json()["Attributes"] for item in table.all_items()]


class EmbeddedMoto:
    """A moto server in a child process. Use `with`, `async with`, or start()/stop().

    `port` 0 picks a free port at the first start; a restart reuses the same port, so the
    endpoint the workers were given stays valid.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 persist: Path | None = None, python: str = sys.executable,
                 startup_timeout: float = 60.0, lock_timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.persist = persist
        self.python = python
        self.startup_timeout = startup_timeout
        self.lock_timeout = lock_timeout  # how long to wait for a previous server's `persist`
        self.process: subprocess.Popen[str] | None = None
        self.restored = ""  # what the last start restored from `persist`

    @property
    def endpoint_url(self) -> str:
        if self.process is None:
            raise RuntimeError("the embedded moto server is not running")
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Start the server and wait until it answers; returns `endpoint_url`."""
        if self.process is not None:
            return self.endpoint_url
        self.process = subprocess.Popen(
            [self.python, "-c", _CHILD, self.host, str(self.port), str(self.persist or ""),
             str(self.lock_timeout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
            # moto answers every Origin with CORS by default: any web page in the developer's
            # browser could then read the tables and the template's secrets.
            env={**os.environ, "MOTO_DISABLE_GLOBAL_CORS": "true"},
        )
        try:
            assert self.process.stdout is not None
            line = _readline(self.process.stdout, self.startup_timeout)
            try:
                said = json.loads(line)
            except ValueError:
                said = {"error": f"moto server did not start (said {line!r})"}
            if "error" in said:
                raise RuntimeError(said["error"])
            self.port = int(said["port"])
            self.restored = said.get("restored", "")
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self.endpoint_url

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://{self.host}:{self.port}/moto-api/"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answered
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto server on {url} does not answer") from None
                time.sleep(0.05)

    def exit_status(self) -> int | None:
        """None while running (or stopped on purpose); the exit status if it died."""
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server (it writes its last snapshot first) and wait. Safe to call twice."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()  # the child exits at EOF
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> EmbeddedMoto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedMoto:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


def _readline(stream: Any, timeout: float) -> str:
    """One line from a pipe, or a RuntimeError after `timeout` seconds."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise RuntimeError(f"moto server did not start within {timeout} s")
    return stream.readline()
