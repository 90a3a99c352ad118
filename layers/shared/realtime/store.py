"""The DynamoDB adapter: every read and write of the app, and nothing else.

Tables (see template.yaml; docs/deploy.md explains the design):

| table         | key                          | indexes                                    |
|---------------|------------------------------|--------------------------------------------|
| Connections   | connectionId                 |                                            |
| Memberships   | target, connectionId         | byConnection: connectionId, target         |
| Messages      | room, id (ULID: time order)  |                                            |
| Transactions  | id                           | byStatus: status, createdAt;               |
|               |                              | byCreated: kind, createdAt                 |
| WeeklyIncome  | series ("weekly"), week      |                                            |

A membership's `target` is `room#<name>` or `channel#<name>`, so the recipients of a room or
channel are one paginated Query. A membership carries its connection's `connectedAt` (epoch ms,
API Gateway's `requestContext.connectedAt`) so that a fan-out can tell a connection still in
`$connect` from a stale one without another read; one stored by `$connect` (`&room=`) carries
`unannounced: true` until the first `join` announces it. A connection's `connectedAt` is the
same instant as ISO 8601. Cursors handed to clients are the last key of a page,
JSON in URL-safe base64: opaque to clients, checked on the way back in.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

WEEKLY_SERIES = "weekly"
TRANSACTION_KIND = "transaction"


class InvalidCursor(ValueError):
    """A `next`/`before` cursor that this store did not hand out (or for another query)."""


class NotFound(LookupError):
    pass


class AlreadyVerified(Exception):
    pass


def room_target(room: str) -> str:
    return f"room#{room}"


def channel_target(channel: str) -> str:
    return f"channel#{channel}"


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def encode_cursor(key: dict[str, Any]) -> str:
    raw = json.dumps(key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, keys: set[str], fixed: dict[str, str] | None = None) -> dict:
    """The key inside `cursor`; it must hold exactly `keys` (strings) and agree with `fixed`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("invalid cursor") from None
    if (
        not isinstance(key, dict)
        or set(key) != keys
        or not all(isinstance(v, str) and v for v in key.values())
    ):
        raise InvalidCursor("invalid cursor")
    for name, value in (fixed or {}).items():
        if key.get(name) != value:
            raise InvalidCursor("cursor belongs to another query")
    return key


def epoch_ms(iso: str) -> int | None:
    """`2026-11-25T18:30:00.123Z` → epoch milliseconds (None if it is not such a time)."""
    try:
        return round(datetime.fromisoformat(iso).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Connection:
    connection_id: str
    user: str
    role: str
    connected_at: int | None = None  # epoch ms


@dataclass(frozen=True)
class Member:
    connection_id: str
    user: str
    connected_at: int | None = None  # epoch ms; None on memberships stored without it


class Store:
    """All DynamoDB access. `page_size` caps the items of one recipients Query page."""

    def __init__(
        self,
        dynamodb: Any,
        *,
        connections: str,
        memberships: str,
        messages: str,
        transactions: str,
        weekly_income: str,
        page_size: int | None = None,
    ) -> None:
        self.client = dynamodb.meta.client
        self.connections = dynamodb.Table(connections)
        self.memberships = dynamodb.Table(memberships)
        self.messages = dynamodb.Table(messages)
        self.transactions = dynamodb.Table(transactions)
        self.weekly_income = dynamodb.Table(weekly_income)
        self.page_size = page_size

    @classmethod
    def from_env(cls, dynamodb: Any | None = None) -> Store:
        """Table names from the variables template.yaml sets on every function."""
        env = os.environ
        page = env.get("RECIPIENTS_PAGE_SIZE")
        return cls(
            dynamodb or boto3.resource("dynamodb"),
            connections=env.get("CONNECTIONS_TABLE", ""),
            memberships=env.get("MEMBERSHIPS_TABLE", ""),
            messages=env.get("MESSAGES_TABLE", ""),
            transactions=env.get("TRANSACTIONS_TABLE", ""),
            weekly_income=env.get("WEEKLY_INCOME_TABLE", ""),
            page_size=int(page) if page else None,
        )

    # --- connections ----------------------------------------------------------------------

    def put_connection(
        self, connection_id: str, user: str, role: str, connected_at: str, expires_at: int
    ) -> None:
        self.connections.put_item(
            Item={
                "connectionId": connection_id,
                "userId": user,
                "role": role,
                "connectedAt": connected_at,
                "expiresAt": expires_at,
            }
        )

    def get_connection(self, connection_id: str) -> Connection | None:
        item = self.connections.get_item(Key={"connectionId": connection_id}).get("Item")
        if item is None:
            return None
        return Connection(
            connection_id, item["userId"], item["role"], epoch_ms(item.get("connectedAt"))
        )

    def remove_connection(self, connection_id: str) -> list[str]:
        """Delete a connection and all its memberships; the targets it was a member of."""
        targets = self.targets_of(connection_id)
        for target in targets:
            self.remove_member(target, connection_id)
        self.connections.delete_item(Key={"connectionId": connection_id})
        return targets

    # --- memberships ----------------------------------------------------------------------

    def add_member(
        self,
        target: str,
        connection_id: str,
        user: str,
        expires_at: int,
        connected_at: int | None = None,
        *,
        announce: bool = True,
    ) -> bool:
        """Store the membership (idempotent); True if it is to be announced now.

        With `announce` (the `join` action) that is a new membership or one stored unannounced
        by `$connect`: one PutItem writes it without the mark and returns the old item, so of
        concurrent joins exactly one sees the mark. `announce=False` is for `$connect`'s
        membership of a brand-new connection: stored marked `unannounced`, and False.
        (PutItem, not UpdateItem: the functions' IAM policies allow no more.)
        """
        item: dict[str, Any] = {
            "target": target,
            "connectionId": connection_id,
            "userId": user,
            "expiresAt": expires_at,
        }
        if connected_at is not None:
            item["connectedAt"] = connected_at
        if not announce:
            self.memberships.put_item(Item={**item, "unannounced": True})
            return False
        old = self.memberships.put_item(Item=item, ReturnValues="ALL_OLD").get("Attributes")
        # `Attributes` is absent (AWS) or {} (moto) when there was no item.
        return not old or old.get("unannounced") is True

    def remove_member(self, target: str, connection_id: str) -> bool:
        """Delete the membership; True if there was one."""
        old = self.memberships.delete_item(
            Key={"target": target, "connectionId": connection_id}, ReturnValues="ALL_OLD"
        )
        return bool(old.get("Attributes"))  # absent (AWS) or {} (moto) when there was none

    def is_member(self, target: str, connection_id: str) -> bool:
        item = self.memberships.get_item(
            Key={"target": target, "connectionId": connection_id},
            ProjectionExpression="connectionId",
        )
        return "Item" in item

    def member_pages(self, target: str) -> Iterator[list[Member]]:
        """The members of `target`, one DynamoDB Query page at a time (never a Scan).

        No ProjectionExpression: a Query consumes capacity for whole items either way, and a
        membership item is a few attributes, so projecting would only add work per item."""
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("target").eq(target)}
        if self.page_size:
            kwargs["Limit"] = self.page_size
        while True:
            page = self.memberships.query(**kwargs)
            yield [
                Member(i["connectionId"], i["userId"], _int_or_none(i.get("connectedAt")))
                for i in page.get("Items", [])
            ]
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def targets_of(self, connection_id: str) -> list[str]:
        targets: list[str] = []
        kwargs: dict[str, Any] = {
            "IndexName": "byConnection",
            "KeyConditionExpression": Key("connectionId").eq(connection_id),
        }
        while True:
            page = self.memberships.query(**kwargs)
            targets.extend(i["target"] for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return targets
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- messages -------------------------------------------------------------------------

    def put_message(self, item: dict[str, Any]) -> None:
        self.messages.put_item(Item=item)

    def latest_messages(
        self, room: str, limit: int, before: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to `limit` messages older than the cursor, oldest first, and the next cursor."""
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("room").eq(room)}
        if before:
            kwargs["ExclusiveStartKey"] = decode_cursor(
                before, keys={"room", "id"}, fixed={"room": room}
            )
        items, more = self._newest_first(self.messages, kwargs, limit)
        cursor = encode_cursor({"room": room, "id": items[-1]["id"]}) if more else None
        return list(reversed(items)), cursor

    # --- transactions ---------------------------------------------------------------------

    def put_transaction(self, item: dict[str, Any]) -> None:
        self.transactions.put_item(
            Item={**item, "kind": TRANSACTION_KIND},
            ConditionExpression="attribute_not_exists(id)",
        )

    def get_transaction(self, transaction_id: str) -> dict[str, Any] | None:
        item = self.transactions.get_item(Key={"id": transaction_id}, ConsistentRead=True)
        return item.get("Item")

    def list_transactions(
        self, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first, by status (index byStatus) or all of them (index byCreated)."""
        partition = ("status", status) if status else ("kind", TRANSACTION_KIND)
        index = "byStatus" if status else "byCreated"
        kwargs: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": Key(partition[0]).eq(partition[1]),
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(
                cursor, keys={"id", partition[0], "createdAt"}, fixed=dict([partition])
            )
        items, more = self._newest_first(self.transactions, kwargs, limit)
        next_cursor = None
        if more:
            last = items[-1]
            next_cursor = encode_cursor(
                {"id": last["id"], partition[0]: partition[1], "createdAt": last["createdAt"]}
            )
        return items, next_cursor

    def verify_transaction(self, transaction: dict[str, Any], by: str, at: str) -> None:
        """Flip pending → verified and add the amount to its week: one DynamoDB transaction.

        (The resource's client takes plain Python values: boto3 serializes them.)

        Raises AlreadyVerified or NotFound when the condition fails; the caller's copy of
        `transaction` only supplies the immutable id, amount and week.
        """
        tx_update = {
            "TableName": self.transactions.name,
            "Key": {"id": transaction["id"]},
            "ConditionExpression": "#status = :pending",
            "UpdateExpression": "SET #status = :verified, verifiedAt = :at, verifiedBy = :by",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":pending": "pending",
                ":verified": "verified",
                ":at": at,
                ":by": by,
            },
        }
        week_update = {
            "TableName": self.weekly_income.name,
            "Key": {"series": WEEKLY_SERIES, "week": transaction["week"]},
            "UpdateExpression": "ADD #total :amount, #count :one SET updatedAt = :at",
            "ExpressionAttributeNames": {"#total": "total", "#count": "count"},
            "ExpressionAttributeValues": {
                ":amount": int(transaction["amount"]),
                ":one": 1,
                ":at": at,
            },
        }
        for attempt in range(1, 4):
            try:
                self.client.transact_write_items(
                    TransactItems=[{"Update": tx_update}, {"Update": week_update}]
                )
                return
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                # A failed condition, or a conflict with a concurrent transaction on the same
                # items: the item, read after the fact, says which.
                current = self.get_transaction(transaction["id"])
                if current is None:
                    raise NotFound(transaction["id"]) from None
                if current.get("status") == "verified":
                    raise AlreadyVerified(transaction["id"]) from None
                if attempt == 3:
                    raise

    # --- weekly income --------------------------------------------------------------------

    def week_totals(self, first: str, last: str) -> dict[str, tuple[int, int]]:
        """{week: (total, count)} for the weeks between `first` and `last` (ISO, inclusive)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("series").eq(WEEKLY_SERIES)
            & Key("week").between(first, last),
            "ConsistentRead": True,
        }
        totals: dict[str, tuple[int, int]] = {}
        while True:
            page = self.weekly_income.query(**kwargs)
            for item in page.get("Items", []):
                totals[item["week"]] = (int(item.get("total", 0)), int(item.get("count", 0)))
            if "LastEvaluatedKey" not in page:
                return totals
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    def _newest_first(
        table: Any, kwargs: dict[str, Any], limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` items newest first, and whether older ones exist.

        Asks for one item more than needed so that "nothing older" is known exactly,
        instead of handing out a cursor to an empty page.
        """
        kwargs = {**kwargs, "ScanIndexForward": False}
        items: list[dict[str, Any]] = []
        while len(items) <= limit:
            kwargs["Limit"] = limit + 1 - len(items)
            page = table.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return items[:limit], len(items) > limit
