"""No client input reaches a 500, an `internal` frame or a traceback, and none is logged with
its token: deep JSON, calendar edges, names with control characters, arbitrary frames,
names and cursors (hypothesis)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import jwt
import pytest
from app_support import (
    ROOT,
    SECRET,
    LambdaContext,
    http_event,
    load_function,
    table_items,
    token,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realtime import clock
from realtime.models import is_name

FIXTURES = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)
ACTIONS = st.sampled_from(["join", "leave", "send", "history", "subscribe", "ping", "x", ""])


@pytest.fixture
def member(app):
    app.connect("c1", "alice", room="general")
    app.send("c1", {"action": "join", "room": "general"})
    app.management.clear()
    return app


def answers(app, frame: str) -> list[dict]:
    app.management.clear()
    assert app.send("c1", frame)["statusCode"] == 200
    return app.management.frames("c1")


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_frames_are_invalid_json(member, depth):
    [error] = answers(member, "[" * depth + "]" * depth)
    assert error["code"] == "invalid_json"
    [error] = answers(member, '{"action": "send", "room": "general", "text": ' + "[" * depth)
    assert error["code"] == "invalid_json"


@pytest.mark.parametrize("room", ["general\n", "gen\x00eral", "gen eral", "a" * 65, "général"])
def test_names_are_validated_as_whole_strings(member, store, room):
    [error] = answers(member, json.dumps({"action": "join", "room": room}))
    assert (error["code"], error["action"]) == ("invalid_request", "join")
    status = member.connect("c9", "bob", room=room)["statusCode"]
    assert status == 400 and store.get_connection("c9") is None


@pytest.mark.parametrize("sub", ["alice\n", "ali\x07ce", ""])
def test_a_token_whose_user_is_not_a_name_is_refused(app, store, sub):
    now = int(datetime.now(UTC).timestamp())
    bad = jwt.encode({"sub": sub, "role": "user", "iat": now, "exp": now + 60}, SECRET, "HS256")
    assert app.connect("c1", token_value=bad)["statusCode"] == 401
    assert store.get_connection("c1") is None


@FIXTURES
@given(frame=st.one_of(
    st.text(max_size=50),
    json_values.map(json.dumps),
    st.builds(lambda a, rest: json.dumps({"action": a, **rest}), ACTIONS,
              st.dictionaries(st.sampled_from(["room", "text", "limit", "before", "channel",
                                               "clientId", "seq"]), json_values, max_size=4)),
))
def test_any_frame_gets_an_answer_never_internal(member, frame):
    for answer in answers(member, frame):
        assert answer.get("code") != "internal", (frame, answer)


@FIXTURES
@given(room=st.text(max_size=70))
def test_any_room_name_is_accepted_exactly_when_it_is_a_name(member, room):
    types = [a["type"] for a in answers(member, json.dumps({"action": "join", "room": room}))]
    assert ("error" not in types) == is_name(room)


@FIXTURES
@given(cursor=st.text(min_size=1, max_size=80) | st.binary(max_size=60).map(
    lambda b: __import__("base64").urlsafe_b64encode(b).decode()))
def test_any_history_cursor_is_a_history_or_invalid_request(member, dynamodb, cursor):
    before = table_items(dynamodb)
    frame = json.dumps({"action": "history", "room": "general", "before": cursor})
    [answer] = answers(member, frame)
    assert answer["type"] == "history" or answer["code"] == "invalid_request"
    assert table_items(dynamodb) == before


# --- HTTP ---------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_a_deeply_nested_body_is_a_400(admin_api, depth):
    status, body = admin_api("POST", "/transactions", raw_body="[" * depth + "]" * depth)
    assert (status, body["code"]) == (400, "invalid_request")


@pytest.mark.parametrize("function, path", [
    ("verify_tx", "/transactions"),
    ("dev_token", "/dev/token"),
])
def test_a_body_that_is_not_utf8_is_a_400(dynamodb, management, function, path):
    """HTTP APIs hand a binary body base64-encoded (`isBase64Encoded`); decoded, it is not
    text, so it cannot be JSON."""
    code = ROOT / "local" / "dev_token" / "app.py" if function == "dev_token" else None
    module = load_function(function, code)
    event = http_event("POST", path, token=token("root", "admin"),
                       raw_body=base64.b64encode(b"\x15 \x94Z\xaf").decode())
    event["isBase64Encoded"] = True
    before = table_items(dynamodb)
    response = module.lambda_handler(event, LambdaContext())
    assert response["statusCode"] == 400
    assert json.loads(response["body"]) == {"code": "invalid_request",
                                            "message": "body: not UTF-8 text"}
    assert table_items(dynamodb) == before


@pytest.mark.parametrize(
    "created_at",
    [
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        "0001-01-01T00:00:00Z",  # before 1970: no ULID
        "1969-12-31T23:59:59.999Z",
        "9999-12-31T23:59:59Z",  # the future
    ],
)
def test_calendar_edges_are_clear_400s(admin_api, created_at):
    status, body = admin_api("POST", "/transactions",
                       body={"amount": 1, "description": "x", "createdAt": created_at})
    assert (status, body["code"]) == (400, "invalid_request")
    assert "createdAt" in body["message"]


def test_the_earliest_accepted_instant_comes_back_iso_8601(admin_api):
    status, body = admin_api("POST", "/transactions",
                       body={"amount": 1, "description": "x", "createdAt": "1970-01-01T00:00:00Z"})
    assert status == 201 and body["transaction"]["createdAt"] == "1970-01-01T00:00:00.000Z"
    assert body["transaction"]["week"] == "1970-W01"


def test_iso_writes_four_digit_years():
    assert clock.iso(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000Z"


@FIXTURES
@given(body=json_values)
def test_any_json_body_is_201_or_400(admin_api, body):
    status, answer = admin_api("POST", "/transactions", raw_body=json.dumps(body))
    assert status in (201, 400), answer


# --- logs -----------------------------------------------------------------------------------


def test_tokens_stay_out_of_the_logs(app, dynamodb, management, capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    secret_token = token("alice")
    app.connect("c1", "alice", room="general", token_value=secret_token)
    app.connect("c2", token_value="not-a-valid-token")
    module = load_function("verify_tx")
    module.lambda_handler(http_event("GET", "/transactions", token=secret_token), LambdaContext())
    out = capsys.readouterr()
    assert secret_token not in out.out + out.err
    assert "not-a-valid-token" not in out.out + out.err
