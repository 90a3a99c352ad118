"""$connect, $default and $disconnect handlers, end to end against moto."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from app_support import ENDPOINT, SECRET, table_items, token
from realtime import auth, clock
from realtime.store import channel_target, room_target

# --- $connect ---------------------------------------------------------------------------


def test_connect_with_valid_token_stores_the_connection(app, store):
    assert app.connect("c1", "alice", "admin") == {"statusCode": 200}
    connection = store.get_connection("c1")
    assert (connection.user, connection.role) == ("alice", "admin")
    item = store.connections.get_item(Key={"connectionId": "c1"})["Item"]
    assert item["expiresAt"] > clock.epoch_seconds(clock.now() + timedelta(hours=2))
    assert store.targets_of("c1") == []
    assert app.management.posts == []  # nothing is posted to a connecting client


@pytest.mark.parametrize(
    "bad",
    [
        None,  # no token at all
        "not-a-jwt",
        auth.issue("another-secret-" + "y" * 40, "alice", "user"),
        auth.issue(SECRET, "alice", "user", ttl=timedelta(seconds=-10)),  # expired
    ],
)
def test_connect_refuses_missing_invalid_or_expired_tokens(app, dynamodb, bad):
    response = app.connect("c1", token_value=bad)
    assert response["statusCode"] == 401
    assert all(not items for items in table_items(dynamodb).values())


def test_connect_with_room_only_stores_the_membership(app, store):
    """No fan-out from $connect: members still connecting would answer 410 (fidelity G1)."""
    app.connect("c1", "bob", room="general")
    assert app.connect("c2", "alice", room="general") == {"statusCode": 200}
    assert store.is_member(room_target("general"), "c2")
    assert app.management.posts == []
    item = store.memberships.get_item(Key={"target": room_target("general"), "connectionId": "c2"})
    assert item["Item"]["connectedAt"] == 1764095400000  # the event's requestContext.connectedAt
    assert item["Item"]["unannounced"] is True
    assert app.management.endpoints[-1] == ENDPOINT  # from the event's domainName and stage


def test_join_after_a_room_connect_announces_the_user_exactly_once(app, store):
    app.connect("c1", "bob", room="general")
    app.send("c1", {"action": "join", "room": "general"})
    app.connect("c2", "alice", room="general")
    app.management.clear()
    app.send("c2", {"action": "join", "room": "general"})
    joined = {"type": "joined", "room": "general", "user": "alice"}
    assert app.management.types("c2") == ["history", "presence", "joined"]
    assert app.management.frames("c2")[1]["count"] == 2
    assert app.management.frames("c1") == [joined]
    app.management.clear()
    app.send("c2", {"action": "join", "room": "general"})
    assert app.management.types("c2") == ["history", "presence"]
    assert app.management.frames("c1") == []
    item = store.memberships.get_item(Key={"target": room_target("general"), "connectionId": "c2"})
    assert "unannounced" not in item["Item"]
    assert store.targets_of("c2") == [room_target("general")]


def test_a_burst_of_room_connects_keeps_every_member(app, store):
    """The room benchmark's case: clients connecting together, each still in $connect."""
    now_ms = clock.epoch_seconds(clock.now()) * 1000
    ids = [f"c{n:02d}" for n in range(20)]
    app.management.gone.update(ids)  # none of them can receive yet
    for n, cid in enumerate(ids):
        assert app.connect(cid, f"u{n}", room="general", connected_at=now_ms)["statusCode"] == 200
    members = [c for page in store.recipient_pages(room_target("general")) for c, _ in page]
    assert sorted(members) == ids
    assert all(store.get_connection(cid) is not None for cid in ids)


def test_a_message_while_a_member_is_connecting_does_not_delete_it(app, store, capsys):
    """410 within 30 s of connectedAt: the frame is not delivered, nothing is deleted."""
    app.connect("c1", "bob", room="general")
    app.send("c1", {"action": "join", "room": "general"})
    now_ms = clock.epoch_seconds(clock.now()) * 1000
    app.connect("c2", "alice", room="general", connected_at=now_ms)
    app.management.gone.add("c2")  # its $connect has not finished
    capsys.readouterr()
    app.send("c1", {"action": "send", "room": "general", "text": "early"})
    emf = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and "_aws" in line
    ]
    assert emf[-1]["GoneWhileConnecting"] == [1.0] and emf[-1]["GoneConnections"] == [0.0]
    assert store.get_connection("c2") is not None
    assert store.is_member(room_target("general"), "c2")
    app.management.gone.discard("c2")  # the socket is open now
    app.management.clear()
    app.send("c2", {"action": "join", "room": "general"}, connected_at=now_ms)
    history, presence, joined = app.management.frames("c2")
    assert [m["text"] for m in history["messages"]] == ["early"]  # what it missed
    assert presence["count"] == 2 and joined["user"] == "alice"
    app.send("c2", {"action": "send", "room": "general", "text": "hi"}, connected_at=now_ms)
    assert app.management.frames("c1")[-1]["text"] == "hi"  # not refused as forbidden


def test_gone_after_the_connect_window_still_deletes(app, store):
    old_ms = clock.epoch_seconds(clock.now() - timedelta(seconds=31)) * 1000
    app.connect("c1", "bob", room="general")
    app.connect("c2", "alice", room="general", connected_at=old_ms)
    app.management.gone.add("c2")
    app.send("c1", {"action": "send", "room": "general", "text": "anyone?"})
    assert store.get_connection("c2") is None and store.targets_of("c2") == []


def test_connect_with_invalid_room_is_refused(app, store):
    assert app.connect("c1", room="no spaces!")["statusCode"] == 400
    assert store.get_connection("c1") is None


# --- $default ---------------------------------------------------------------------------


def test_join_sends_history_and_presence_and_tells_the_room(app):
    app.connect("c1", "bob")
    app.connect("c2", "alice")
    app.send("c1", {"action": "join", "room": "general"})
    app.send("c1", {"action": "send", "room": "general", "text": "first"})
    app.management.clear()
    app.send("c2", {"action": "join", "room": "general"})
    history, presence, joined = app.management.frames("c2")
    assert history["type"] == "history" and history["next"] is None
    assert [m["text"] for m in history["messages"]] == ["first"]
    assert presence == {
        "type": "presence",
        "room": "general",
        "members": ["alice", "bob"],
        "count": 2,
    }
    assert joined == {"type": "joined", "room": "general", "user": "alice"}
    assert app.management.frames("c1") == [joined]


def test_join_is_idempotent(app, store):
    app.connect("c1", "bob")
    app.send("c1", {"action": "join", "room": "general"})
    app.management.clear()
    app.send("c1", {"action": "join", "room": "general"})
    assert app.management.types("c1") == ["history", "presence"]  # no second "joined"
    assert store.targets_of("c1") == [room_target("general")]


def test_leave_removes_membership_and_tells_room_and_leaver(app, store):
    app.connect("c1", "bob", room="general")
    app.connect("c2", "alice", room="general")
    app.management.clear()
    app.send("c2", {"action": "leave", "room": "general"})
    left = {"type": "left", "room": "general", "user": "alice"}
    assert app.management.frames("c1") == [left]
    assert app.management.frames("c2") == [left]
    assert not store.is_member(room_target("general"), "c2")


def test_leave_a_room_one_is_not_in_is_an_error(app):
    app.connect("c1")
    app.send("c1", {"action": "leave", "room": "general"})
    assert app.management.frames("c1") == [
        {
            "type": "error",
            "code": "not_member",
            "action": "leave",
            "message": "You are not in room 'general'.",
        }
    ]


def test_send_stores_and_broadcasts_to_the_room_only(app, store):
    app.connect("c1", "alice", room="general")
    app.connect("c2", "bob", room="general")
    app.connect("c3", "carol", room="random")
    app.management.clear()
    app.send("c1", {"action": "send", "room": "general", "text": "hello"})
    to_alice, to_bob = app.management.frames("c1"), app.management.frames("c2")
    assert to_alice == to_bob and len(to_alice) == 1
    message = to_alice[0]
    assert message["type"] == "message" and message["sender"] == "alice"
    assert message["text"] == "hello" and message["room"] == "general"
    assert message["sentAt"].endswith("Z") and len(message["id"]) == 26
    assert app.management.frames("c3") == []  # room isolation
    items, _ = store.latest_messages("general", 10)
    assert [i.id for i in items] == [message["id"]]
    assert store.latest_messages("random", 10) == ([], None)


def test_send_requires_membership(app, store):
    app.connect("c1", room="random")
    app.send("c1", {"action": "send", "room": "general", "text": "hello"})
    [error] = app.management.frames("c1")
    assert (error["type"], error["code"], error["action"]) == ("error", "not_member", "send")
    assert store.latest_messages("general", 10) == ([], None)


def test_history_pages_backwards_without_gaps_or_overlap(app):
    app.connect("c1", room="general")
    sent = []
    for n in range(7):
        app.send("c1", {"action": "send", "room": "general", "text": f"m{n}"})
    sent = [f["id"] for f in app.management.frames("c1") if f["type"] == "message"]
    pages, before = [], None
    while True:
        app.management.clear()
        frame = {"action": "history", "room": "general", "limit": 3}
        if before:
            frame["before"] = before
        app.send("c1", frame)
        [page] = app.management.frames("c1")
        pages.append([m["id"] for m in page["messages"]])
        before = page["next"]
        if before is None:
            break
    assert pages == [sent[4:7], sent[1:4], sent[0:1]]  # newest page first, each oldest first


def test_history_exact_page_has_no_dangling_cursor(app):
    app.connect("c1", room="general")
    for n in range(3):
        app.send("c1", {"action": "send", "room": "general", "text": f"m{n}"})
    app.management.clear()
    app.send("c1", {"action": "history", "room": "general", "limit": 3})
    [page] = app.management.frames("c1")
    assert len(page["messages"]) == 3 and page["next"] is None


def test_history_rejects_a_cursor_of_another_room(app):
    app.connect("c1", room="general")
    app.send("c1", {"action": "join", "room": "random"})
    for n in range(3):
        app.send("c1", {"action": "send", "room": "random", "text": f"m{n}"})
    app.management.clear()
    app.send("c1", {"action": "history", "room": "random", "limit": 1})
    cursor = app.management.frames("c1")[0]["next"]
    assert cursor
    app.management.clear()
    app.send("c1", {"action": "history", "room": "general", "before": cursor})
    [error] = app.management.frames("c1")
    assert error["code"] == "invalid_request" and "before" in error["message"]


def test_history_requires_membership(app):
    app.connect("c1")
    app.send("c1", {"action": "history", "room": "general"})
    assert app.management.frames("c1")[0]["code"] == "not_member"


def test_subscribe_as_admin_gets_an_income_snapshot(app, store):
    app.connect("c1", "root", "admin")
    app.send("c1", {"action": "subscribe", "channel": "admin_dashboard"})
    [snapshot] = app.management.frames("c1")
    assert snapshot["type"] == "income" and snapshot["updated"] is None
    assert len(snapshot["weeks"]) == 12 and snapshot["weeks"][-1]["week"] == snapshot["currentWeek"]
    assert all(w["total"] == 0 and w["count"] == 0 for w in snapshot["weeks"])
    assert store.is_member(channel_target("admin_dashboard"), "c1")
    app.send("c1", {"action": "unsubscribe", "channel": "admin_dashboard"})
    assert not store.is_member(channel_target("admin_dashboard"), "c1")


def test_subscribe_is_for_admins_only(app, store):
    app.connect("c1", "alice", "user")
    app.send("c1", {"action": "subscribe", "channel": "admin_dashboard"})
    [error] = app.management.frames("c1")
    assert (error["code"], error["action"]) == ("forbidden", "subscribe")
    assert not store.is_member(channel_target("admin_dashboard"), "c1")


def test_ping_answers_pong(app):
    app.connect("c1")
    assert app.send("c1", {"action": "ping"}) == {"statusCode": 200}
    assert app.management.frames("c1") == [{"type": "pong"}]


def test_binary_frames_are_decoded(app):
    app.connect("c1")
    app.send("c1", json.dumps({"action": "ping"}), binary=True)
    assert app.management.frames("c1") == [{"type": "pong"}]


INVALID_FRAMES = [
    ("not json", "invalid_json"),
    ("[1, 2]", "invalid_json"),
    ("", "invalid_json"),
    ({"room": "general"}, "unknown_action"),
    ({"action": "dance"}, "unknown_action"),
    ({"action": 7}, "unknown_action"),
    ({"action": "join"}, "invalid_request"),
    ({"action": "join", "room": "has space"}, "invalid_request"),
    ({"action": "join", "room": "x" * 65}, "invalid_request"),
    ({"action": "join", "room": 12}, "invalid_request"),
    ({"action": "leave", "room": ""}, "invalid_request"),
    ({"action": "send", "room": "general"}, "invalid_request"),
    ({"action": "send", "room": "general", "text": ""}, "invalid_request"),
    ({"action": "send", "room": "general", "text": "   \n"}, "invalid_request"),
    ({"action": "send", "room": "general", "text": "x" * 2001}, "invalid_request"),
    ({"action": "send", "room": "general", "text": 5}, "invalid_request"),
    ({"action": "history", "room": "general", "limit": 0}, "invalid_request"),
    ({"action": "history", "room": "general", "limit": 101}, "invalid_request"),
    ({"action": "history", "room": "general", "limit": "5"}, "invalid_request"),
    ({"action": "history", "room": "general", "before": "!!garbage!!"}, "invalid_request"),
    ({"action": "subscribe", "channel": "other"}, "invalid_request"),
    ({"action": "subscribe"}, "invalid_request"),
    ({"action": "unsubscribe", "channel": "x"}, "invalid_request"),
]


@pytest.mark.parametrize(("frame", "code"), INVALID_FRAMES)
def test_invalid_frames_get_an_error_and_change_nothing(app, dynamodb, frame, code):
    app.connect("c1", "root", "admin", room="general")
    app.connect("c2", "bob", room="general")
    app.send("c1", {"action": "send", "room": "general", "text": "before"})
    app.management.clear()
    before = table_items(dynamodb)
    assert app.send("c1", frame) == {"statusCode": 200}
    assert table_items(dynamodb) == before
    [error] = app.management.frames("c1")
    assert error["type"] == "error" and error["code"] == code and error["message"]
    assert app.management.frames("c2") == []


def test_the_message_length_limit_is_inclusive(app):
    app.connect("c1", room="general")
    app.send("c1", {"action": "send", "room": "general", "text": "x" * 2000})
    assert app.management.types("c1") == ["message"]


def test_frames_from_an_unregistered_connection_are_refused(app):
    app.send("ghost", {"action": "ping"})
    assert app.management.frames("ghost")[0]["code"] == "forbidden"


def test_an_unexpected_failure_answers_internal(app, monkeypatch):
    app.connect("c1")
    monkeypatch.setattr(
        app.message_fn.store,
        "get_connection",
        lambda cid: (_ for _ in ()).throw(RuntimeError("boom")),
    )
    assert app.send("c1", {"action": "ping"})["statusCode"] == 500
    assert app.management.frames("c1")[0]["code"] == "internal"


def test_fanout_metrics_are_emitted(app, capsys):
    app.connect("c1", room="general")
    app.connect("c2", "bob", room="general")
    capsys.readouterr()
    app.send("c1", {"action": "send", "room": "general", "text": "hi"})
    emf = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and "_aws" in line
    ]
    assert emf and emf[-1]["FanoutRecipients"] == [2.0] and emf[-1]["GoneConnections"] == [0.0]
    assert emf[-1]["GoneWhileConnecting"] == [0.0]


# --- $disconnect ------------------------------------------------------------------------


def test_disconnect_removes_connection_and_memberships_and_tells_rooms(app, store, dynamodb):
    app.connect("c1", "alice", "admin", room="general")
    app.send("c1", {"action": "join", "room": "random"})
    app.send("c1", {"action": "subscribe", "channel": "admin_dashboard"})
    app.connect("c2", "bob", room="general")
    app.connect("c3", "carol", room="random")
    app.management.clear()
    assert app.disconnect("c1") == {"statusCode": 200}
    assert store.get_connection("c1") is None
    assert store.targets_of("c1") == []
    items = table_items(dynamodb)
    assert all(i["connectionId"] != "c1" for i in items["MEMBERSHIPS_TABLE"])
    assert app.management.frames("c2") == [{"type": "left", "room": "general", "user": "alice"}]
    assert app.management.frames("c3") == [{"type": "left", "room": "random", "user": "alice"}]
    assert app.management.frames("c1") == []


def test_disconnect_of_an_unknown_connection_is_harmless(app):
    assert app.disconnect("never-seen") == {"statusCode": 200}


def test_gone_members_are_removed_during_a_broadcast(app, store):
    app.connect("c1", "alice", room="general")
    app.connect("c2", "bob", room="general")
    app.send("c2", {"action": "join", "room": "random"})
    app.connect("c3", "carol", room="general")
    app.management.gone.add("c2")
    app.management.broken.add("c3")
    app.send("c1", {"action": "send", "room": "general", "text": "anyone?"})
    assert app.management.types("c1")[-1] == "message"
    assert store.get_connection("c2") is None and store.targets_of("c2") == []
    assert store.get_connection("c3") is not None  # other errors do not delete


def test_token_helper_round_trip():
    identity = auth.verify(SECRET, token("zed", "admin"))
    assert identity == auth.Identity("zed", "admin") and identity.is_admin
