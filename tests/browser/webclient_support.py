"""Helpers shared by the browser tests (kept out of conftest.py so tests can import them)."""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
DOC_SCREENSHOTS = ROOT / "docs" / "screenshots"


@dataclass
class Http:
    """A tiny client of the app's HTTP API (urllib; no extra dependency)."""

    base: str
    token: str

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base.rstrip('/')}{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return res.status, json.loads(res.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")


def unique(prefix: str) -> str:
    """A name no other test uses (the app's state lives for the whole session)."""
    return f"{prefix}-{secrets.token_hex(3)}"


@dataclass
class Tab:
    """A page in its own browser context (own sessionStorage), with what it logged."""

    page: Any
    dialogs: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


def save_screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """Save under test-output/screenshots/; with UPDATE_DOC_SCREENSHOTS=1 (`make screenshots`)
    also into docs/screenshots/ for the README — a plain test run leaves tracked files alone."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("UPDATE_DOC_SCREENSHOTS") == "1":
        DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (DOC_SCREENSHOTS / name).write_bytes(path.read_bytes())
    return path


# --- the app's state, seen from outside ------------------------------------------------

# moto and apigw-local accept any credentials; fixed ones keep boto3 from looking for real ones.
_LOCAL = {
    "region_name": "us-east-1",
    "aws_access_key_id": "local",
    "aws_secret_access_key": "local",
}


def connection_ids(app: Any, user: str) -> list[str]:
    """The ids of `user`'s open connections, read from the app's Connections table.

    A test-only Scan (the app itself never scans): the client cannot know its connection id,
    API Gateway does not tell it.
    """
    import boto3
    from boto3.dynamodb.conditions import Attr

    table = boto3.resource("dynamodb", endpoint_url=app.dynamodb, **_LOCAL).Table(
        app.tables["ConnectionsTable"]
    )
    items = table.scan(FilterExpression=Attr("userId").eq(user), ConsistentRead=True)["Items"]
    return sorted(item["connectionId"] for item in items)


def delete_connection(app: Any, connection_id: str) -> None:
    """Close a connection from the server side: the Management API's DeleteConnection."""
    import boto3

    client = boto3.client("apigatewaymanagementapi", endpoint_url=app.connections, **_LOCAL)
    client.delete_connection(ConnectionId=connection_id)
