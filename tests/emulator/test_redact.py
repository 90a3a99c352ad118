"""Credentials never reach a log line."""

import logging
import sys

import pytest

from apigw_local.redact import RedactingFilter, redact

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize("line", [
    "GET /dev?token=abc123&room=general",
    "GET /x?access_token=abc123",
    "Authorization: Bearer abc123",
    '{"headers": {"authorization": "Bearer abc123", "host": "h"}}',
    "{'queryStringParameters': {'token': 'abc123'}}",
    '{"multiValueQueryStringParameters": {"token": ["abc123"]}}',
    "AUTH_SECRET=abc123 in the environment",
    f"could not parse {JWT.replace('c2lnbmF0dXJl', 'abc123')}",
    "bearer abc123",
])
def test_values_are_masked(line):
    clean = redact(line)
    assert "abc123" not in clean and "***" in clean


def test_other_text_is_kept():
    line = "HTTP GET /items/{id}   HttpFunction   3.1 ms  200"
    assert redact(line) == line
    assert redact("GET /dev?room=general&x=1") == "GET /dev?room=general&x=1"


def test_filter_masks_message_arguments_and_tracebacks():
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed for %s", (
            "/dev?token=abc123",), exc_info=sys.exc_info())
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "abc123" not in text and JWT not in text and "failed for /dev?token=***" in text


def test_escaped_json_inside_a_log_line_is_masked_too():
    line = '{"message": "event", "body": "{\\"secret\\": \\"abc123\\", \\"token\\": \\"abc123\\"}"}'
    assert "abc123" not in redact(line)

