"""The connection registry and the Management API's semantics (state only; no I/O).

Follows "Use @connections commands in your backend service" in the API Gateway developer guide
and botocore's `apigatewaymanagementapi` model (PostToConnection, GetConnection,
DeleteConnection and their errors). A connection is CONNECTING while `$connect` runs — posting to
it then answers 410 GoneException, as in AWS — OPEN once the handshake completed, and CLOSED
afterwards. The socket side is reached only through the `Transport` protocol, so the registry is
tested with a fake transport.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from .events import ConnectionInfo, aws_id, now_ms
from .quotas import DEFAULT_QUOTAS, Quotas


class State(enum.Enum):
    CONNECTING = "CONNECTING"
    OPEN = "OPEN"
    CLOSED = "CLOSED"


class Transport(Protocol):
    """What the registry needs from a connection's socket."""

    def send_text(self, data: str) -> bool:
        """Queue one text frame; False when the client's buffer is full (it was closed)."""
        ...

    def close(self, code: int, reason: str) -> None: ...


class ManagementError(Exception):
    """An error answer of the Management API, with the type every AWS SDK maps to a class."""

    def __init__(self, status: int, error_type: str, message: str | None = None) -> None:
        super().__init__(message or error_type)
        self.status = status
        self.error_type = error_type
        self.message = message


def gone(connection_id: str) -> ManagementError:
    return ManagementError(410, "GoneException", None)


def payload_too_large(size: int, limit: int) -> ManagementError:
    return ManagementError(
        413, "PayloadTooLargeException",
        f"Message payload of {size} bytes is larger than the {limit} bytes allowed",
    )


def bad_request(message: str) -> ManagementError:
    return ManagementError(400, "BadRequestException", message)


def client_buffer_full() -> ManagementError:
    # botocore's model: LimitExceededException is also "the WebSocket client side buffer is
    # full".
    return ManagementError(429, "LimitExceededException", "Client side buffer is full")


_ID = re.compile(r"^[A-Za-z0-9+/_\-]{15}=$")


@dataclass(eq=False)
class Connection:
    info: ConnectionInfo
    transport: Transport | None = None
    state: State = State.CONNECTING
    last_active_ms: int = 0  # epoch ms of the latest frame in either direction
    opened_monotonic: float = field(default_factory=time.monotonic)
    last_active_monotonic: float = field(default_factory=time.monotonic)
    close_code: int | None = None
    close_reason: str = ""

    @property
    def id(self) -> str:
        return self.info.connection_id

    def touch(self) -> None:
        self.last_active_ms = now_ms()
        self.last_active_monotonic = time.monotonic()


def iso8601_ms(epoch_ms: int) -> str:
    dt = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


class ConnectionRegistry:
    """All connections of one gateway, by id; the Management API's operations act on it."""

    def __init__(self, quotas: Quotas = DEFAULT_QUOTAS) -> None:
        self.quotas = quotas
        self._connections: dict[str, Connection] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._connections.values()))

    def get(self, connection_id: str) -> Connection | None:
        return self._connections.get(connection_id)

    def new_id(self) -> str:
        while True:
            cid = aws_id()
            if cid not in self._connections:
                return cid

    def add(self, info: ConnectionInfo, transport: Transport | None = None) -> Connection:
        """Register a connection in CONNECTING state (its `$connect` has not answered yet)."""
        conn = Connection(info=info, transport=transport, last_active_ms=info.connected_at)
        self._connections[info.connection_id] = conn
        return conn

    def open(self, connection_id: str) -> Connection:
        conn = self._connections[connection_id]
        conn.state = State.OPEN
        conn.touch()
        return conn

    def remove(self, connection_id: str, code: int | None = None, reason: str = "") -> None:
        """Forget a connection (after its socket closed)."""
        conn = self._connections.pop(connection_id, None)
        if conn is not None:
            conn.state = State.CLOSED
            if conn.close_code is None:
                conn.close_code, conn.close_reason = code, reason

    # --- Management API ------------------------------------------------------------------

    def _open_connection(self, connection_id: str) -> Connection:
        # A malformed id is gone too: "the connectionID isn't valid" is one of the causes AWS's
        # knowledge-center article on 410 GoneException lists.
        if not _ID.match(connection_id):
            raise gone(connection_id)
        conn = self._connections.get(connection_id)
        if conn is None or conn.state is not State.OPEN:
            raise gone(connection_id)
        return conn

    def post(self, connection_id: str, data: bytes) -> None:
        """PostToConnection: send `data` as one text frame."""
        if len(data) > self.quotas.management_data_bytes:
            raise payload_too_large(len(data), self.quotas.management_data_bytes)
        conn = self._open_connection(connection_id)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            # API Gateway sends Data as a text frame; bytes that are not UTF-8 cannot be one.
            raise bad_request("Data must be UTF-8 text") from None
        assert conn.transport is not None
        if not conn.transport.send_text(text):
            raise client_buffer_full()
        conn.touch()

    def describe(self, connection_id: str) -> dict[str, Any]:
        """GetConnection's JSON body (timestamps ISO 8601, as botocore's model declares)."""
        conn = self._open_connection(connection_id)
        return {
            "connectedAt": iso8601_ms(conn.info.connected_at),
            "identity": {"sourceIp": conn.info.source_ip, "userAgent": conn.info.user_agent},
            "lastActiveAt": iso8601_ms(conn.last_active_ms),
        }

    def delete(self, connection_id: str) -> None:
        """DeleteConnection: close the socket (1000); `$disconnect` follows."""
        conn = self._open_connection(connection_id)
        conn.state = State.CLOSED
        # AWS's $disconnect after DeleteConnection reports 1000 "Connection Closed Normally"
        # (API Gateway execution logs quoted in boto/boto3#3789).
        conn.close_code, conn.close_reason = 1000, "Connection Closed Normally"
        assert conn.transport is not None
        conn.transport.close(1000, "")

