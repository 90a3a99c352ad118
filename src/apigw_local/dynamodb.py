"""DynamoDB for the local stack: an embedded moto server, table provisioning, seeding, TTL.

- `EmbeddedDynamoDB` runs moto's server in its own process (so its threads never compete
  with the gateway's event loop for the GIL) on 127.0.0.1 and a free port. The child
  watches its stdin: when the parent closes it (stop) or dies (even by SIGKILL), the
  child exits, so no server outlives the emulator. It runs in its own session, so a Ctrl-C
  in the terminal reaches only the parent, which then stops it.
- `provision_tables` creates the template's tables on any endpoint (moto, DynamoDB Local,
  LocalStack, AWS) when missing, waits until they are ACTIVE and enables TTL.
- `seed` loads items from a JSON file keyed by table logical id.
- `TtlSweeper` deletes expired items periodically: moto never expires items, DynamoDB does
  (within a few days of expiry, per "Time to Live" in the DynamoDB developer guide; locally
  the sweep is prompt, which is within what DynamoDB allows).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from .model import Application, Table

__all__ = ["EmbeddedDynamoDB", "TtlSweeper", "provision_tables", "seed"]

log = logging.getLogger(__name__)

# The child: moto's server on a free port; it reports the port and lives until stdin closes
# (the parent stopped us, or died).
_CHILD = """
import sys
from apigw_local.dynamodb import serve_moto
serve_moto(sys.argv[1], int(sys.argv[2]))
"""


def serve_moto(host: str, port: int) -> None:
    """Run moto's server in this process (the embedded DynamoDB's child process).

    DynamoDB isolates each request, and TransactWriteItems with its conditions is atomic;
    moto's backend takes no locks, so two threads can both pass a condition. The server keeps
    its threads (HTTP/1.1 keep-alive needs them) but lets one request at a time into moto.
    """
    import threading

    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    moto_app = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()

    def app(environ: Any, start_response: Any) -> Any:
        with one_at_a_time:
            return list(moto_app(environ, start_response))

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:  # one line per request: noise
            pass

    server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    try:
        sys.stdin.read()
    finally:
        os._exit(0)


LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class EmbeddedDynamoDB:
    """A moto server in a child process. Use `with`, `async with`, or start()/stop()."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 python: str = sys.executable, startup_timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.python = python
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[str] | None = None

    @property
    def endpoint_url(self) -> str:
        if self.process is None:
            raise RuntimeError("the embedded DynamoDB is not running")
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Start the server and wait until it answers; returns `endpoint_url`."""
        if self.process is not None:
            return self.endpoint_url
        self.process = subprocess.Popen(
            [self.python, "-c", _CHILD, self.host, str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            assert self.process.stdout is not None
            line = _readline(self.process.stdout, self.startup_timeout)
            if not line.strip().isdigit():
                raise RuntimeError(f"moto server did not start (said {line!r})")
            self.port = int(line)
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

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server and wait for its process. Safe to call twice."""
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

    def __enter__(self) -> EmbeddedDynamoDB:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedDynamoDB:
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


def _client(endpoint_url: str | None, region: str, credentials: Mapping[str, str] | None):
    return boto3.session.Session().client(
        "dynamodb", endpoint_url=endpoint_url, region_name=region, **(credentials or {})
    )


def provision_tables(
    endpoint_url: str | None,
    tables: Iterable[Table],
    *,
    region: str = "us-east-1",
    credentials: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> dict[str, str]:
    """Create the tables that are missing, wait until ACTIVE, enable TTL. Idempotent.

    `credentials`: boto3 client arguments (aws_access_key_id, …); None uses boto3's usual
    chain. Returns {logical id: "created" | "exists"}.
    """
    client = _client(endpoint_url, region, credentials)
    outcome: dict[str, str] = {}
    for table in tables:
        try:
            client.create_table(**table.create_table)
            outcome[table.logical_id] = "created"
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            outcome[table.logical_id] = "exists"
    for table in tables:
        _wait_active(client, table.name, timeout)
        if table.ttl_attribute:
            current = client.describe_time_to_live(TableName=table.name)[
                "TimeToLiveDescription"
            ]
            if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                client.update_time_to_live(
                    TableName=table.name,
                    TimeToLiveSpecification={
                        "Enabled": True, "AttributeName": table.ttl_attribute,
                    },
                )
    return outcome


def _wait_active(client: Any, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        status = client.describe_table(TableName=name)["Table"]["TableStatus"]
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} still {status} after {timeout} s")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def seed(
    endpoint_url: str | None,
    app: Application,
    seed_file: Path,
    *,
    region: str | None = None,
    credentials: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Put the items of `seed_file` (`{"TableLogicalId": [items…]}`); returns counts.

    Items are plain JSON: integers stay integers, other numbers become `Decimal`, as the
    boto3 resource needs them.
    """
    try:
        data = json.loads(Path(seed_file).read_text(encoding="utf-8"), parse_float=Decimal)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{seed_file}: cannot read seed data: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{seed_file}: expected {{\"TableLogicalId\": [items]}}")
    unknown = sorted(set(data) - set(app.tables))
    if unknown:
        raise ValueError(f"{seed_file}: no table {', '.join(unknown)} in the template "
                         f"(tables: {', '.join(sorted(app.tables)) or 'none'})")
    resource = boto3.session.Session().resource(
        "dynamodb", endpoint_url=endpoint_url, region_name=region or app.region,
        **(credentials or {}),
    )
    counts = {}
    for logical_id, items in data.items():
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ValueError(f"{seed_file}: {logical_id} must be a list of objects")
        table = resource.Table(app.tables[logical_id].name)
        with table.batch_writer() as batch:
            for item in items:
                batch.put_item(Item=item)
        counts[logical_id] = len(items)
    return counts


class TtlSweeper:
    """Deletes items whose TTL attribute (epoch seconds) has passed, every `interval` s.

    A Scan per table and sweep: fine for local data, not meant for large tables.
    """

    def __init__(self, endpoint_url: str | None, tables: Iterable[Table], *,
                 region: str = "us-east-1", credentials: Mapping[str, str] | None = None,
                 interval: float = 60.0) -> None:
        self.tables = [t for t in tables if t.ttl_attribute]
        self.interval = interval
        self._resource = boto3.session.Session().resource(
            "dynamodb", endpoint_url=endpoint_url, region_name=region, **(credentials or {})
        )
        self._task: asyncio.Task[None] | None = None

    def sweep_once(self, now: float | None = None) -> int:
        """Delete the expired items now; returns how many."""
        now = time.time() if now is None else now
        deleted = 0
        for table in self.tables:
            resource_table = self._resource.Table(table.name)
            keys = [k["AttributeName"] for k in table.create_table["KeySchema"]]
            kwargs: dict[str, Any] = {
                "FilterExpression": Attr(table.ttl_attribute).lt(Decimal(int(now))),
                "ProjectionExpression": ", ".join(f"#k{i}" for i in range(len(keys))),
                "ExpressionAttributeNames": {f"#k{i}": k for i, k in enumerate(keys)},
            }
            while True:
                page = resource_table.scan(**kwargs)
                with resource_table.batch_writer() as batch:
                    for item in page.get("Items", []):
                        batch.delete_item(Key={k: item[k] for k in keys})
                        deleted += 1
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return deleted

    def start(self) -> None:
        if self._task is None and self.tables:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                count = await asyncio.to_thread(self.sweep_once)
                if count:
                    log.info("TTL sweep: %d expired item(s) deleted", count)
            except Exception:
                log.exception("TTL sweep failed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
