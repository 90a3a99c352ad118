"""The inspector's API without sockets: routing, actions, and the guards every local page needs
(loopback only, own Host only, own Origin for changes, JSON bodies, no CORS, CSP)."""

import asyncio
import inspect
import json

import pytest
from inspector_support import FakeActions, populate

from apigw_local.inspector.api import PREFIX, InspectorApi, Request
from apigw_local.inspector.model import InspectorModel

PORT = 3000
HOST = f"127.0.0.1:{PORT}"
ORIGIN = f"http://{HOST}"


@pytest.fixture
def api():
    model = InspectorModel()
    populate(model)
    return InspectorApi(model, FakeActions(model), port=PORT)


def call(api, method, path, body=None, **headers):
    h = {"host": HOST, **{k.replace("_", "-"): v for k, v in headers.items()}}
    if body is not None:
        h.setdefault("content-type", "application/json")
        h.setdefault("origin", ORIGIN)
    path, _, query = path.partition("?")
    answer = api.handle(Request(method, PREFIX + path, query, h,
                                json.dumps(body).encode() if body is not None else b"",
                                h.pop("peer", "127.0.0.1")))
    if inspect.isawaitable(answer):
        answer = asyncio.run(answer)
    return answer


def body(answer):
    return json.loads(answer.body)


def test_page_and_assets_with_strict_headers(api):
    page = call(api, "GET", "/")
    assert page.status == 200 and b"apigw-local inspector" in page.body
    headers = dict(page.headers)
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert not any(k.lower().startswith("access-control") for k, _ in page.headers)
    assert dict(call(api, "GET", "/inspector.js").headers)["Content-Type"].startswith(
        "text/javascript")
    assert call(api, "GET", "/../api.py").status == 404
    assert call(api, "GET", "/%2e%2e/api.py").status == 404
    redirect = api.handle(Request("GET", PREFIX, "", {"host": HOST}))
    assert redirect.status == 308 and dict(redirect.headers)["Location"] == PREFIX + "/"


def test_state_lists_connections_invocations_and_the_app(api):
    state = body(call(api, "GET", "/api/state"))
    assert [c["id"] for c in state["connections"]] == ["AAAAAAAAAAAAAAA="]
    assert [i["status"] for i in state["invocations"]] == [200, 502]
    assert state["app"]["tables"] == [{"logical_id": "Items", "name": "app-Items"}]
    one = body(call(api, "GET", "/api/invocations/1"))
    assert one["logs"][0].startswith("START RequestId: r-1")
    assert call(api, "GET", "/api/invocations/99").status == 404


def test_actions(api):
    posted = call(api, "POST", "/api/connections/AAAAAAAAAAAAAAA=/messages", {"data": "hi"})
    assert posted.status == 200 and api.actions.posted == [("AAAAAAAAAAAAAAA=", b"hi")]
    gone = call(api, "POST", "/api/connections/BBBBBBBBBBBBBBB=/messages", {"data": "hi"})
    assert gone.status == 410 and body(gone) == {"message": "GoneException"}
    assert call(api, "POST", "/api/connections/AAAAAAAAAAAAAAA=/messages",
                {"data": 5}).status == 400
    replay = call(api, "POST", "/api/invocations/1/replay", {})
    assert replay.status == 200 and body(replay)["replay_of"] == 1
    page = body(call(api, "GET", "/api/tables/Items/items?limit=25"))
    assert len(page["items"]) == 25 and page["next"] == "25"
    rest = body(call(api, "GET", "/api/tables/Items/items?limit=25&start=25"))
    assert len(rest["items"]) == 5 and rest["next"] is None
    assert call(api, "GET", "/api/tables/Nope/items").status == 404
    assert call(api, "DELETE", "/api/connections/AAAAAAAAAAAAAAA=", {}).status == 200
    assert api.actions.disconnected == ["AAAAAAAAAAAAAAA="]
    assert call(api, "GET", "/api/nothing").status == 404


@pytest.mark.parametrize("method, path, payload, headers, status, why", [
    ("GET", "/api/state", None, {"peer": "10.0.0.7"}, 403, "loopback clients only"),
    ("GET", "/api/state", None, {"host": "evil.example:3000"}, 403, "is not this inspector's"),
    ("GET", "/", None, {"host": "127.0.0.1:9999"}, 403, "is not this inspector's"),
    ("POST", "/api/connections/AAAAAAAAAAAAAAA=/messages", {"data": "x"},
     {"origin": "http://evil.example"}, 403, "cross-origin request refused"),
    ("POST", "/api/connections/AAAAAAAAAAAAAAA=/messages", {"data": "x"},
     {"origin": "null"}, 403, "cross-origin request refused"),
    ("DELETE", "/api/connections/AAAAAAAAAAAAAAA=", None, {}, 403,
     "cross-origin request refused"),
    ("POST", "/api/invocations/1/replay", {}, {"content_type": "text/plain"}, 415, "send JSON"),
    ("OPTIONS", "/api/state", None, {"origin": ORIGIN}, 405, "no inspector API"),
])
def test_guards(api, method, path, payload, headers, status, why):
    answer = call(api, method, path, payload, **headers)
    assert answer.status == status, answer.body
    assert why in body(answer)["message"]
    assert not api.actions.posted and not api.actions.disconnected


def test_oversized_post_is_refused(api):
    answer = call(api, "POST", "/api/connections/AAAAAAAAAAAAAAA=/messages",
                  {"data": "x" * 200_000})
    assert answer.status == 413 and not api.actions.posted


def test_localhost_and_ipv6_loopback_are_the_inspectors_own(api):
    for host in (f"localhost:{PORT}", f"[::1]:{PORT}"):
        answer = call(api, "GET", "/api/state", host=host, peer="::1")
        assert answer.status == 200


def test_model_drains_changes_in_batches():
    model = InspectorModel(max_invocations=3)
    assert model.drain() is None
    model.connection_opened("c1", api="A", stage="dev", source_ip="127.0.0.1", user_agent=None,
                            connected_at=1)
    for i in range(1000):
        model.activity("c1", bytes_in=10 * (i + 1), bytes_out=0, frames_in=i + 1, frames_out=0,
                       last_active=2 + i)
    first = model.drain()
    assert [c["bytes_in"] for c in first["connections"]] == [10_000]
    assert model.drain() is None
    model.activity("c1", bytes_in=10_000, bytes_out=0, frames_in=1000, frames_out=0,
                   last_active=1001)
    assert model.drain() is None  # polled again, nothing changed: nothing to send
    model.connection_closed("c1", 1001, 5000)
    for i in range(5):
        model.invocation(function="F", route_key="$default", api="websocket", status=200,
                         duration_ms=1, now_ms=i, logs=[str(n) for n in range(500)])
    second = model.drain()
    assert [c["close_code"] for c in second["closed"]] == [1001]
    assert [i["seq"] for i in second["invocations"]] == [3, 4, 5]  # bounded
    assert "logs" not in second["invocations"][0]  # rows only; the detail has the lines
    detail = model.find_invocation(3).as_json()
    assert len(detail["logs"]) == 200 and detail["logs_truncated"] == 300
    assert [i.seq for i in model.invocations] == [3, 4, 5]


def test_events_too_large_are_not_kept():
    model = InspectorModel(max_event_bytes=8192)
    view = model.invocation(function="F", route_key="$default", api="websocket", status=200,
                            duration_ms=1, now_ms=1, event={"body": "x" * 5000})
    assert view.event is None and view.summary()["replayable"] is False


def test_the_page_sees_no_tokens_but_a_replay_gets_the_real_event():
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    model = InspectorModel()
    event = {"queryStringParameters": {"token": jwt}, "headers": {"Authorization": f"Bearer {jwt}"}}
    view = model.invocation(function="F", route_key="$connect", api="websocket", status=200,
                            duration_ms=1, now_ms=1, event=event, logs=[f"token={jwt}"])
    shown = json.dumps(view.as_json())
    assert jwt not in shown and "eyJ" not in shown
    assert view.event == event


def test_identity_includes_the_authorizers_principal():
    from types import SimpleNamespace

    from apigw_local.inspector.observer import InspectorObserver

    model = InspectorModel()
    observer = InspectorObserver(model, api_names=lambda api_id: "ChatApi",
                                 connections=lambda: [])
    event = {"requestContext": {"authorizer": {"principalId": "alice"}}}
    observer.invocation(SimpleNamespace(
        function="Connect", route_key="$connect", connection_id="c1=", request_id="r",
        duration_ms=1.0, status="ok", logs=(), event=event, init_duration_ms=None,
        max_memory_mb=None, memory_size_mb=128, payload_status=200, error_message=""))
    info = SimpleNamespace(connection_id="c1=", api_id="abc", stage="dev",
                           source_ip="127.0.0.1", user_agent="ua", connected_at=1)
    observer.connection("connected", info, {})
    view = model.connections["c1="]
    assert (view.principal, view.api, view.state) == ("alice", "ChatApi", "OPEN")
    observer.connection("disconnected", info, {"code": 1001})
    assert "c1=" not in model.connections and model.closed["c1="].close_code == 1001
