"""Hostile WebSocket input against the running app (hypothesis, real sockets, a real client).

Whatever a client sends, it gets a typed answer: an `error` frame with a stable code, or the
answer of a valid request; never `internal`, API Gateway's "Internal server error", a
handler's 5xx or a traceback in a log. An answer that is an error changed nothing in any
table. Where API Gateway keeps the connection open, it is still usable: a `ping` sent after the
hostile frame gets its `pong`. Where API Gateway closes it (binary frames: 1003, text that is
not UTF-8: 1007, a frame over 32 KB or a message over 128 KB: 1009), it closes with that code
and the next connection works.

`MessageFunction` runs one invocation at a time here, so a connection's answers arrive in the
order of its frames and the `pong` marks the end of the hostile frame's answers.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest
from hostile_support import HOSTILE, hostile_app, json_values
from hypothesis import given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.integration

ROOM = "hostile"
ERROR_CODES = {"invalid_json", "unknown_action", "invalid_request", "not_member", "forbidden",
               "out_of_order"}
# What a valid request may answer (docs/protocol.md).
ANSWER_TYPES = {"history", "presence", "joined", "left", "message", "ack", "income"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with hostile_app(tmp_path_factory.mktemp("ws"), "WebSocket hostile input",
                     max_concurrency=1) as app:
        yield app


@pytest.fixture(scope="module")
def ws(app):
    """One connection for the whole module, a member of ROOM: it must survive every frame."""
    url = f"{app.ep.websocket}?{urlencode({'token': app.token('mallory')})}"
    with connect(url, max_size=None, open_timeout=30) as connection:
        connection.send(json.dumps({"action": "join", "room": ROOM}))
        while json.loads(connection.recv(30))["type"] != "presence":
            pass
        yield connection


@pytest.fixture(scope="module")
def admin_ws(app):
    """An admin's connection: `subscribe` and `unsubscribe` go further for it."""
    url = f"{app.ep.websocket}?{urlencode({'token': app.token('root', 'admin')})}"
    with connect(url, max_size=None, open_timeout=30) as connection:
        yield connection


def exchange(ws, payload) -> list[dict]:
    """Send `payload` (str, bytes as text, or a list of fragments), then a ping; the frames
    that came before the pong."""
    ws.send(payload, text=True) if isinstance(payload, bytes) else ws.send(payload)
    ws.send('{"action": "ping"}')
    answers = []
    while (frame := json.loads(ws.recv(15))) != {"type": "pong"}:
        answers.append(frame)
    return answers


def check(app, ws, payload, strategy: str) -> None:
    app.tried[strategy] += 1
    before, mark = app.tables(), app.recorder.mark()
    answers = exchange(ws, payload)
    assert app.recorder.faults_since(mark) == [], payload
    for answer in answers:
        assert "message" not in answer or "type" in answer, answer  # API Gateway's own error
        kind = answer.get("type")
        assert kind in ANSWER_TYPES | {"error"}, answer
        if kind == "error":
            assert answer["code"] in ERROR_CODES, answer
            assert answer["message"], answer
    if answers and all(a["type"] == "error" for a in answers):
        assert app.tables() == before, (payload, answers)
    if not answers:  # only a valid `unsubscribe` answers nothing (docs/protocol.md)
        text = "".join(payload) if isinstance(payload, list) else payload
        assert json.loads(text)["action"] == "unsubscribe", payload


def not_a_ping(text: str) -> bool:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return True
    return not (isinstance(data, dict) and data.get("action") == "ping")


names = st.one_of(
    st.sampled_from([ROOM, "general", "general\n", "gen\x00eral", "a" * 65, "", " ", "général",
                     "room\r\n", "\u202eroom", "x" * 5000]),
    st.text(max_size=70),
    st.text(alphabet=st.characters(max_codepoint=0x1f), min_size=1, max_size=10),
)
field_values = st.one_of(json_values, names, st.integers(-(2**70), 2**70),
                         st.text(min_size=2000, max_size=2100))
actions = st.sampled_from(["join", "leave", "send", "history", "subscribe", "unsubscribe",
                           "x", "", "JOIN", "send ", "$default", "$connect"]) | st.text(max_size=8)
action_frames = st.builds(
    lambda action, fields: json.dumps({**fields, "action": action}),
    actions.filter(lambda a: a != "ping"),
    st.dictionaries(st.sampled_from(["room", "text", "limit", "before", "channel", "clientId",
                                     "seq"]), field_values, max_size=5),
)


@HOSTILE
@given(frame=st.one_of(st.text(max_size=200), json_values.map(json.dumps)).filter(not_a_ping))
def test_any_text_or_json_gets_a_typed_answer(app, ws, frame):
    check(app, ws, frame, "ws: text and JSON of any shape")


@HOSTILE
@given(frame=action_frames)
def test_any_action_with_fields_of_any_type_gets_a_typed_answer(app, ws, frame):
    check(app, ws, frame, "ws: actions with fields of any type")


@HOSTILE
@given(frame=st.builds(
    lambda action, fields: json.dumps({**fields, "action": action}),
    st.sampled_from(["subscribe", "unsubscribe"]),
    st.dictionaries(st.sampled_from(["channel", "room", "x"]),
                    st.sampled_from(["admin_dashboard", "admin_dashboard\n", "ADMIN_DASHBOARD",
                                     ""]) | field_values, max_size=3)))
def test_an_admins_subscriptions_of_any_shape_get_a_typed_answer(app, admin_ws, frame):
    check(app, admin_ws, frame, "ws: admin subscriptions")


@HOSTILE
@given(depth=st.integers(2, 20_000), kind=st.sampled_from("[{"), where=st.sampled_from(
    ["top", "text", "room"]))
def test_nested_json_gets_invalid_json_or_invalid_request(app, ws, depth, kind, where):
    nested = "[" * depth + "]" * depth if kind == "[" else '{"a":' * depth + "1" + "}" * depth
    frame = nested if where == "top" else (
        f'{{"action": "send", "room": "{ROOM}", "{where}": {nested}}}')
    # Frames of at most 30 000 characters: API Gateway closes a larger one (1009).
    check(app, ws, [frame[i:i + 30_000] for i in range(0, len(frame), 30_000)],
          "ws: nested JSON")


@HOSTILE
@given(frame=action_frames | st.text(max_size=300).filter(not_a_ping),
       cuts=st.lists(st.integers(0, 300), max_size=6))
def test_a_fragmented_message_is_answered_as_one(app, ws, frame, cuts):
    points = sorted({c for c in cuts if c < len(frame)} | {0, len(frame)})
    fragments = [frame[a:b] for a, b in zip(points, points[1:], strict=False)] or [""]
    check(app, ws, fragments, "ws: fragmented messages")


@HOSTILE
@given(text=st.text(min_size=2001, max_size=30_000), field=st.sampled_from(["text", "room",
                                                                            "clientId", "before"]))
def test_huge_strings_are_invalid_requests(app, ws, text, field):
    frame = {"action": "send" if field != "before" else "history", "room": ROOM, "text": "hi"}
    frame[field] = text
    check(app, ws, json.dumps(frame), "ws: huge strings")


@HOSTILE
@given(room=names, trailing=st.sampled_from(["", "\n", "\r\n", "\x00", " ", "\t"]),
       action=st.sampled_from(["join", "leave", "send", "history"]))
def test_names_with_control_characters_are_refused_whole(app, ws, room, trailing, action):
    frame = {"action": action, "room": room + trailing, "text": "hi", "clientId": room + trailing}
    check(app, ws, json.dumps(frame), "ws: names with control characters")


def cursor_of(key: dict) -> str:
    """A cursor as the store writes one (base64url JSON, unpadded), around any key."""
    raw = json.dumps(key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@HOSTILE
@given(key=st.fixed_dictionaries({"room": st.sampled_from([ROOM, "general", "", "x" * 700])
                                  | st.text(max_size=20),
                                  "id": st.text(max_size=40) | st.text(min_size=300,
                                                                       max_size=700)})
       | st.dictionaries(st.text(max_size=6), json_values, max_size=3),
       limit=st.integers(-1, 101) | st.none())
def test_a_crafted_history_cursor_is_a_page_or_invalid_request(app, ws, key, limit):
    frame = {"action": "history", "room": ROOM, "before": cursor_of(key)}
    if limit is not None:
        frame["limit"] = limit
    check(app, ws, json.dumps(frame), "ws: crafted history cursors")


# --- what API Gateway closes ------------------------------------------------------------------


def closes_with(app, payload, code: int, strategy: str, *, text: bool = True) -> None:
    app.tried[strategy] += 1
    before, mark = app.tables(), app.recorder.mark()
    url = f"{app.ep.websocket}?{urlencode({'token': app.token('trudy')})}"
    with connect(url, max_size=None, open_timeout=30) as victim:
        with pytest.raises(ConnectionClosed) as closed:
            victim.send(payload, text=text)
            victim.send('{"action": "ping"}')
            while True:
                victim.recv(10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    assert app.recorder.faults_since(mark) == []
    assert strip_connections(app, app.tables()) == strip_connections(app, before)


def strip_connections(app, tables):
    """The tables without the connections table (the closed connection is gone from it)."""
    return {t: items for t, items in tables.items()
            if t != app.ep.tables["ConnectionsTable"]}


@HOSTILE
@given(data=st.binary(max_size=200).map(lambda b: b"\xff" + b) | st.sampled_from(
    [b"\xc0\xaf", b"\xed\xa0\x80", b'{"action": "ping", "x": "\xfe"}', b"\xf4\x90\x80\x80"]))
def test_text_that_is_not_utf8_closes_1007(app, data):
    closes_with(app, data, 1007, "ws: invalid UTF-8")


@HOSTILE
@given(data=st.binary(max_size=200) | st.just(b'{"action": "ping"}'))
def test_binary_frames_close_1003(app, data):
    closes_with(app, data, 1003, "ws: binary frames", text=False)


@pytest.mark.parametrize("payload", [
    "a" * (32 * 1024 + 1),  # one frame over 32 KB
    ["a" * 30_000] * 5,  # fragments under 32 KB each, a message over 128 KB
])
def test_oversized_frames_and_messages_close_1009(app, payload):
    closes_with(app, payload, 1009, "ws: oversized frames and messages")


def test_the_connection_survived_everything(app, ws):
    """After every strategy above, the module's connection still works end to end."""
    ws.send(json.dumps({"action": "send", "room": ROOM, "text": "still here"}))
    while (frame := json.loads(ws.recv(30)))["type"] != "message":
        pass
    assert frame["text"] == "still here" and frame["sender"] == "mallory"


# --- the handshake -----------------------------------------------------------------------------


@HOSTILE
@given(query=st.dictionaries(st.sampled_from(["token", "room", "x", ""]),
                             st.text(max_size=80) | names, max_size=3),
       with_token=st.booleans())
def test_any_query_string_is_accepted_or_refused_with_a_4xx(app, query, with_token):
    app.tried["ws: handshake query strings"] += 1
    if with_token:
        query = {**query, "token": app.token("oscar")}
    mark = app.recorder.mark()
    url = f"{app.ep.websocket}?{urlencode(query)}"
    try:
        with connect(url, open_timeout=30) as connection:
            connection.send('{"action": "ping"}')
            # A member by `&room=` also hears the room (another connection leaving it).
            while (frame := json.loads(connection.recv(30))) != {"type": "pong"}:
                assert frame["type"] in ANSWER_TYPES, frame
    except InvalidStatus as refused:
        assert 400 <= refused.response.status_code < 500, refused.response
    assert app.recorder.faults_since(mark) == []
