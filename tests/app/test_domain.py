"""The layer's domain modules without handlers: auth, income weeks, ids, cursors, fan-out."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import boto3
import jwt
import pytest
from app_support import SECRET
from botocore.stub import Stubber
from realtime import auth, fanout, ids, income
from realtime.models import JoinedFrame, MessageFrame
from realtime.store import InvalidCursor, decode_cursor, encode_cursor, room_target

# --- auth -------------------------------------------------------------------------------


def test_tokens_round_trip_and_carry_the_claims():
    now = datetime.now(UTC)
    token = auth.issue(SECRET, "alice", "admin", ttl=timedelta(minutes=5), now=now)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 300
    assert auth.verify(SECRET, token) == auth.Identity("alice", "admin")


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "alice", "role": "root"},
        {"sub": "al ice", "role": "user"},
        {"role": "user"},
        {"sub": "alice"},
    ],
)
def test_tokens_with_bad_claims_are_refused(claims):
    now = int(time.time())
    token = jwt.encode({"iat": now, "exp": now + 60, **claims}, SECRET, algorithm="HS256")
    with pytest.raises(auth.AuthError):
        auth.verify(SECRET, token)


def test_tokens_without_expiry_or_with_another_algorithm_are_refused():
    now = int(time.time())
    with pytest.raises(auth.AuthError):
        auth.verify(SECRET, jwt.encode({"sub": "a", "role": "user", "iat": now}, SECRET))
    unsigned = jwt.encode(
        {"sub": "a", "role": "admin", "iat": now, "exp": now + 60}, None, algorithm="none"
    )
    with pytest.raises(auth.AuthError):
        auth.verify(SECRET, unsigned)
    with pytest.raises(auth.AuthError, match="expired"):
        auth.verify(SECRET, auth.issue(SECRET, "a", "user", ttl=timedelta(seconds=-1)))
    with pytest.raises(auth.AuthError, match="missing"):
        auth.verify(SECRET, "")


def test_issue_validates_its_input():
    with pytest.raises(ValueError):
        auth.issue(SECRET, "no spaces", "user")
    with pytest.raises(ValueError):
        auth.issue(SECRET, "alice", "superuser")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        (None, None),
        ("", None),
    ],
)
def test_bearer_header(header, expected):
    assert auth.bearer(header) == expected


# --- income -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "week"),
    [
        ("2026-11-29T23:59:59.999+00:00", "2026-W48"),  # Sunday
        ("2026-11-30T00:00:00+00:00", "2026-W49"),  # Monday
        ("2026-11-30T00:30:00+01:00", "2026-W48"),  # Monday in Paris is Sunday in UTC
        ("2026-12-31T12:00:00+00:00", "2026-W53"),  # 2026 has 53 ISO weeks
        ("2027-01-03T23:59:59+00:00", "2026-W53"),
        ("2027-01-04T00:00:00+00:00", "2027-W01"),
        ("2025-12-29T00:00:00+00:00", "2026-W01"),  # ISO 2026 starts in December 2025
    ],
)
def test_week_of(instant, week):
    assert income.week_of(datetime.fromisoformat(instant)) == week


def test_weeks_ending_crosses_the_year():
    assert income.weeks_ending("2027-W02", 4) == ["2026-W52", "2026-W53", "2027-W01", "2027-W02"]
    assert income.weeks_ending("2026-W01", 2) == ["2025-W52", "2026-W01"]
    with pytest.raises(ValueError):
        income.monday_of("2026-48")


def test_series_fills_empty_weeks_with_zeros(store):
    store.weekly_income.put_item(
        Item={"series": "weekly", "week": "2026-W53", "total": 5, "count": 1}
    )
    store.weekly_income.put_item(
        Item={"series": "weekly", "week": "2026-W40", "total": 9, "count": 1}
    )  # outside the window
    weeks = income.series(store, "2027-W01", 3)
    assert [w.to_wire() for w in weeks] == [
        {"week": "2026-W52", "total": 0, "count": 0},
        {"week": "2026-W53", "total": 5, "count": 1},
        {"week": "2027-W01", "total": 0, "count": 0},
    ]


# --- ids and cursors --------------------------------------------------------------------


def test_ids_sort_by_time():
    base = datetime(2026, 11, 25, tzinfo=UTC)
    made = [ids.new_id(base + timedelta(milliseconds=n)) for n in (0, 1, 1000, 86_400_000)]
    assert made == sorted(made) and all(len(i) == 26 for i in made)


def test_cursors_round_trip_and_are_checked():
    cursor = encode_cursor({"room": "general", "id": "01X"})
    assert decode_cursor(cursor, keys={"room", "id"}, fixed={"room": "general"}) == {
        "room": "general",
        "id": "01X",
    }
    for bad in (
        "!!",
        encode_cursor({"room": "general"}),
        encode_cursor({"room": 1, "id": "x"}),
        "bm90IGpzb24",
    ):
        with pytest.raises(InvalidCursor):
            decode_cursor(bad, keys={"room", "id"})
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, keys={"room", "id"}, fixed={"room": "random"})


# --- fan-out ----------------------------------------------------------------------------


def add_members(store, room, count):
    for n in range(count):
        store.put_connection(f"c{n:03d}", f"user{n}", "user", "2026-11-25T00:00:00.000Z", 2**31)
        store.add_member(room_target(room), f"c{n:03d}", f"user{n}", 2**31)


class CountingQueries:
    """Counts the Memberships Query pages a fan-out reads."""

    def __init__(self, store, monkeypatch):
        self.pages = 0
        original = store.memberships.query

        def query(**kwargs):
            self.pages += 1
            assert kwargs.get("Limit") == store.page_size
            return original(**kwargs)

        monkeypatch.setattr(store.memberships, "query", query)


def test_fanout_reaches_a_room_larger_than_one_query_page(store, management, monkeypatch):
    add_members(store, "big", 11)
    store.page_size = 3
    counter = CountingQueries(store, monkeypatch)
    frame = JoinedFrame(room="big", user="x")
    result = fanout.Fanout(management, store, workers=4).to_target(
        room_target("big"), frame, exclude={"c005"}
    )
    assert counter.pages == 4  # 3 + 3 + 3 + 2, one Query each: never a Scan
    assert (result.recipients, result.sent, result.gone, result.failed) == (10, 10, [], 0)
    assert sorted(c for c, _ in management.posts) == [f"c{n:03d}" for n in range(11) if n != 5]
    payloads = {id(d) for _, d in management.posts}
    assert len(payloads) == 1  # encoded once, the same bytes for everyone
    assert json.loads(management.posts[0][1]) == {"type": "joined", "room": "big", "user": "x"}


def test_gone_exception_deletes_the_connection_and_its_memberships(store):
    """A real Management API client, its answers stubbed by botocore's Stubber."""
    add_members(store, "general", 3)
    store.add_member(room_target("random"), "c001", "user1", 2**31)
    client = boto3.client(
        "apigatewaymanagementapi", endpoint_url="https://example.com/dev", region_name="us-east-1"
    )
    frame = MessageFrame(
        room="general", id="01X", sender="user0", text="hi", sent_at="2026-11-25T00:00:00.000Z"
    )
    with Stubber(client) as stub:
        # workers=1: posts happen in query order (c000, c001, c002), so answers line up.
        stub.add_response(
            "post_to_connection", {}, {"ConnectionId": "c000", "Data": frame.encode()}
        )
        stub.add_client_error(
            "post_to_connection",
            "GoneException",
            http_status_code=410,
            expected_params={"ConnectionId": "c001", "Data": frame.encode()},
        )
        stub.add_client_error("post_to_connection", "LimitExceededException", http_status_code=429)
        result = fanout.Fanout(client, store, workers=1).to_target(room_target("general"), frame)
        stub.assert_no_pending_responses()
    assert (result.sent, result.gone, result.failed) == (1, ["c001"], 1)
    assert store.get_connection("c001") is None
    assert store.targets_of("c001") == []
    assert store.get_connection("c002") is not None  # a throttled post is not a gone connection
    assert store.is_member(room_target("general"), "c002")


def test_gone_within_30_s_of_connecting_deletes_nothing(store, management, monkeypatch):
    """410 for a member whose $connect may still run (API Gateway's 29 s integration timeout)
    keeps it; older, or of unknown age, deletes it. Decided from the Query's items alone."""
    now = 1_800_000_000_000
    ages = {"c-new": 0, "c-29s": 29_999, "c-30s": 30_000, "c-old": 3_600_000}
    for cid, age in ages.items():
        store.put_connection(cid, cid, "user", "2026-11-25T00:00:00.000Z", 2**31)
        store.add_member(room_target("r"), cid, cid, 2**31, now - age, announce=False)
    store.put_connection("c-legacy", "legacy", "user", "2026-11-25T00:00:00.000Z", 2**31)
    store.add_member(room_target("r"), "c-legacy", "legacy", 2**31)  # no connectedAt
    management.gone.update([*ages, "c-legacy"])
    queries = []
    original = store.memberships.query
    monkeypatch.setattr(
        store.memberships, "query", lambda **kw: queries.append(kw) or original(**kw)
    )
    for table in (store.connections, store.memberships):
        monkeypatch.setattr(table, "get_item", lambda **kw: pytest.fail("no extra reads"))
    frame = JoinedFrame(room="r", user="x")
    result = fanout.Fanout(management, store, now_ms=lambda: now).to_target(room_target("r"), frame)
    monkeypatch.undo()
    # One recipients Query; the other Queries are the clean-up's (byConnection) for the 3 gone.
    assert [q.get("IndexName") for q in queries] == [None] + ["byConnection"] * 3
    assert sorted(result.connecting) == ["c-29s", "c-new"]
    assert sorted(result.gone) == ["c-30s", "c-legacy", "c-old"]
    for cid in ("c-new", "c-29s"):
        assert store.is_member(room_target("r"), cid)
    for cid in ("c-30s", "c-old", "c-legacy"):
        assert store.targets_of(cid) == []
    assert store.get_connection("c-new").connected_at is not None


def test_a_reply_to_a_gone_sender_still_deletes_it(store, management):
    """A reply has no membership to say when it connected: a 410 means gone, as before."""
    store.put_connection("c1", "alice", "user", "2026-11-25T00:00:00.000Z", 2**31)
    store.add_member(room_target("r"), "c1", "alice", 2**31, fanout.epoch_ms())
    management.gone.add("c1")
    result = fanout.Fanout(management, store).send("c1", JoinedFrame(room="r", user="x"))
    assert (result.gone, result.connecting) == (["c1"], [])
    assert store.get_connection("c1") is None


def test_management_clients_are_shared_per_endpoint_and_sized_to_the_pool():
    fanout.management_client.cache_clear()
    a = fanout.management_client("https://one.example/dev")
    assert fanout.management_client("https://one.example/dev") is a
    assert fanout.management_client("https://two.example/dev") is not a
    assert a.meta.endpoint_url == "https://one.example/dev"
    assert a.meta.config.max_pool_connections == fanout.POOL_SIZE
    assert (
        fanout.endpoint_of({"domainName": "x.example", "stage": "prod"}) == "https://x.example/prod"
    )
