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


def serve_moto(host: str, port: int, persist: str | None = None,
               lock_timeout: float = 30.0) -> None:
    """Run moto's server in this process (the embedded server's child process).

    DynamoDB isolates each request, and TransactWriteItems with its conditions is atomic;
    moto's backend takes no locks, so two threads can both pass a condition. The server keeps
    its threads (HTTP/1.1 keep-alive needs them) but lets one request at a time into moto;
    the journal is written inside that turn, before the answer is sent.
    """
    import threading

    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    from .peers import OwnerCheck
    from .persistence import Journal, PersistError, changes_state

    moto_app = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()
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

    # It holds the template's secrets (the token key): other local users are refused, as on
    # the gateway's ports (peers.py).
    owners = OwnerCheck()

    def app(environ: Any, start_response: Any) -> Any:
        stranger = owners.stranger(
            (environ.get("REMOTE_ADDR", ""), int(environ.get("REMOTE_PORT") or 0)),
            (host, int(environ.get("SERVER_PORT") or 0)))
        if stranger is not None:
            refusal = json.dumps({"__type": "AccessDeniedException",
                                  "message": owners.explain(stranger)}).encode()
            start_response("403 Forbidden", [("Content-Type", "application/json"),
                                             ("Content-Length", str(len(refusal)))])
            return [refusal]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        with one_at_a_time:
            if journal is None or not target.startswith(DYNAMODB_TARGET):
                return list(moto_app(environ, start_response))
            action = target[len(DYNAMODB_TARGET):]
            if not changes_state(action):
                return list(moto_app(environ, start_response))
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

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:  # one line per request: noise
            pass

    try:
        server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)
    except OSError as exc:
        print(json.dumps({"error": f"cannot listen on {host}:{port}: {exc.strerror}"}),
              flush=True)
        os._exit(1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1], "restored": restored}), flush=True)
    try:
        sys.stdin.read()
    finally:
        if journal is not None:
            with one_at_a_time:  # no request between the last snapshot and the exit
                with contextlib.suppress(Exception):
                    journal.compact(_items_of)
                journal.close()
        os._exit(0)


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
