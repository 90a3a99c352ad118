"""Pushing frames to connections through the API Gateway Management API.

`POST @connections/{id}` is one HTTP call per recipient, so a room's fan-out runs the posts
concurrently on a bounded thread pool that shares ONE boto3 client (its connection pool is
sized to the thread pool: botocore's `max_pool_connections`). Recipients come page by page
from the membership Query; a page's posts are drained by the calling thread and up to
`workers - 1` pool threads while the next page is read, so at most `workers` posts are in
flight and two pages are held: memory stays flat for rooms of any size. The payload is
encoded once.

A `GoneException` (410) means the connection no longer exists
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html)
— or that it does not exist *yet*: API Gateway answers 410 to a connection whose `$connect` has
not finished (re:Post, "How do I troubleshoot 410 GoneException errors with Amazon API Gateway
WebSocket APIs?"; docs/fidelity.md G1). So a 410 for a recipient whose membership says it
connected less than `CONNECTING_WINDOW_MS` ago deletes nothing: the frame is just not
delivered (the client gets the room's history when it joins). `$connect` cannot still be
running after that window: API Gateway's integration timeout is 29 s ("Amazon API Gateway
quotas", https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html). A 410 for
an older connection, or one whose connect time is unknown (a reply, an old membership), deletes
the connection and its memberships. The decision uses the `connectedAt` the membership Query
already returned: no extra read. Any other error is logged and the fan-out goes on.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from realtime.models import _Frame
from realtime.store import Store

logger = Logger(child=True)

POOL_SIZE = 16
SENT, GONE, FAILED = "sent", "gone", "failed"
Recipient = tuple[str, int | None]  # connection id, connectedAt (epoch ms) if known
# 29 s integration timeout (a $connect cannot run longer) plus a second of clock skew.
CONNECTING_WINDOW_MS = 30_000


def epoch_ms() -> int:
    return time.time_ns() // 1_000_000


def still_connecting(connected_at: int | None, now_ms: int) -> bool:
    """Whether a 410 for a connection that connected at `connected_at` (epoch ms) may mean
    "its $connect has not finished" rather than "it is gone"."""
    return connected_at is not None and now_ms - connected_at < CONNECTING_WINDOW_MS


@functools.lru_cache(maxsize=8)
def management_client(endpoint: str) -> Any:
    """One client per Management API endpoint (`https://{domainName}/{stage}`), reused."""
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        config=Config(
            max_pool_connections=POOL_SIZE,
            retries={"mode": "standard", "max_attempts": 2},
            connect_timeout=2,
            read_timeout=5,
        ),
    )


@functools.lru_cache(maxsize=8)
def fanout_for(endpoint: str, store: Store) -> Fanout:
    """One Fanout per endpoint and store, so warm invocations reuse its client and pool."""
    return Fanout(management_client(endpoint), store)


def endpoint_of(request_context: dict[str, Any]) -> str:
    """The Management API endpoint of the API a WebSocket event came through."""
    return f"https://{request_context['domainName']}/{request_context['stage']}"


@dataclass
class FanoutResult:
    recipients: int = 0
    sent: int = 0
    gone: list[str] = field(default_factory=list)  # deleted
    failed: int = 0
    connecting: list[str] = field(default_factory=list)  # 410 while connecting: kept


class Fanout:
    def __init__(
        self,
        client: Any,
        store: Store,
        *,
        workers: int = POOL_SIZE,
        now_ms: Callable[[], int] = epoch_ms,
    ) -> None:
        self.client = client
        self.store = store
        self.workers = workers
        self.now_ms = now_ms
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def post(self, connection_id: str, data: bytes) -> str:
        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=data)
            return SENT
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code == "GoneException":
                return GONE
            logger.warning("post_to_connection failed", connection_id=connection_id, code=code)
            return FAILED
        except (BotoCoreError, Exception) as error:  # noqa: BLE001 - one bad post must not stop the rest
            logger.warning(
                "post_to_connection failed", connection_id=connection_id, error=repr(error)
            )
            return FAILED

    def send(self, connection_id: str, frame: _Frame) -> FanoutResult:
        """One frame to one connection (a reply), with the same Gone clean-up."""
        return self.to_connections([connection_id], frame)

    def to_target(self, target: str, frame: _Frame, *, exclude: Iterable[str] = ()) -> FanoutResult:
        """`frame` to every member of `target` (`room#…`/`channel#…`) except `exclude`."""
        pages = self.store.recipient_pages(target)
        skip = set(exclude)
        if skip:
            pages = ([r for r in page if r[0] not in skip] for page in pages)
        return self._run(pages, frame.encode())

    def to_connections(self, connection_ids: Iterable[str], frame: _Frame) -> FanoutResult:
        return self._run([[(c, None) for c in connection_ids]], frame.encode())

    def _run(self, pages: Iterable[list[Recipient]], data: bytes) -> FanoutResult:
        result = FanoutResult()
        now_ms = None
        for page in self._read_ahead(pages):
            result.recipients += len(page)
            missed = self._post_page(page, data)
            result.sent += len(page) - len(missed)
            for connection_id, connected_at, outcome in missed:
                if outcome == GONE:
                    now_ms = self.now_ms() if now_ms is None else now_ms
                    if still_connecting(connected_at, now_ms):
                        result.connecting.append(connection_id)
                    else:
                        result.gone.append(connection_id)
                else:
                    result.failed += 1
        for connection_id in result.gone:
            try:
                self.store.remove_connection(connection_id)
            except ClientError:
                logger.exception("could not remove a gone connection", connection_id=connection_id)
        return result

    def _read_ahead(self, pages: Iterable[list[Recipient]]) -> Iterator[list[Recipient]]:
        """`pages`, the next one read by a pool thread while the caller posts this one: a
        room larger than a page gets its first posts after one page's Query, not the whole
        room's, and the Query of the rest overlaps the posts. Two pages held at most."""
        pages = iter(pages)
        page = next(pages, None)
        while page is not None:
            following = self._pool().submit(next, pages, None)
            yield page
            page = following.result()

    def _post_page(self, page: list[Recipient], data: bytes) -> list[tuple[str, int | None, str]]:
        """Post `data` to every recipient of `page`; those not SENT, with their outcome.

        The calling thread and up to `workers - 1` pool threads take recipients from one
        shared iterator until it is empty: a few tasks per page, not one future per post,
        and a lone recipient (a reply) is posted by the caller, with no thread hand-off."""
        recipients = iter(page)
        lock = threading.Lock()

        def drain() -> list[tuple[str, int | None, str]]:
            missed = []
            while True:
                with lock:
                    recipient = next(recipients, None)
                if recipient is None:
                    return missed
                outcome = self.post(recipient[0], data)
                if outcome != SENT:
                    missed.append((*recipient, outcome))

        helpers = [self._pool().submit(drain) for _ in range(min(self.workers, len(page)) - 1)]
        missed = drain()
        for helper in helpers:
            missed += helper.result()
        return missed

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="fanout")
            return self._executor


def record(metrics: Any, results: Iterable[FanoutResult | None]) -> None:
    """Fan-out size, gone connections (deleted), 410s from connections still connecting (kept)
    and failed posts as CloudWatch metrics (Powertools)."""
    from aws_lambda_powertools.metrics import MetricUnit

    recipients = gone = connecting = failed = 0
    for result in results:
        if result is not None:
            recipients += result.recipients
            gone += len(result.gone)
            connecting += len(result.connecting)
            failed += result.failed
    metrics.add_metric(name="FanoutRecipients", unit=MetricUnit.Count, value=recipients)
    metrics.add_metric(name="GoneConnections", unit=MetricUnit.Count, value=gone)
    metrics.add_metric(name="GoneWhileConnecting", unit=MetricUnit.Count, value=connecting)
    metrics.add_metric(name="FailedPosts", unit=MetricUnit.Count, value=failed)
