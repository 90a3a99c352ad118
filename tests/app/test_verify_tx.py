"""The HTTP API (functions/verify_tx): auth, validation, listing, verify exactly once."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from app_support import LambdaContext, http_event, load_function, token
from realtime import clock, income
from realtime.models import Transaction
from realtime.store import channel_target

ADMIN = token("root", "admin")


@pytest.fixture
def api(dynamodb, management):
    module = load_function("verify_tx")

    def call(method, path, *, auth=ADMIN, **kwargs):
        response = module.lambda_handler(
            http_event(method, path, token=auth, **kwargs), LambdaContext()
        )
        body = json.loads(response["body"]) if response.get("body") else None
        return response["statusCode"], body

    call.module = module
    call.management = management
    return call


def create(api, amount=1250, **extra):
    status, body = api(
        "POST", "/transactions", body={"amount": amount, "description": "x", **extra}
    )
    assert status == 201, body
    return body["transaction"]


def test_create_transaction(api):
    status, body = api(
        "POST",
        "/transactions",
        body={
            "amount": 1250,
            "description": " Invoice 7 ",
            "createdAt": "2026-11-23T10:00:00+01:00",
        },
    )
    assert status == 201
    t = body["transaction"]
    assert t["amount"] == 1250 and t["description"] == "Invoice 7" and t["status"] == "pending"
    assert t["createdAt"] == "2026-11-23T09:00:00.000Z" and t["week"] == "2026-W48"
    assert "verifiedAt" not in t and len(t["id"]) == 26


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 0, "description": "x"},
        {"amount": -5, "description": "x"},
        {"amount": 12.5, "description": "x"},
        {"amount": 12.0, "description": "x"},
        {"amount": "1250", "description": "x"},
        {"amount": True, "description": "x"},
        {"amount": 10_000_000_001, "description": "x"},
        {"description": "x"},
        {"amount": 100},
        {"amount": 100, "description": "   "},
        {"amount": 100, "description": "x", "status": "verified"},
        {"amount": 100, "description": "x", "createdAt": "yesterday"},
        {"amount": 100, "description": "x", "createdAt": "2026-11-23T10:00:00"},  # no zone
    ],
)
def test_create_rejects_bad_bodies(api, store, body):
    status, answer = api("POST", "/transactions", body=body)
    assert status == 400 and answer["code"] == "invalid_request" and answer["message"]
    assert store.list_transactions(None, 10, None) == ([], None)


def test_create_rejects_bad_json_and_future_dates(api):
    assert api("POST", "/transactions", raw_body="{nope")[0] == 400
    future = clock.iso(clock.now() + timedelta(days=2))
    status, body = api(
        "POST", "/transactions", body={"amount": 1, "description": "x", "createdAt": future}
    )
    assert (status, body["code"]) == (400, "invalid_request")


def test_largest_amount_is_accepted(api):
    assert create(api, 10_000_000_000)["amount"] == 10_000_000_000


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/transactions"),
        ("GET", "/transactions"),
        ("POST", "/transactions/abc/verify"),
        ("GET", "/income/weekly"),
    ],
)
def test_every_route_needs_an_admin_token(api, method, path):
    body = {"amount": 1, "description": "x"} if method == "POST" else None
    status, answer = api(method, path, auth=None, body=body)
    assert (status, answer["code"]) == (401, "unauthorized")
    status, answer = api(method, path, auth="garbage", body=body)
    assert (status, answer["code"]) == (401, "unauthorized")
    expired = token("root", "admin", ttl=timedelta(seconds=-1))
    assert api(method, path, auth=expired, body=body)[0] == 401
    status, answer = api(method, path, auth=token("alice", "user"), body=body)
    assert (status, answer["code"]) == (403, "forbidden")


def test_list_by_status_newest_first_with_paging(api):
    ids = [create(api, 100 + n, createdAt=f"2026-11-2{n}T10:00:00Z")["id"] for n in range(5)]
    assert api("POST", f"/transactions/{ids[1]}/verify")[0] == 200
    seen, cursor = [], None
    while True:
        query = {"status": "pending", "limit": "2"} | ({"next": cursor} if cursor else {})
        status, body = api("GET", "/transactions", query=query)
        assert status == 200
        seen += [t["id"] for t in body["transactions"]]
        cursor = body["next"]
        if not cursor:
            break
    assert seen == [ids[4], ids[3], ids[2], ids[0]]
    _, verified = api("GET", "/transactions", query={"status": "verified"})
    assert [t["id"] for t in verified["transactions"]] == [ids[1]]
    _, everything = api("GET", "/transactions")
    assert [t["id"] for t in everything["transactions"]] == ids[::-1]


@pytest.mark.parametrize(
    "query",
    [{"status": "lost"}, {"limit": "0"}, {"limit": "101"}, {"limit": "many"}, {"next": "garbage"}],
)
def test_list_rejects_bad_queries(api, query):
    status, body = api("GET", "/transactions", query=query)
    assert (status, body["code"]) == (400, "invalid_request")


def test_a_cursor_is_bound_to_its_status(api):
    for n in range(3):
        create(api, 100 + n)
    _, page = api("GET", "/transactions", query={"status": "pending", "limit": "1"})
    status, _ = api("GET", "/transactions", query={"status": "verified", "next": page["next"]})
    assert status == 400


def test_verify_flips_status_adds_to_week_and_pushes_to_dashboards(api, app, store):
    app.connect("admin-ws", "root", "admin")
    app.send("admin-ws", {"action": "subscribe", "channel": "admin_dashboard"})
    app.connect("user-ws", "alice", "user", room="general")
    api.management.clear()
    t = create(api, 1250)
    status, body = api("POST", f"/transactions/{t['id']}/verify")
    assert status == 200
    assert body["transaction"]["status"] == "verified"
    assert body["transaction"]["verifiedBy"] == "root" and body["transaction"]["verifiedAt"]
    assert body["week"] == {"week": t["week"], "total": 1250, "count": 1}
    [push] = api.management.frames("admin-ws")
    assert push["type"] == "income" and push["updated"] == {
        "week": t["week"],
        "transactionId": t["id"],
    }
    assert push["weeks"][-1] == {"week": t["week"], "total": 1250, "count": 1}
    assert len(push["weeks"]) == 12
    assert api.management.frames("user-ws") == []
    assert (
        api.management.endpoints[-1] == "https://abc123defg.execute-api.us-east-1.amazonaws.com/dev"
    )
    stored = store.get_transaction(t["id"])
    assert stored.status == "verified" and stored.verified_by == "root"


def test_a_repeat_verify_is_409_and_counted_once(api, store):
    t = create(api, 700)
    assert api("POST", f"/transactions/{t['id']}/verify")[0] == 200
    status, body = api("POST", f"/transactions/{t['id']}/verify")
    assert (status, body["code"]) == (409, "already_verified")
    assert store.week_totals(t["week"], t["week"]) == {t["week"]: (700, 1)}


def test_concurrent_verifies_count_once(api, store, serializable_moto):
    """8 verifies of one transaction race (each with its own client, as each Lambda
    instance has): one wins, seven answer AlreadyVerified, the week counts it once.
    The domain is raced rather than the HTTP resolver, whose per-request state assumes
    Lambda's one invocation per process; tests/integration races real worker processes."""
    import boto3
    from realtime import transactions
    from realtime.store import AlreadyVerified, Store

    t = create(api, 999)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def verify(n: int) -> None:
        own = Store.from_env(boto3.session.Session().resource("dynamodb", region_name="us-east-1"))
        barrier.wait()
        try:
            transactions.verify(own, t["id"], by=f"admin{n}", now=clock.now())
            outcomes.append("verified")
        except AlreadyVerified:
            outcomes.append("already")

    threads = [threading.Thread(target=verify, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already"] * 7 + ["verified"]
    assert store.week_totals(t["week"], t["week"]) == {t["week"]: (999, 1)}


def test_the_condition_refuses_a_stale_pending_read(api, store):
    """Even when the caller read `pending` before someone else verified, the write's
    condition refuses it: the database decides, not the earlier read."""
    from realtime.store import AlreadyVerified

    t = create(api, 300)
    stale = store.get_transaction(t["id"])
    store.verify_transaction(stale, by="first", at="2026-11-25T00:00:00.000Z")
    with pytest.raises(AlreadyVerified):
        store.verify_transaction(stale, by="second", at="2026-11-25T00:00:01.000Z")
    assert store.week_totals(t["week"], t["week"]) == {t["week"]: (300, 1)}
    assert store.get_transaction(t["id"]).verified_by == "first"


def test_verify_unknown_id_is_404(api, store):
    status, body = api("POST", "/transactions/01JDNOPE/verify")
    assert (status, body["code"]) == (404, "not_found")
    status, body = api("POST", "/transactions/has%20space/verify")
    assert status == 404
    from realtime.store import NotFound

    with pytest.raises(NotFound):
        ghost = Transaction(
            id="ghost", amount=1, description="-", status="pending",
            created_at="2026-11-25T00:00:00.000Z", week="2026-W48",
        )
        store.verify_transaction(ghost, by="x", at="2026-11-25T00:00:00.000Z")
    assert store.week_totals("2026-W48", "2026-W48") == {}


def test_weekly_aggregation_across_week_and_year_boundaries(api, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: datetime(2027, 1, 6, 12, tzinfo=UTC))
    ids = {}
    for name, created, amount in [
        ("sun", "2026-12-27T23:59:59.999Z", 100),  # Sunday: last moment of 2026-W52
        ("mon", "2026-12-28T00:00:00.000Z", 20),  # Monday: 2026-W53 begins
        ("sun2", "2027-01-03T23:59:59.000Z", 3),  # still 2026-W53 (ISO year 2026)
        ("mon2", "2027-01-04T00:00:00.000Z", 4000),  # 2027-W01
        ("late", "2027-01-05T08:00:00.000Z", 50000),  # 2027-W01
    ]:
        t = create(api, amount, createdAt=created)
        ids[name] = t
        assert api("POST", f"/transactions/{t['id']}/verify")[0] == 200
    assert [ids[n]["week"] for n in ("sun", "mon", "sun2", "mon2")] == [
        "2026-W52",
        "2026-W53",
        "2026-W53",
        "2027-W01",
    ]
    status, body = api("GET", "/income/weekly", query={"weeks": "4"})
    assert status == 200 and body["currentWeek"] == "2027-W01"
    assert body["weeks"] == [
        {"week": "2026-W51", "total": 0, "count": 0},
        {"week": "2026-W52", "total": 100, "count": 1},
        {"week": "2026-W53", "total": 23, "count": 2},
        {"week": "2027-W01", "total": 54000, "count": 2},
    ]


def test_weekly_income_defaults_to_12_weeks_and_validates(api):
    status, body = api("GET", "/income/weekly")
    assert status == 200 and len(body["weeks"]) == 12
    assert body["weeks"][-1]["week"] == income.week_of(clock.now())
    assert api("GET", "/income/weekly", query={"weeks": "0"})[0] == 400


def test_gone_dashboards_are_cleaned_up_on_push(api, app, store):
    app.connect("d1", "root", "admin")
    app.send("d1", {"action": "subscribe", "channel": "admin_dashboard"})
    app.connect("d2", "boss", "admin")
    app.send("d2", {"action": "subscribe", "channel": "admin_dashboard"})
    api.management.gone.add("d1")
    api.management.clear()
    t = create(api, 5)
    assert api("POST", f"/transactions/{t['id']}/verify")[0] == 200
    assert api.management.types("d2") == ["income"]
    assert store.get_connection("d1") is None
    assert not store.is_member(channel_target("admin_dashboard"), "d1")


def test_unknown_routes_are_404(api):
    status, body = api("GET", "/nope")
    assert (status, body["code"]) == (404, "not_found")
