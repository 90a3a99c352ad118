"""What the app's tests share: the template's tables, the four handlers imported under
distinct names, API Gateway events, tokens and a recording Management API client.

A module of its own (not conftest.py) so that tests import it by a unique name: every test
directory has a conftest, and `pytest tests/app tests/conformance` loads both.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "shared"
if str(LAYER) not in sys.path:
    sys.path.insert(0, str(LAYER))  # as the emulator and Lambda (/opt/python) do
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # for `scripts`; appended so it shadows nothing

from realtime import auth  # noqa: E402

SECRET = "test-secret-" + "x" * 40
DOMAIN = "abc123defg.execute-api.us-east-1.amazonaws.com"
STAGE = "dev"
ENDPOINT = f"https://{DOMAIN}/{STAGE}"
TABLE_ENV = {
    "ConnectionsTable": "CONNECTIONS_TABLE",
    "MembershipsTable": "MEMBERSHIPS_TABLE",
    "MessagesTable": "MESSAGES_TABLE",
    "TransactionsTable": "TRANSACTIONS_TABLE",
    "WeeklyIncomeTable": "WEEKLY_INCOME_TABLE",
    "IdempotencyTable": "IDEMPOTENCY_TABLE",
}


def template() -> dict[str, Any]:
    return yaml_parse((ROOT / "template.yaml").read_text())


def table_definitions() -> dict[str, dict[str, Any]]:
    return {
        lid: r["Properties"]
        for lid, r in template()["Resources"].items()
        if r["Type"] == "AWS::DynamoDB::Table"
    }


class FakeManagement:
    """A Management API client that records posts; `gone` ids answer GoneException (410),
    `broken` ids a 500."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        self.gone: set[str] = set()
        self.broken: set[str] = set()
        self._lock = threading.Lock()

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> dict:  # noqa: N803
        for ids, code, status in (
            (self.gone, "GoneException", 410),
            (self.broken, "InternalServerError", 500),
        ):
            if ConnectionId in ids:
                raise ClientError(
                    {
                        "Error": {"Code": code, "Message": code},
                        "ResponseMetadata": {"HTTPStatusCode": status},
                    },
                    "PostToConnection",
                )
        with self._lock:
            self.posts.append((ConnectionId, Data))
        return {}

    def frames(self, connection_id: str) -> list[dict]:
        return [json.loads(d) for c, d in self.posts if c == connection_id]

    def types(self, connection_id: str) -> list[str]:
        return [f["type"] for f in self.frames(connection_id)]

    def clear(self) -> None:
        self.posts.clear()


def load_function(name: str, path: Path | None = None) -> Any:
    """Import functions/<name>/app.py as module `fn_<name>` (all handlers are app.py)."""
    path = path or ROOT / "functions" / name / "app.py"
    module_name = f"fn_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class LambdaContext:
    function_name: str = "test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = ""

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


def ws_event(
    route: str,
    connection_id: str,
    *,
    body: str | None = None,
    query: dict[str, str] | None = None,
    binary: bool = False,
    connected_at: int = 1764095400000,
) -> dict:
    """An API Gateway WebSocket event. `connected_at` (epoch ms) defaults to an instant long
    past, so the connection counts as fully open; pass a recent one for a connecting client."""
    event: dict[str, Any] = {
        "requestContext": {
            "routeKey": route,
            "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
            "connectionId": connection_id,
            "domainName": DOMAIN,
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "apiId": "abc123defg",
            "connectedAt": connected_at,
            "requestTimeEpoch": connected_at,
        },
        "isBase64Encoded": binary,
    }
    if route == "$connect":
        event["queryStringParameters"] = query
        event["headers"] = {"Host": DOMAIN}
    if body is not None:
        event["body"] = base64.b64encode(body.encode()).decode() if binary else body
    return event


def http_event(
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    query: dict[str, str] | None = None,
    raw_body: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict:
    headers = {"content-type": "application/json", "host": "api.local", **(headers or {})}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    from urllib.parse import urlencode

    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": headers,
        "queryStringParameters": query,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "httpapi",
            "domainName": "api.local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:18:30:00 +0000",
            "timeEpoch": 1764095400000,
        },
        "body": raw_body
        if raw_body is not None
        else (json.dumps(body) if body is not None else None),
        "isBase64Encoded": False,
    }


def token(user: str = "alice", role: str = "user", **kwargs: Any) -> str:
    return auth.issue(SECRET, user, role, **kwargs)


class App:
    """The three WebSocket handlers wired to moto and the fake Management API."""

    def __init__(self, management: FakeManagement) -> None:
        self.management = management
        self.connect_fn = load_function("connect")
        self.message_fn = load_function("message")
        self.disconnect_fn = load_function("disconnect")

    def connect(
        self,
        connection_id: str,
        user: str = "alice",
        role: str = "user",
        room: str | None = None,
        token_value: str | None = "",
        connected_at: int | None = None,
    ) -> dict:
        query = {}
        if token_value is not None:
            query["token"] = token_value or token(user, role)
        if room:
            query["room"] = room
        extra = {} if connected_at is None else {"connected_at": connected_at}
        return self.connect_fn.lambda_handler(
            ws_event("$connect", connection_id, query=query or None, **extra), LambdaContext()
        )

    def send(self, connection_id: str, frame: Any, **kwargs: Any) -> dict:
        body = frame if isinstance(frame, str) else json.dumps(frame)
        return self.message_fn.lambda_handler(
            ws_event("$default", connection_id, body=body, **kwargs), LambdaContext()
        )

    def disconnect(self, connection_id: str) -> dict:
        return self.disconnect_fn.lambda_handler(
            ws_event("$disconnect", connection_id), LambdaContext()
        )


def table_items(dynamodb) -> dict[str, list[dict]]:
    """Every item of every table (tests only: a Scan is fine here)."""
    return {
        env: sorted(dynamodb.Table(os.environ[env]).scan()["Items"], key=repr)
        for env in TABLE_ENV.values()
    }
