"""The part of docs/protocol.md the baseline servers speak, so one load client drives all three.

A connection names its user (`?user=`; the app reads it from `?token=` instead) and may join a
room at connect time (`?room=`). Frames: `join` → the joiner gets `presence` (the full member
list) and the room gets `joined`; `send` → the room gets `message`; `subscribe` → `income`
snapshot; anything else is echoed back unchanged.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

DASHBOARD = "admin_dashboard"


def identity(path: str) -> tuple[str, str | None]:
    """(user, room joined at connect) from a request path's query string."""
    query = parse_qs(urlsplit(path).query)
    return query.get("user", ["anonymous"])[0], query.get("room", [None])[0]


def presence(room: str, users: list[str]) -> str:
    return json.dumps({"type": "presence", "room": room, "members": sorted(set(users)),
                       "count": len(users)})


def joined(room: str, user: str) -> str:
    return json.dumps({"type": "joined", "room": room, "user": user})


def message(room: str, user: str, text: str) -> str:
    return json.dumps({"type": "message", "room": room, "sender": user, "text": text})


def income(transaction_id: str | None) -> str:
    updated = {"transactionId": transaction_id} if transaction_id else None
    return json.dumps({"type": "income", "weeks": [], "updated": updated})
