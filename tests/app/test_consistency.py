"""Consistent chat and dashboards: per-connection send order, retries stored and delivered
once (also after a fan-out a dead worker left half done), versioned `income` frames,
idempotent `POST /transactions`, and presence that costs O(K) frames for K joins."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from realtime import clock, fanout, transactions
from realtime.auth import Identity
from realtime.chat import Chat
from realtime.store import channel_target


def send(room: str, text: str, seq: int | None = None, client_id: str | None = None) -> str:
    frame: dict = {"action": "send", "room": room, "text": text}
    if seq is not None:
        frame["seq"] = seq
    if client_id is not None:
        frame["clientId"] = client_id
    return json.dumps(frame)


def first_arrivals(frames: list[dict]) -> list[str]:
    """The texts of `message` frames in arrival order, each id counted once (what a client
    that drops a copy by its `id` shows)."""
    seen: set[str] = set()
    texts = []
    for frame in frames:
        if frame["type"] == "message" and frame["id"] not in seen:
            seen.add(frame["id"])
            texts.append(frame["text"])
    return texts


@pytest.fixture
def room(app):
    """alice (c1, the sender) and bob, carol (readers) in `general`."""
    for cid, user in (("c1", "alice"), ("c2", "bob"), ("c3", "carol")):
        app.connect(cid, user, room="general")
    app.management.clear()
    return app


def test_a_seq_ahead_of_its_turn_is_refused_and_changes_nothing(room, store):
    room.send("c1", send("general", "second", seq=2, client_id="m2"))
    [error] = room.management.frames("c1")
    assert error == {
        "type": "error", "code": "out_of_order", "action": "send", "clientId": "m2",
        "expected": 1, "message": error["message"],
    }
    assert room.management.frames("c2") == [] and store.latest_messages("general", 10)[0] == []
    room.send("c1", send("general", "first", seq=1, client_id="m1"))
    room.send("c1", send("general", "second", seq=2, client_id="m2"))
    acks = [f for f in room.management.frames("c1") if f["type"] == "ack"]
    assert [(a["clientId"], a["seq"], a["duplicate"]) for a in acks] == [
        ("m1", 1, False), ("m2", 2, False)
    ]
    # The ack follows the message: the fan-out is complete when the sender hears of it.
    assert room.management.types("c1")[1:] == ["message", "ack", "message", "ack"]
    assert first_arrivals(room.management.frames("c2")) == ["first", "second"]
    assert [m.text for m in store.latest_messages("general", 10)[0]] == ["first", "second"]
    assert [m.seq for m in store.latest_messages("general", 10)[0]] == [1, 2]


def test_a_send_without_seq_or_client_id_gets_no_ack(room):
    room.send("c1", send("general", "plain"))
    assert room.management.types("c1") == ["message"]


def test_history_keeps_seq_order_when_the_clock_goes_back(dynamodb, store, management):
    instants = iter([datetime(2026, 11, 25, 12, 0, 10, tzinfo=UTC),
                     datetime(2026, 11, 25, 12, 0, 5, tzinfo=UTC)])
    chat = Chat(store, fanout.Fanout(management, store), presence_window_ms=0,
                now=lambda: next(instants, datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)))
    chat.connect("c1", Identity("alice", "user"), "general")
    for seq, text in ((1, "one"), (2, "two")):
        chat.handle("c1", send("general", text, seq=seq, client_id=f"m{seq}"))
    messages, _ = store.latest_messages("general", 10)
    assert [m.text for m in messages] == ["one", "two"]
    assert messages[0].id < messages[1].id and messages[0].sent_at < messages[1].sent_at


def test_concurrent_sends_of_one_connection_land_in_seq_order(
    dynamodb, store, management, serializable_moto
):
    """API Gateway may hand one connection's frames to several Lambda instances at once:
    8 sends race, each retried on `out_of_order` until acknowledged. Storage, and what every
    reader sees first, follow `seq`."""
    chat = Chat(store, fanout.Fanout(management, store), presence_window_ms=0)
    for cid, user in (("c1", "alice"), ("c2", "bob")):
        chat.connect(cid, Identity(user, "user"), "general")
    count = 8
    refusals = []
    barrier = threading.Barrier(count)

    def sender(seq: int) -> None:
        barrier.wait()
        while True:
            before = len(management.frames("c1"))
            chat.handle("c1", send("general", f"m{seq}", seq=seq, client_id=f"id{seq}"))
            answers = management.frames("c1")[before:]
            if any(a["type"] == "ack" and a["seq"] == seq for a in answers):
                return
            refusals.append(seq)
            time.sleep(0.002)

    with ThreadPoolExecutor(count) as pool:
        list(pool.map(sender, range(1, count + 1)))
    expected = [f"m{n}" for n in range(1, count + 1)]
    assert refusals  # the race happened: some sends came before their turn
    assert [m.text for m in store.latest_messages("general", 50)[0]] == expected
    assert first_arrivals(management.frames("c2")) == expected
    assert first_arrivals(management.frames("c1")) == expected


class WorkerDied(BaseException):
    """What the fan-out sees when its Lambda instance is killed: nothing catches it."""


def test_a_retry_after_a_half_done_fan_out_is_stored_and_delivered_once(room, store):
    management = room.management
    original = management.post_to_connection

    def dying(ConnectionId: str, Data: bytes) -> dict:  # noqa: N803
        if ConnectionId == "c3":
            raise WorkerDied
        return original(ConnectionId=ConnectionId, Data=Data)

    management.post_to_connection = dying
    with pytest.raises(WorkerDied):
        room.send("c1", send("general", "hello", seq=1, client_id="m1"))
    management.post_to_connection = original
    assert "ack" not in room.management.types("c1")
    # The next seq waits for this one to be delivered.
    room.send("c1", send("general", "after", seq=2, client_id="m2"))
    assert room.management.frames("c1")[-1]["expected"] == 1
    room.send("c1", send("general", "hello", seq=1, client_id="m1"))  # the client's retry
    ack = room.management.frames("c1")[-1]
    assert (ack["type"], ack["clientId"], ack["duplicate"]) == ("ack", "m1", True)
    room.send("c1", send("general", "after", seq=2, client_id="m2"))
    stored = store.latest_messages("general", 10)[0]
    assert [m.text for m in stored] == ["hello", "after"]  # stored once
    for reader in ("c1", "c2", "c3"):
        frames = [f for f in room.management.frames(reader) if f["type"] == "message"]
        assert {f["id"] for f in frames if f["text"] == "hello"} == {stored[0].id}
        assert first_arrivals(frames) == ["hello", "after"]


def test_a_retry_on_a_new_connection_is_not_stored_again(room, store):
    room.send("c1", send("general", "hello", seq=1, client_id="m1"))
    room.disconnect("c1")
    room.connect("c1b", "alice", room="general")
    room.send("c1b", send("general", "hello", seq=1, client_id="m1"))
    assert room.management.frames("c1b")[-1]["duplicate"] is True
    room.send("c1b", send("general", "next", seq=2, client_id="m2"))
    assert room.management.frames("c1b")[-1]["type"] == "ack"
    assert [m.text for m in store.latest_messages("general", 10)[0]] == ["hello", "next"]


def test_a_client_id_reused_for_another_text_is_refused(room, store):
    room.send("c1", send("general", "hello", client_id="m1"))
    room.send("c1", send("general", "other", client_id="m1"))
    error = room.management.frames("c1")[-1]
    assert (error["code"], error["clientId"]) == ("invalid_request", "m1")
    assert [m.text for m in store.latest_messages("general", 10)[0]] == ["hello"]


def test_client_ids_belong_to_their_sender(room, store):
    room.send("c1", send("general", "from alice", client_id="same"))
    room.send("c2", send("general", "from bob", client_id="same"))
    assert len(store.latest_messages("general", 10)[0]) == 2


# --- income versions ------------------------------------------------------------------------


def test_income_versions_agree_with_their_totals_under_concurrent_verifies(
    dynamodb, store, management, serializable_moto
):
    import boto3
    from realtime.models import NewTransaction
    from realtime.store import Store

    now = clock.now()
    created = [
        transactions.create(store, NewTransaction(amount=2**n, description=f"t{n}"), now)
        for n in range(8)
    ]
    store.add_member(channel_target("admin_dashboard"), "dash", "root", 2**31)
    barrier = threading.Barrier(len(created))

    def verify(t) -> None:
        own = Store.from_env(boto3.session.Session().resource("dynamodb", region_name="us-east-1"))
        barrier.wait()
        transactions.verify(own, t.id, "root", now, fanout.Fanout(management, own))

    with ThreadPoolExecutor(len(created)) as pool:
        list(pool.map(verify, created))
    frames = management.frames("dash")
    assert len(frames) == len(created)
    for frame in frames:  # a frame's totals are exactly those of its version
        assert sum(w["count"] for w in frame["weeks"]) == frame["version"]
    newest = max(frames, key=lambda f: f["version"])
    assert newest["version"] == len(created) and newest["weeks"][-1]["total"] == 2**8 - 1


def test_subscribe_snapshot_carries_the_version(app, store):
    app.connect("a1", "root", "admin")
    app.send("a1", {"action": "subscribe", "channel": "admin_dashboard"})
    [snapshot] = app.management.frames("a1")
    assert snapshot["version"] == 0 and snapshot["updated"] is None


# --- Idempotency-Key on POST /transactions --------------------------------------------------


def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer(admin_api):
    body = {"amount": 1250, "description": "Invoice 7"}
    first = admin_api("POST", "/transactions", body=body, headers={"idempotency-key": "k-1"})
    again = admin_api("POST", "/transactions", body=body, headers={"idempotency-key": "k-1"})
    assert first[0] == again[0] == 201 and first[1] == again[1]
    other = admin_api("POST", "/transactions", body=body, headers={"idempotency-key": "k-2"})
    assert other[1]["transaction"]["id"] != first[1]["transaction"]["id"]
    listed = admin_api("GET", "/transactions")[1]["transactions"]
    assert len(listed) == 2


def test_an_idempotency_key_reused_with_another_body_or_malformed_is_refused(admin_api):
    admin_api("POST", "/transactions", body={"amount": 1, "description": "a"},
         headers={"idempotency-key": "k"})
    status, body = admin_api("POST", "/transactions", body={"amount": 2, "description": "a"},
                        headers={"idempotency-key": "k"})
    assert (status, body["code"]) == (422, "idempotency_key_reused")
    status, body = admin_api("POST", "/transactions", body={"amount": 2, "description": "a"},
                        headers={"idempotency-key": "with space"})
    assert (status, body["code"]) == (400, "invalid_request")
    assert len(admin_api("GET", "/transactions")[1]["transactions"]) == 1


def test_without_a_key_every_post_creates(admin_api):
    for _ in range(2):
        assert admin_api("POST", "/transactions", body={"amount": 1, "description": "a"})[0] == 201
    assert len(admin_api("GET", "/transactions")[1]["transactions"]) == 2


# --- presence ---------------------------------------------------------------------------------


def test_a_burst_of_joins_costs_o_k_frames_and_ends_consistent(
    dynamodb, store, management, serializable_moto, monkeypatch
):
    """K joins within one presence window (virtual time: the clock stands still until the
    test ends the window): each joiner gets history at once; at the window's end the room
    gets ONE `presence` snapshot, not K × K frames, and it is every joiner's presence: the
    member list is read once per window, not once per join. Every member's view, replayed
    from its frames, ends with all K."""
    k = 40
    member_queries = []
    query = store.memberships.query

    def counted(**kwargs):
        member_queries.append(kwargs)
        return query(**kwargs)

    monkeypatch.setattr(store.memberships, "query", counted)
    instant = [datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)]
    window_over = threading.Event()
    chat = Chat(store, fanout.Fanout(management, store), presence_window_ms=250,
                now=lambda: instant[0], sleep=lambda _seconds: window_over.wait(30))
    users = [f"u{n:02d}" for n in range(k)]
    for n, user in enumerate(users):
        chat.connect(f"c{n}", Identity(user, "user"), None)
    finished = threading.Semaphore(0)

    def join(n: int) -> None:
        chat.handle(f"c{n}", json.dumps({"action": "join", "room": "general"}))
        finished.release()

    with ThreadPoolExecutor(k) as pool:
        for n in range(k):
            pool.submit(join, n)
        for _ in range(k - 1):  # every join but the window's first, which waits for its end
            assert finished.acquire(timeout=30)
        instant[0] += timedelta(milliseconds=300)
        window_over.set()
    presence_frames = [json.loads(d) for _, d in management.posts
                       if json.loads(d)["type"] in ("joined", "presence")]
    assert len(presence_frames) == k  # one snapshot to each; a `joined` per join: K² = 1 600
    assert all(f["type"] == "presence" and f["count"] == k for f in presence_frames)
    assert len(member_queries) == 2  # the snapshot's users, then its recipients
    for n in range(k):
        assert management.types(f"c{n}")[0] == "history"
    for n in range(k):
        view: set[str] = set()
        for frame in management.frames(f"c{n}"):
            if frame["type"] == "presence":
                view = set(frame["members"])
            elif frame["type"] == "joined":
                view.add(frame["user"])
        assert view == set(users), f"c{n}"


def test_without_a_window_every_join_is_announced_at_once(room):
    room.connect("c4", "dave", room=None)
    room.send("c4", {"action": "join", "room": "general"})
    assert room.management.frames("c2")[-1] == {"type": "joined", "room": "general", "user": "dave"}


def test_income_version_grows_by_one_per_verify(admin_api, app):
    for amount in (5, 7):
        t = admin_api("POST", "/transactions", body={"amount": amount, "description": "x"})[1]
        assert admin_api("POST", f"/transactions/{t['transaction']['id']}/verify")[0] == 200
    app.connect("a1", "root", "admin")
    app.send("a1", {"action": "subscribe", "channel": "admin_dashboard"})
    assert app.management.frames("a1")[-1]["version"] == 2



def test_a_send_that_died_before_storing_is_finished_by_its_retry_elsewhere(room, store):
    """Claimed but never stored (the worker died between the two writes): the retry, here
    on a new connection, stores it under the id and time first given to it."""
    original = store.put_message
    calls = []

    def dying(message, expires_at):
        calls.append(message)
        raise WorkerDied

    fn = room.message_fn
    fn.store.put_message = dying
    try:
        with pytest.raises(WorkerDied):
            room.send("c1", send("general", "hello", seq=1, client_id="m1"))
    finally:
        fn.store.put_message = original
    assert store.latest_messages("general", 10)[0] == []
    room.connect("c1b", "alice", room="general")
    room.send("c1b", send("general", "hello", seq=1, client_id="m1"))
    [stored] = store.latest_messages("general", 10)[0]
    assert (stored.id, stored.sent_at) == (calls[0].id, calls[0].sent_at)
    assert room.management.frames("c1b")[-1]["type"] == "ack"
    assert first_arrivals(room.management.frames("c2")) == ["hello"]


def test_where_the_member_list_is_capped_a_join_sends_the_room_a_snapshot(room, monkeypatch):
    """A `joined` delta cannot keep the count of a capped list: the room gets the joiner's
    `presence` snapshot (with the count) instead."""
    from realtime import chat

    monkeypatch.setattr(chat, "PRESENCE_MEMBERS", 2)
    room.connect("c4", "dave", room=None)
    room.send("c4", {"action": "join", "room": "general"})
    last = room.management.frames("c2")[-1]
    assert (last["type"], last["count"], len(last["members"])) == ("presence", 4, 2)


def test_a_presence_window_is_claimed_once_and_replaced_once_over(store):
    assert store.claim_presence_window("general", None, 1_000, 2**31)
    assert not store.claim_presence_window("general", None, 1_500, 2**31)  # claimed already
    assert store.claim_presence_window("general", 1_000, 2_000, 2**31)  # the next window
    assert store.presence_window("general") == 2_000
    assert not store.claim_presence_window("general", 1_000, 3_000, 2**31)  # stale read
