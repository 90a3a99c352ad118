"""Where the functions' AWS calls go, and the template's tables there.

Three backends, chosen by the CLI:

- **embedded** (the default): moto's server in a child process (`moto_server.EmbeddedMoto`).
  Workers get `AWS_ENDPOINT_URL` pointing at it, so every service moto emulates (DynamoDB,
  Secrets Manager, SSM, …) answers locally, with local dummy credentials. With `persist`,
  DynamoDB's state survives restarts (persistence.py). A watchdog notices when the server
  dies, says so in one line and starts it again on the same port, from the persisted state.
- **an endpoint** (`--dynamodb-endpoint URL`): DynamoDB Local, LocalStack or AWS, for
  DynamoDB only (`AWS_ENDPOINT_URL_DYNAMODB`).
- **LocalStack** (`--localstack`): the edge URL as `localstack-client` resolves it
  (`AWS_ENDPOINT_URL`, else `LOCALSTACK_HOST`, else `localhost:$EDGE_PORT`); workers get it as
  `AWS_ENDPOINT_URL`, so every service goes there.

An `AWS_ENDPOINT_URL` in the emulator's own environment is passed to the workers as it is
(it wins over the embedded server's for services other than DynamoDB). Missing tables are
created on the backend; the seed goes only into tables that were just created.

Credentials: a local backend needs none from the user (dummy ones are used, as LocalStack and
moto accept any); an AWS endpoint without credentials stops the start with one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from .model import Application

__all__ = ["Backend", "BackendError", "localstack_endpoint"]

log = logging.getLogger("apigw_local")

# What workers sign with when the user has no credentials and the backend is local.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# A dead embedded server is restarted at most this many times within a minute.
MAX_RESTARTS_PER_MINUTE = 3


class BackendError(RuntimeError):
    """The backend cannot be used; the message is one line for the user."""


def localstack_endpoint() -> str:
    """LocalStack's edge URL, as `localstack-client` resolves it (it honours AWS_ENDPOINT_URL
    and LOCALSTACK_HOST); EDGE_PORT, LocalStack's older variable, still sets the port."""
    from localstack_client.config import get_service_endpoint

    host = os.environ.get("LOCALSTACK_HOST")
    if not host and os.environ.get("EDGE_PORT"):
        host = f"localhost:{os.environ['EDGE_PORT']}"
    try:
        url = get_service_endpoint("dynamodb", localstack_host=host)
    except RuntimeError as exc:  # a LOCALSTACK_HOST it cannot parse
        raise BackendError(f"--localstack: {exc}") from None
    assert url is not None
    return url


def is_aws(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


def _has_credentials() -> bool:
    """Whether boto3 finds credentials, without asking an instance metadata service (which
    would take seconds to time out on a developer's machine)."""
    session = botocore.session.get_session()
    resolver = session.get_component("credential_provider")
    for name in ("iam-role", "container-role"):
        with contextlib.suppress(ValueError):
            resolver.remove(name)
    try:
        return session.get_credentials() is not None
    except BotoCoreError:
        return False


class Backend:
    """The chosen backend, its tables and what workers need to reach it."""

    def __init__(self, app: Application, *, endpoint: str | None = None,
                 localstack: bool = False, persist: Path | None = None, port: int = 0,
                 seed: Path | None = None, host: str = "127.0.0.1") -> None:
        if endpoint and localstack:
            raise BackendError("--dynamodb-endpoint and --localstack: choose one")
        self.app = app
        self.endpoint = endpoint
        self.localstack = localstack
        self.persist = persist
        self.port = port
        self.seed = seed
        self.host = host
        self.endpoint_url: str | None = None  # DynamoDB's endpoint (None: no tables)
        self.worker_env: dict[str, str] = {}
        self.failed = asyncio.Event()  # set when the embedded server cannot be kept alive
        self.failure = ""
        self._credentials: dict[str, str] | None = None  # boto3 arguments for our own calls
        self._server: Any = None  # EmbeddedMoto
        self._sweeper: Any = None
        self._watchdog: asyncio.Task[None] | None = None
        self._deaths: list[float] = []

    @property
    def embedded(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        user_endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if self.localstack:
            url = localstack_endpoint()
            self.endpoint_url = url
            self.worker_env["AWS_ENDPOINT_URL"] = url
            self._local_credentials(url)
        elif self.endpoint:
            self.endpoint_url = self.endpoint
            self.worker_env["AWS_ENDPOINT_URL_DYNAMODB"] = self.endpoint
            self._local_credentials(self.endpoint)
        elif self.app.tables or self.app.secrets:
            from .moto_server import LOCAL_CREDENTIALS, EmbeddedMoto

            self._server = EmbeddedMoto(host=self.host, port=self.port, persist=self.persist)
            try:
                url = await asyncio.to_thread(self._server.start)
            except RuntimeError as exc:
                self._server = None
                raise BackendError(f"embedded DynamoDB: {exc}") from None
            if self._server.restored:
                log.info("DynamoDB state restored from %s: %s", self.persist,
                         self._server.restored)
            self.endpoint_url = url
            self._credentials = dict(LOCAL_CREDENTIALS)
            self.worker_env.update(DUMMY_CREDENTIALS)
            self.worker_env["AWS_ENDPOINT_URL"] = url
            # These two stay on the server that holds the template's tables and secrets, even
            # when the user's own AWS_ENDPOINT_URL takes the other services elsewhere.
            self.worker_env["AWS_ENDPOINT_URL_DYNAMODB"] = url
            self.worker_env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = url
        if user_endpoint and not self.localstack:
            self.worker_env["AWS_ENDPOINT_URL"] = user_endpoint
        if not _has_credentials():
            # Handlers sign their @connections calls: give them something to sign with.
            for key, value in DUMMY_CREDENTIALS.items():
                self.worker_env.setdefault(key, value)
        if self.endpoint_url:
            await asyncio.to_thread(self._provision)
        if self._server is not None:
            self._start_sweeper()
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def provision(self, app: Application) -> None:
        """Create what a reloaded template adds (tables, secrets), as at start."""
        self.app = app
        if self.endpoint_url:
            await asyncio.to_thread(self._provision)

    def client(self, service: str) -> Any:
        """A boto3 client of the backend, with the credentials apigw-local uses there."""
        import boto3

        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint_url, region_name=self.app.region,
            **(self._credentials or {}))

    def _local_credentials(self, url: str) -> None:
        if _has_credentials():
            return
        if is_aws(url):
            raise BackendError(
                f"{url} is AWS and no AWS credentials were found: set AWS_PROFILE (or "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or use a local endpoint")
        # LocalStack, DynamoDB Local and moto accept any credentials.
        self._credentials = {"aws_access_key_id": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                             "aws_secret_access_key": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
        self.worker_env.update(DUMMY_CREDENTIALS)

    def _provision(self) -> None:
        """Create the missing tables, seed the ones just created; put the template's secrets
        where the functions will read them."""
        try:
            if self.app.tables:
                self._provision_tables()
            if self.app.secrets:
                self._provision_secrets()
        except NoCredentialsError:
            raise BackendError(f"{self.endpoint_url}: no AWS credentials found "
                               "(set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY)") from None
        except (BotoCoreError, ClientError) as exc:
            raise BackendError(f"{self.endpoint_url}: {exc}") from None

    def _provision_tables(self) -> None:
        from .dynamodb import provision_tables, seed

        tables = list(self.app.tables.values())
        outcome = provision_tables(self.endpoint_url, tables, region=self.app.region,
                                   credentials=self._credentials)
        created = [lid for lid, what in outcome.items() if what == "created"]
        kept = [lid for lid, what in outcome.items() if what == "exists"]
        if kept:
            log.info("tables kept with their data: %s", ", ".join(kept))
        if self.seed is not None and created:
            seed(self.endpoint_url, self.app, self.seed, credentials=self._credentials,
                 only=created)
        if self.seed is not None and kept:
            log.info("seed not applied to tables that already existed (%s)", ", ".join(kept))

    def _provision_secrets(self) -> None:
        if self.endpoint and not self.localstack:
            log.warning("secrets %s: --dynamodb-endpoint serves DynamoDB only; functions reach "
                        "Secrets Manager where AWS_ENDPOINT_URL (or AWS) points",
                        ", ".join(self.app.secrets))
            return
        from .secretsmanager import provision_secrets

        # Not persisted with the tables: the template is their source, at every (re)start.
        provision_secrets(self.endpoint_url, list(self.app.secrets.values()),
                          region=self.app.region, credentials=self._credentials)

    def _start_sweeper(self) -> None:
        from .dynamodb import TtlSweeper

        # moto never expires items by TTL: sweep them.
        self._sweeper = TtlSweeper(self.endpoint_url, self.app.tables.values(),
                                   region=self.app.region, credentials=self._credentials)
        self._sweeper.start()

    async def _watch(self, interval: float = 0.25) -> None:
        """Notice a dead embedded server; restart it on the same port, from its state."""
        while True:
            await asyncio.sleep(interval)
            status = self._server.exit_status()
            if status is None:
                continue
            pid = self._server.process.pid
            how = (f"killed by {signal.Signals(-status).name}" if status < 0
                   else f"exit status {status}")
            now = time.monotonic()
            self._deaths = [t for t in self._deaths if now - t < 60] + [now]
            if len(self._deaths) > MAX_RESTARTS_PER_MINUTE:
                self.failure = (f"the embedded DynamoDB died {len(self._deaths)} times within a "
                                f"minute (last: {how}); apigw-local stops")
                log.error("%s", self.failure)
                self.failed.set()
                return
            state = (f"from the state persisted in {self.persist}" if self.persist
                     else "EMPTY (without --persist its data is gone)")
            log.error("embedded DynamoDB (pid %d) died (%s); restarting it on %s %s",
                      pid, how, self.endpoint_url, state)
            try:
                await asyncio.to_thread(self._restart)
            except (RuntimeError, BackendError) as exc:
                self.failure = f"the embedded DynamoDB could not be restarted: {exc}"
                log.error("%s", self.failure)
                self.failed.set()
                return
            log.info("embedded DynamoDB is back on %s%s", self.endpoint_url,
                     f": {self._server.restored}" if self._server.restored else "")

    def _restart(self) -> None:
        self._server.stop()
        self._server.start()
        if self.app.tables:
            self._provision()

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        if self._sweeper is not None:
            with contextlib.suppress(Exception):
                await self._sweeper.stop()
            self._sweeper = None
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._server.stop)
            self._server = None
