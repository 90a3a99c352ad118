"""The wire protocol of docs/protocol.md as pydantic models: what clients send, what they get.

Inbound WebSocket frames are parsed by `parse_action`, which turns every way a frame can be
wrong into a `FrameError` with one of the stable codes. Outbound frames are models whose
`encode()` gives the exact bytes to post (camelCase keys, `type` first).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
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

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DASHBOARD = "admin_dashboard"
MAX_TEXT = 2000
MAX_AMOUNT = 10_000_000_000  # cents: 100 000 000.00

Name = Annotated[str, StringConstraints(strict=True, pattern=NAME_PATTERN)]
Role = Literal["user", "admin"]


class FrameError(Exception):
    """A frame the server refuses; becomes an `error` frame and changes nothing."""

    def __init__(self, code: str, message: str, action: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.action = action


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
    action: Literal["send"]
    room: Name
    text: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_TEXT)]

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

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")

    def encode(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class MessageFrame(_Frame):
    type: Literal["message"] = "message"
    room: str
    id: str
    sender: str
    text: str
    sent_at: str


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
    current_week: str
    weeks: list[WeekTotal]  # oldest first, absolute totals
    updated: IncomeUpdate | None = None


class PongFrame(_Frame):
    type: Literal["pong"] = "pong"


class ErrorFrame(_Frame):
    type: Literal["error"] = "error"
    code: str
    message: str
    action: str | None = None

    @classmethod
    def of(cls, error: FrameError) -> ErrorFrame:
        return cls(code=error.code, message=error.message, action=error.action)


# --- HTTP API -----------------------------------------------------------------------------


class NewTransaction(BaseModel):
    """The body of `POST /transactions`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)

    amount: Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT)]
    description: Annotated[
        str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=200)
    ]
    created_at: AwareDatetime | None = None


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
