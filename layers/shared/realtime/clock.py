"""Time, in one place: the wire format of instants and the clock the handlers read.

Tests replace `now` to cross week and year boundaries deterministically.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def iso(instant: datetime) -> str:
    """`2026-11-25T18:30:00.123Z`: UTC, millisecond precision, as docs/protocol.md says."""
    utc = instant.astimezone(UTC)
    # Not strftime("%Y"): it writes year 1 as "1", and ISO 8601 wants four digits.
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def epoch_seconds(instant: datetime) -> int:
    return int(instant.timestamp())
