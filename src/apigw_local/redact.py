"""Credentials out of log lines: tokens, `Authorization` values, secrets, JWTs.

Clients put bearer tokens in query strings (`wss://…/dev?token=…`) and `Authorization`
headers, and handlers may echo their event into their logs. Every log line apigw-local writes —
its own and its workers' forwarded output — passes `RedactingFilter`, installed on the handlers
of the root logger by `install()`; code that formats a client's request target for a log line
calls `redact()` itself as well, so the line is clean whatever logging the embedder configured.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # token=… in a query string (also access_token=, id_token=, …)
    (re.compile(r"(?i)(token=)[^&\s\"',;#)]+"), rf"\g<1>{MASK}"),
    # Authorization: …  /  "authorization": "…"  /  'token': ['…']  /  AUTH_SECRET=…
    # (quotes may come escaped, as in a JSON body logged inside a JSON line)
    # (a key starts where a word starts: no backtracking through long runs of word characters)
    (re.compile(r"(?i)([\\\"']*(?<![\w-])(?:authorization|[\w-]*token|[\w-]*secret)[\\\"']*"
                r"\s*[:=]\s*\[?\s*[\\\"']*)([^\\\"'\r\n,}\]]+)"), rf"\g<1>{MASK}"),
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+"), rf"\g<1>{MASK}"),
    # A JWT wherever it stands.
    (re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), MASK),
)


# Every pattern needs one of these words: a line without any (most lines) skips the regular
# expressions, which backtrack over long lines of word characters.
_CUES = ("token", "secret", "authorization", "bearer", "eyj")


def redact(text: str) -> str:
    """`text` with token, Authorization and secret values masked."""
    lowered = text.lower()
    if not any(cue in lowered for cue in _CUES):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks credentials in a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of `logger` (the root logger by default), once."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
