"""DynamoDB tables for the local stack: provisioning, seeding, TTL.

(The embedded moto server that usually serves them is `moto_server.EmbeddedMoto`, also
exported here as `EmbeddedDynamoDB`.)

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
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from .model import Application, Table
from .moto_server import LOCAL_CREDENTIALS
from .moto_server import EmbeddedMoto as EmbeddedDynamoDB

__all__ = ["LOCAL_CREDENTIALS", "EmbeddedDynamoDB", "TtlSweeper", "provision_tables", "seed"]

log = logging.getLogger(__name__)


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
    only: Iterable[str] | None = None,
) -> dict[str, int]:
    """Put the items of `seed_file` (`{"TableLogicalId": [items…]}`); returns counts.

    `only`: the logical ids of the tables to seed (the ones just created, so a seed never
    overwrites data kept from an earlier run); None seeds every table in the file.
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
    wanted = None if only is None else set(only)
    for logical_id, items in data.items():
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ValueError(f"{seed_file}: {logical_id} must be a list of objects")
        if wanted is not None and logical_id not in wanted:
            continue
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
