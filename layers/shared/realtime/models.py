"""The wire protocol of docs/protocol.md as pydantic models: what clients send, what they get.

Inbound WebSocket frames are parsed by `parse_action`, which turns every way a frame can be
wrong into a `FrameError` with one of the stable codes. Outbound frames are models whose
`encode()` gives the exact bytes to post (camelCase keys, `type` first).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

# Matched against the WHOLE string (fullmatch): with `re.match` and `$`, "general\n" would pass.
NAME_PATTERN = r"[A-Za-z0-9_-]{1,64}"
_NAME = re.compile(NAME_PATTERN)
DASHBOARD = "admin_dashboard"
MAX_TEXT = 2000
MAX_AMOUNT = 10_000_000_000  # cents: 100 000 000.00
MAX_SEQ = 2**53 - 1  # the largest integer a JavaScript client counts exactly
# ULIDs count milliseconds from the Unix epoch: an earlier createdAt has no id.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def is_name(value: object) -> bool:
    """A room, user or client id: 1–64 of `A-Z a-z 0-9 _ -`, and nothing else."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def _name(value: str) -> str:
    if not is_name(value):
        raise ValueError("must be 1 to 64 characters among A-Z, a-z, 0-9, '_' and '-'")
    return value


Name = Annotated[str, StringConstraints(strict=True), AfterValidator(_name)]
Role = Literal["user", "admin"]


class FrameError(Exception):
    """A frame the server refuses; becomes an `error` frame and changes nothing."""

    def __init__(
        self,
        code: str,
        message: str,
        action: str | None = None,
        *,
        client_id: str | None = None,
        expected: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.action = action
        self.client_id = client_id
        self.expected = expected


def describe(error: ValidationError) -> str:
    """`room: String should match pattern …; text: …` — which field failed, and why."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


# --- client → server ----------------------------------------------------------------------


class _Action(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Join(_Action):
    action: Literal["join"]
    room: Name


class Leave(_Action):
    action: Literal["leave"]
    room: Name


class Send(_Action):
    """`clientId` makes a retry safe (stored and delivered once); `seq` (1, 2, 3… per
    connection) makes the order of a connection's sends the order everyone sees."""

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel,
                              populate_by_name=True)

    action: Literal["send"]
    room: Name
    text: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_TEXT)]
    client_id: Name | None = None
    seq: Annotated[StrictInt, Field(ge=1, le=MAX_SEQ)] | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text must not be blank")
        return text


class History(_Action):
    action: Literal["history"]
    room: Name
    limit: Annotated[StrictInt, Field(ge=1, le=100)] = 50
    before: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=1024)] | None = (
        None
    )


class Subscribe(_Action):
    action: Literal["subscribe"]
    channel: Literal["admin_dashboard"]


class Unsubscribe(_Action):
    action: Literal["unsubscribe"]
    channel: Literal["admin_dashboard"]


class Ping(_Action):
    action: Literal["ping"]


Action = Annotated[
    Join | Leave | Send | History | Subscribe | Unsubscribe | Ping, Field(discriminator="action")
]
ACTIONS = ("join", "leave", "send", "history", "subscribe", "unsubscribe", "ping")
_action_adapter: TypeAdapter[Action] = TypeAdapter(Action)


def parse_action(
    body: str | bytes | None,
) -> Join | Leave | Send | History | Subscribe | Unsubscribe | Ping:
    """The frame's action, validated; `FrameError` with a stable code otherwise."""
    try:
        data = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        raise FrameError("invalid_json", "The frame is not valid JSON.") from None
    except RecursionError:  # the decoder recurses per nesting level
        raise FrameError("invalid_json", "The frame's JSON is nested too deeply.") from None
    if not isinstance(data, dict):
        raise FrameError("invalid_json", "The frame must be a JSON object.")
    action = data.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        shown = action if isinstance(action, str) else None
        raise FrameError(
            "unknown_action",
            f"Unknown action {action!r}; expected one of {', '.join(ACTIONS)}.",
            shown,
        )
    try:
        return _action_adapter.validate_python(data)
    except ValidationError as error:
        raise FrameError("invalid_request", describe(error), action) from None


# --- server → client ----------------------------------------------------------------------


class _Frame(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)
    # Fields left out of the wire when None (newer, optional ones), so older frames keep
    # exactly their documented shape.
    _omit_none: ClassVar[tuple[str, ...]] = ()

    def _omitted(self) -> set[str] | None:
        return {f for f in self._omit_none if getattr(self, f) is None} or None

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json", exclude=self._omitted())

    def encode(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude=self._omitted()).encode()


class MessageFrame(_Frame):
    """A chat message; `id` (a ULID) orders history, `clientId`/`seq` echo the sender's."""

    _omit_none = ("client_id", "seq")

    type: Literal["message"] = "message"
    room: str
    id: str
    sender: str
    text: str
    sent_at: str
    client_id: str | None = None
    seq: int | None = None


class AckFrame(_Frame):
    """To the sender, once its message reached every member: the next `seq` may go."""

    _omit_none = ("client_id", "seq")

    type: Literal["ack"] = "ack"
    room: str
    id: str  # the stored message's id
    client_id: str | None = None
    seq: int | None = None
    duplicate: bool = False  # a retry of a message stored before


class HistoryFrame(_Frame):
    type: Literal["history"] = "history"
    room: str
    messages: list[MessageFrame]  # oldest first
    next: str | None


class PresenceFrame(_Frame):
    type: Literal["presence"] = "presence"
    room: str
    members: list[str]  # at most 100 distinct users
    count: int  # connections in the room


class JoinedFrame(_Frame):
    type: Literal["joined"] = "joined"
    room: str
    user: str


class LeftFrame(_Frame):
    type: Literal["left"] = "left"
    room: str
    user: str


class WeekTotal(_Frame):
    week: str
    total: int
    count: int


class IncomeUpdate(_Frame):
    week: str
    transaction_id: str


class IncomeFrame(_Frame):
    type: Literal["income"] = "income"
    version: int  # grows with every verify: a frame with a lower one is stale
    current_week: str
    weeks: list[WeekTotal]  # oldest first, absolute totals
    updated: IncomeUpdate | None = None


class PongFrame(_Frame):
    type: Literal["pong"] = "pong"


class ErrorFrame(_Frame):
    _omit_none = ("client_id", "expected")

    type: Literal["error"] = "error"
    code: str
    message: str
    action: str | None = None
    client_id: str | None = None  # the refused send's
    expected: int | None = None  # out_of_order: the `seq` the server waits for

    @classmethod
    def of(cls, error: FrameError) -> ErrorFrame:
        return cls(
            code=error.code,
            message=error.message,
            action=error.action,
            client_id=error.client_id,
            expected=error.expected,
        )


# --- stored records -----------------------------------------------------------------------


class Connection(BaseModel):
    """A registered WebSocket connection, with its send sequence (see `Chat.send`)."""

    model_config = ConfigDict(frozen=True)

    connection_id: str
    user: str
    role: str
    connected_at: int | None = None  # epoch ms (API Gateway's requestContext.connectedAt)
    seq: int = 0  # the last `seq` taken by a send of this connection
    done: int = 0  # the last `seq` delivered to its room
    last_sent_ms: int = 0  # the time of the message that took `seq`
    pending_id: str | None = None  # its id
    pending_client: str | None = None  # its clientId


# --- HTTP API -----------------------------------------------------------------------------


class NewTransaction(BaseModel):
    """The body of `POST /transactions`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)

    amount: Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT)]
    description: Annotated[
        str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=200)
    ]
    created_at: AwareDatetime | None = None

    @field_validator("created_at")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        """In UTC and not before 1970: `0001-01-01T00:00:00+01:00` has no UTC instant."""
        if value is None:
            return None
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range once converted to UTC") from None
        if utc < EARLIEST:
            raise ValueError("must be 1970-01-01T00:00:00Z or later")
        return utc


class Transaction(_Frame):
    """`T` of docs/protocol.md."""

    id: str
    amount: int
    description: str
    status: Literal["pending", "verified"]
    created_at: str
    week: str
    verified_at: str | None = None
    verified_by: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)


class TokenRequest(BaseModel):
    """The body of the local-only `POST /dev/token`."""

    model_config = ConfigDict(extra="forbid")

    user: Name
    role: Role = "user"
