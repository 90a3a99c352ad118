"""The DynamoDB adapter: every read and write of the app, and nothing else.

Tables (see template.yaml; docs/deploy.md explains the design):

| table         | key                          | indexes                                    |
|---------------|------------------------------|--------------------------------------------|
| Connections   | connectionId                 |                                            |
| Memberships   | target, connectionId         | byConnection: connectionId, target         |
| Messages      | room, id (ULID: time order)  |                                            |
|               | `{room}#client`, `{user}#{clientId}`: a send's claim on its client id |
| Transactions  | id                           | byStatus: status, createdAt;               |
|               |                              | byCreated: kind, createdAt                 |
| WeeklyIncome  | series ("weekly"), week      |                                            |

A membership's `target` is `room#<name>` or `channel#<name>`, so the recipients of a room or
channel are one paginated Query. A membership carries its connection's `connectedAt` (epoch ms,
API Gateway's `requestContext.connectedAt`) so that a fan-out can tell a connection still in
`$connect` from a stale one without another read; one stored by `$connect` (`&room=`) carries
`unannounced: true` until the first `join` announces it. A connection's `connectedAt` is the
same instant as ISO 8601; it also keeps the connection's send sequence (`seq`: the last
taken, with `pendingId`, `pendingClient` and `lastSentMs` of its message; `done`: the last
delivered to the room). No send uses TransactWriteItems: each step is one conditional write
that a retry can repeat. A room's
presence window is the membership item (`presence#{room}`, `window`). Cursors handed to
clients are the last key of a page, JSON in URL-safe base64: opaque to clients, checked on the
way back in.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from realtime.models import Connection, MessageFrame, Transaction

WEEKLY_SERIES = "weekly"
# The income version: one counter, raised in the same transaction as every verify.
VERSION_KEY = {"series": "version", "week": WEEKLY_SERIES}
TRANSACTION_KIND = "transaction"
PRESENCE_WINDOW = "window"


class InvalidCursor(ValueError):
    """A `next`/`before` cursor that this store did not hand out (or for another query)."""


class NotFound(LookupError):
    pass


class AlreadyVerified(Exception):
    pass


@dataclass(frozen=True)
class Claim:
    """A client id's claim: the message it was (or will be) stored as."""

    message_id: str
    sent_at: str


class SeqTaken(Exception):
    """The connection's sequence is not where this `seq` needs it (or it is gone: None)."""

    def __init__(self, connection: Connection | None) -> None:
        super().__init__(connection)
        self.connection = connection


def room_target(room: str) -> str:
    return f"room#{room}"


def channel_target(channel: str) -> str:
    return f"channel#{channel}"


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _failed(error: ClientError, code: str) -> bool:
    return error.response.get("Error", {}).get("Code") == code


def encode_cursor(key: dict[str, Any]) -> str:
    raw = json.dumps(key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, keys: set[str], fixed: dict[str, str] | None = None) -> dict:
    """The key inside `cursor`; it must hold exactly `keys` (strings) and agree with `fixed`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
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


def query_pages(table: Any, **kwargs: Any) -> Iterator[list[dict[str, Any]]]:
    """The items of a Query, one DynamoDB page at a time (the ONE pagination loop)."""
    while True:
        page = table.query(**kwargs)
        yield page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _message(item: dict[str, Any]) -> MessageFrame:
    return MessageFrame(
        room=item["room"],
        id=item["id"],
        sender=item["sender"],
        text=item["text"],
        sent_at=item["sentAt"],
        client_id=item.get("clientId"),
        seq=_int_or_none(item.get("seq")),
    )


def _transaction(item: dict[str, Any]) -> Transaction:
    return Transaction(
        id=item["id"],
        amount=int(item["amount"]),
        description=item["description"],
        status=item["status"],
        created_at=item["createdAt"],
        week=item["week"],
        verified_at=item.get("verifiedAt"),
        verified_by=item.get("verifiedBy"),
    )


class Store:
    """All DynamoDB access, in the domain's models. `page_size` caps a recipients page."""

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
        """Read strongly: the send sequence on it must be the latest."""
        item = self.connections.get_item(
            Key={"connectionId": connection_id}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return Connection(
            connection_id=connection_id,
            user=item["userId"],
            role=item["role"],
            connected_at=epoch_ms(item.get("connectedAt")),
            seq=int(item.get("seq", 0)),
            done=int(item.get("done", 0)),
            last_sent_ms=int(item.get("lastSentMs", 0)),
            pending_id=item.get("pendingId"),
            pending_client=item.get("pendingClient"),
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

    def recipient_pages(self, target: str) -> Iterator[list[tuple[str, int | None]]]:
        """(connection id, connectedAt) of every member of `target`, one DynamoDB Query page at
        a time (never a Scan): what a fan-out needs, as plain tuples (its hot path)."""
        for items in self._member_pages(target):
            yield [(i["connectionId"], _int_or_none(i.get("connectedAt"))) for i in items]

    def user_pages(self, target: str) -> Iterator[list[str]]:
        """The user of every member (connection) of `target`, a Query page at a time."""
        for items in self._member_pages(target):
            yield [i["userId"] for i in items]

    def _member_pages(self, target: str) -> Iterator[list[dict[str, Any]]]:
        """No ProjectionExpression: a Query consumes capacity for whole items either way, a
        membership is a few attributes, and moto projects item by item through a JSON round
        trip (measured: a 200-member Query cost the embedded DynamoDB twice the CPU
        projected, more than the worker saved parsing fewer attributes)."""
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("target").eq(target)}
        if self.page_size:
            kwargs["Limit"] = self.page_size
        return query_pages(self.memberships, **kwargs)

    def targets_of(self, connection_id: str) -> list[str]:
        pages = query_pages(
            self.memberships,
            IndexName="byConnection",
            KeyConditionExpression=Key("connectionId").eq(connection_id),
        )
        return [i["target"] for items in pages for i in items]

    def presence_window(self, room: str) -> int | None:
        """When the room's presence window ends (epoch ms; None: never opened), read strongly."""
        item = self.memberships.get_item(
            Key={"target": f"presence#{room}", "connectionId": PRESENCE_WINDOW},
            ConsistentRead=True,
        ).get("Item")
        return None if item is None else int(item["windowEnd"])

    def claim_presence_window(
        self, room: str, old_end: int | None, end: int, expires_at: int
    ) -> bool:
        """Replace the window seen as ending at `old_end` (None: none yet) by one ending at
        `end`; False if another join replaced it first (one PutItem with a condition: of
        racing joins, one wins)."""
        if old_end is None:
            condition, values = "attribute_not_exists(windowEnd)", {}
        else:
            condition, values = "windowEnd = :old", {":old": old_end}
        try:
            self.memberships.put_item(
                Item={
                    "target": f"presence#{room}",
                    "connectionId": PRESENCE_WINDOW,
                    "windowEnd": end,
                    "expiresAt": expires_at,
                },
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except ClientError as error:
            if _failed(error, "ConditionalCheckFailedException"):
                return False
            raise
        return True

    # --- messages -------------------------------------------------------------------------

    def take_seq(self, connection_id: str, message: MessageFrame) -> None:
        """Give `message.seq` of this connection to `message`: allowed only when `seq - 1` is
        stored AND delivered (one conditional UpdateItem). The connection item remembers the
        message as pending (`pendingId`, `pendingClient`, `lastSentMs`), so a retry of the
        same send resumes with the same id. SeqTaken (with the connection as it is) if not."""
        seq = message.seq
        assert seq is not None
        if seq == 1:
            condition, values = "attribute_exists(connectionId) AND attribute_not_exists(seq)", {}
        else:
            condition, values = "seq = :prev AND done = :prev", {":prev": seq - 1}
        sets = "seq = :seq, lastSentMs = :ms, pendingId = :id"
        values |= {":seq": seq, ":ms": epoch_ms(message.sent_at) or 0, ":id": message.id}
        if message.client_id is not None:
            sets += ", pendingClient = :client"
            values[":client"] = message.client_id
        else:
            sets += " REMOVE pendingClient"
        try:
            self.connections.update_item(
                Key={"connectionId": connection_id},
                UpdateExpression=f"SET {sets}",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if not _failed(error, "ConditionalCheckFailedException"):
                raise
            raise SeqTaken(self.get_connection(connection_id)) from None

    def complete_send(self, connection_id: str, seq: int) -> None:
        """Mark `seq` delivered on this connection, so that `seq + 1` may be taken."""
        try:
            self.connections.update_item(
                Key={"connectionId": connection_id},
                UpdateExpression="SET done = :seq",
                ConditionExpression="seq = :seq AND (attribute_not_exists(done) OR done < :seq)",
                ExpressionAttributeValues={":seq": seq},
            )
        except ClientError as error:
            if not _failed(error, "ConditionalCheckFailedException"):
                raise  # else: done already (a concurrent retry), or the connection is gone

    def claim_client_id(self, message: MessageFrame, expires_at: int) -> Claim | None:
        """Claim `message.clientId` for `message.id` (one conditional PutItem; claiming again
        for the same id is a no-op). The earlier claim if another message holds it."""
        try:
            self.messages.put_item(
                Item={
                    **self._claim_key(message),
                    "messageId": message.id,
                    "sentAt": message.sent_at,
                    "expiresAt": expires_at,
                },
                ConditionExpression="attribute_not_exists(id) OR messageId = :id",
                ExpressionAttributeValues={":id": message.id},
            )
        except ClientError as error:
            if not _failed(error, "ConditionalCheckFailedException"):
                raise
            return self.get_claim(message)
        return None

    def get_claim(self, message: MessageFrame) -> Claim | None:
        """The claim on `message.clientId` by its sender in its room, if there is one."""
        item = self.messages.get_item(Key=self._claim_key(message), ConsistentRead=True)
        if "Item" not in item:
            return None
        return Claim(item["Item"]["messageId"], item["Item"]["sentAt"])

    def put_message(self, message: MessageFrame, expires_at: int) -> None:
        """Store `message` (idempotent: a retry writes the same item again)."""
        item: dict[str, Any] = {
            "room": message.room,
            "id": message.id,
            "sender": message.sender,
            "text": message.text,
            "sentAt": message.sent_at,
            "expiresAt": expires_at,
        }
        if message.client_id is not None:
            item["clientId"] = message.client_id
        if message.seq is not None:
            item["seq"] = message.seq
        self.messages.put_item(Item=item)

    def get_message(self, room: str, message_id: str) -> MessageFrame | None:
        item = self.messages.get_item(Key={"room": room, "id": message_id}, ConsistentRead=True)
        return _message(item["Item"]) if "Item" in item else None

    def latest_messages(
        self, room: str, limit: int, before: str | None = None
    ) -> tuple[list[MessageFrame], str | None]:
        """Up to `limit` messages older than the cursor, oldest first, and the next cursor."""
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("room").eq(room)}
        if before:
            kwargs["ExclusiveStartKey"] = decode_cursor(
                before, keys={"room", "id"}, fixed={"room": room}
            )
        items, more = self._newest_first(self.messages, kwargs, limit)
        cursor = encode_cursor({"room": room, "id": items[-1]["id"]}) if more else None
        return [_message(i) for i in reversed(items)], cursor

    def _claim_key(self, message: MessageFrame) -> dict[str, str]:
        # `#` never occurs in a room or a user name: no claim collides with a message.
        return {"room": f"{message.room}#client", "id": f"{message.sender}#{message.client_id}"}

    # --- transactions ---------------------------------------------------------------------

    def put_transaction(self, transaction: Transaction) -> None:
        item = {k: v for k, v in transaction.to_wire().items()}
        self.transactions.put_item(
            Item={**item, "kind": TRANSACTION_KIND},
            ConditionExpression="attribute_not_exists(id)",
        )

    def get_transaction(self, transaction_id: str) -> Transaction | None:
        item = self.transactions.get_item(Key={"id": transaction_id}, ConsistentRead=True)
        return _transaction(item["Item"]) if "Item" in item else None

    def list_transactions(
        self, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Transaction], str | None]:
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
        return [_transaction(i) for i in items], next_cursor

    def verify_transaction(
        self, transaction: Transaction, by: str, at: str, *, attempts: int = 8
    ) -> None:
        """Flip pending → verified, add the amount to its week and raise the income version:
        one DynamoDB transaction, so a frame's version and its totals always agree.

        (The resource's client takes plain Python values: boto3 serializes them.)

        Raises AlreadyVerified or NotFound when the condition fails; the caller's copy of
        `transaction` only supplies the immutable id, amount and week. Every verify writes
        the version item, so concurrent verifies conflict (TransactionConflict) and are
        retried with a jittered backoff.
        """
        tx_update = {
            "TableName": self.transactions.name,
            "Key": {"id": transaction.id},
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
            "Key": {"series": WEEKLY_SERIES, "week": transaction.week},
            "UpdateExpression": "ADD #total :amount, #count :one SET updatedAt = :at",
            "ExpressionAttributeNames": {"#total": "total", "#count": "count"},
            "ExpressionAttributeValues": {":amount": transaction.amount, ":one": 1, ":at": at},
        }
        version_update = {  # last: a reader that sees the new version sees the new totals
            "TableName": self.weekly_income.name,
            "Key": VERSION_KEY,
            "UpdateExpression": "ADD version :one",
            "ExpressionAttributeValues": {":one": 1},
        }
        for attempt in range(1, attempts + 1):
            try:
                self.client.transact_write_items(
                    TransactItems=[
                        {"Update": tx_update},
                        {"Update": week_update},
                        {"Update": version_update},
                    ]
                )
                return
            except ClientError as error:
                if not _failed(error, "TransactionCanceledException"):
                    raise
                # A failed condition, or a conflict with a concurrent transaction on the same
                # items: the item, read after the fact, says which.
                current = self.get_transaction(transaction.id)
                if current is None:
                    raise NotFound(transaction.id) from None
                if current.status == "verified":
                    raise AlreadyVerified(transaction.id) from None
                if attempt == attempts:
                    raise
                time.sleep(random.uniform(0, 0.01 * 2**attempt))

    # --- weekly income --------------------------------------------------------------------

    def week_totals(self, first: str, last: str) -> dict[str, tuple[int, int]]:
        """{week: (total, count)} for the weeks between `first` and `last` (ISO, inclusive)."""
        pages = query_pages(
            self.weekly_income,
            KeyConditionExpression=Key("series").eq(WEEKLY_SERIES)
            & Key("week").between(first, last),
            ConsistentRead=True,
        )
        return {
            i["week"]: (int(i.get("total", 0)), int(i.get("count", 0)))
            for items in pages
            for i in items
        }

    def income_snapshot(self, weeks: list[str]) -> tuple[int, dict[str, tuple[int, int]]]:
        """(version, {week: (total, count)}) read as one TransactGetItems: serializable with
        the verify transactions, so the totals are exactly those of that version."""
        keys = [VERSION_KEY] + [{"series": WEEKLY_SERIES, "week": w} for w in weeks]
        answer = self.client.transact_get_items(
            TransactItems=[{"Get": {"TableName": self.weekly_income.name, "Key": k}}
                           for k in keys]
        )
        items = [r.get("Item") or {} for r in answer["Responses"]]
        version = int(items[0].get("version", 0))
        totals = {
            w: (int(i.get("total", 0)), int(i.get("count", 0)))
            for w, i in zip(weeks, items[1:], strict=True)
        }
        return version, totals

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    def _newest_first(
        table: Any, kwargs: dict[str, Any], limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` items newest first, and whether older ones exist.

        Asks for one item more than needed so that "nothing older" is known exactly,
        instead of handing out a cursor to an empty page.
        """
        items: list[dict[str, Any]] = []
        for page in query_pages(table, **kwargs, ScanIndexForward=False, Limit=limit + 1):
            items.extend(page)
            if len(items) > limit:
                break
        return items[:limit], len(items) > limit
