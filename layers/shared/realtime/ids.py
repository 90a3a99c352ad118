"""Identifiers that sort by creation time (ULIDs), so a DynamoDB sort key orders by time.

A ULID is 48 bits of Unix milliseconds followed by 80 random bits, written as 26 characters
of Crockford's base32 (https://github.com/ulid/spec). Ids made in the same millisecond are
ordered randomly among themselves, which is all history paging needs.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from realtime import clock

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def new_id(at: datetime | None = None) -> str:
    millis = ((at or clock.now()) - _EPOCH) // _MS  # exact: no float rounding
    value = (millis << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
