"""The web client's side of consistent chat and dashboards (docs/protocol.md, "Sending"):
a failed send is retried with the same clientId and shown once, and a stale `income` frame
never replaces newer figures. The socket is routed through Playwright
(`page.route_web_socket`) to play a worker that died after storing, and a push that lost a
race; the server side is the real apigw-local and handlers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect
from test_web_client import chart_state, enter_room, open_dashboard, send, texts
from webclient_support import unique

pytestmark = pytest.mark.browser
INTERNAL = json.dumps({"message": "Internal server error", "connectionId": "x", "requestId": "y"})


def test_a_send_answered_internal_error_is_retried_once_stored_once(open_tab) -> None:
    """The first send reaches the server (stored, delivered) but its ack is lost and the
    client is told the handler failed, as when a worker dies at the end of its fan-out. The
    client sends the SAME clientId again; the server answers a duplicate ack; the page and a
    late joiner show the message once."""
    room = unique("room")
    tab = open_tab()
    sends: list[dict[str, Any]] = []

    def route(ws: Any) -> None:
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            server.send(message)
            if frame.get("action") == "send":
                sends.append(frame)

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "ack" and frame["clientId"] == sends[0]["clientId"] \
                    and not frame["duplicate"]:
                ws.send(INTERNAL)  # instead of the ack
                return
            ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)

    tab.page.route_web_socket("**/*", route)
    page = enter_room(tab, unique("alice"), room)
    send(page, "hello once")
    view = page.locator("[data-view=room]")
    expect(view).to_have_attribute("data-unacked", "0")
    assert len(sends) >= 2
    assert {(s["clientId"], s["seq"]) for s in sends} == {(sends[0]["clientId"], 1)}
    assert texts(page) == ["hello once"]
    send(page, "and then")  # the sequence goes on after the retried message
    expect(page.get_by_test_id("message-text")).to_have_count(2)
    assert texts(page) == ["hello once", "and then"]

    late = enter_room(open_tab(), unique("bob"), room)
    expect(late.get_by_test_id("message-text")).to_have_count(2)
    assert texts(late) == ["hello once", "and then"]


def test_a_stale_income_frame_does_not_replace_newer_figures(open_tab) -> None:
    tab = open_tab()
    sockets: list[Any] = []

    def route(ws: Any) -> None:
        server = ws.connect_to_server()
        sockets.append(ws)
        ws.on_message(lambda message: server.send(message))
        server.on_message(lambda message: ws.send(message))

    tab.page.route_web_socket("**/*", route)
    page = open_dashboard(tab, unique("admin"))
    box = page.get_by_test_id("income-chart")
    snapshot = int(box.get_attribute("data-server-version"))
    week = chart_state(page)["currentWeek"]

    def income(version: int, cents: int) -> str:
        return json.dumps({"type": "income", "version": version, "currentWeek": week,
                           "weeks": [{"week": week, "total": cents, "count": 1}],
                           "updated": None})

    sockets[-1].send(income(snapshot + 100, 777_00))
    expect(page.get_by_test_id("week-total")).to_have_attribute("data-cents", "77700")
    sockets[-1].send(income(snapshot + 50, 111_00))  # lost the race: older
    expect(box).to_have_attribute("data-stale", "1")
    expect(page.get_by_test_id("week-total")).to_have_attribute("data-cents", "77700")
    assert box.get_attribute("data-server-version") == str(snapshot + 100)
