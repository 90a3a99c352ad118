"""The browser client end to end: real chromium, real apigw-local, the real handlers.

Every test uses its own user and room names, since the app's state lives for the session.
Pages are found by `data-testid` hooks and labels; the chart is read back from Chart.js itself
(`Chart.getChart(canvas)`), so a test fails if the library's data did not move.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from webclient_support import (
    Http,
    Tab,
    connection_ids,
    delete_connection,
    save_screenshot,
    unique,
)

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"


# --- helpers ----------------------------------------------------------------------


def enter_room(tab: Tab, name: str, room: str, role: str = "user") -> Page:
    """Dev sign-in from the lobby, then wait until the join's history has arrived."""
    page = tab.page
    page.get_by_label("Display name").fill(name)
    page.get_by_label("Room", exact=True).fill(room)
    page.get_by_test_id(f"role-{role}").check()
    page.get_by_test_id("enter-room").click()
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "open")
    expect(page.locator("[data-view=room]")).to_have_attribute("data-joined", "true")
    return page


def send(page: Page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")  # the form submits on Enter; no click
    expect(box).to_have_value("")


def texts(page: Page) -> list[str]:
    return page.get_by_test_id("message-text").all_text_contents()


def open_dashboard(tab: Tab, name: str) -> Page:
    page = tab.page
    page.get_by_label("Display name").fill(name)
    page.get_by_test_id("open-dashboard").click()
    expect(page.locator("[data-view=dashboard]")).to_be_visible()
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "open")
    # The subscribe answer (an income snapshot) has been drawn.
    expect(page.get_by_test_id("income-chart")).not_to_have_attribute("data-version", "0")
    return page


def chart_state(page: Page) -> dict[str, Any]:
    """The chart as Chart.js holds it, plus the client's record of the frame it drew."""
    return page.evaluate(
        """() => {
          const canvas = document.querySelector('[data-testid=income-chart] canvas');
          const chart = Chart.getChart(canvas);
          const box = canvas.parentElement;
          return {
            labels: chart.data.labels.slice(),
            values: chart.data.datasets[0].data.slice(),
            version: Number(box.dataset.version),
            weeks: JSON.parse(box.dataset.weeks),
            currentWeek: window.__dashboardChart.currentWeek,
          };
        }"""
    )


def chart_value(state: dict[str, Any], week: str) -> float:
    """The bar of `week` in currency units (the chart draws cents / 100)."""
    return state["values"][state["labels"].index(week)] if week in state["labels"] else 0.0


def wait_for_new_chart(page: Page, version: int) -> dict[str, Any]:
    expect(page.get_by_test_id("income-chart")).not_to_have_attribute(
        "data-version", str(version), timeout=15_000
    )
    return chart_state(page)


# --- rooms ------------------------------------------------------------------------


def test_pages_in_one_room_exchange_messages_and_another_room_sees_none(open_tab) -> None:
    room_a, room_b = unique("room-a"), unique("room-b")
    alice, bob, carol = unique("alice"), unique("bob"), unique("carol")
    pa = enter_room(open_tab(), alice, room_a)
    pb = enter_room(open_tab(), bob, room_a)
    pc = enter_room(open_tab(), carol, room_b)

    # Presence: alice sees bob arrive; bob's join answer lists both.
    expect(pa.locator(f"[data-testid=presence-member][data-user='{bob}']")).to_be_visible()
    expect(pb.locator(f"[data-testid=presence-member][data-user='{alice}']")).to_be_visible()

    send(pa, "hello bob")
    mine = pa.get_by_test_id("message").filter(has_text="hello bob")
    theirs = pb.get_by_test_id("message").filter(has_text="hello bob")
    expect(theirs).to_have_attribute("data-sender", alice)
    expect(theirs).not_to_have_class("msg own")
    expect(mine).to_have_class("msg own")  # own messages are told apart
    expect(theirs.locator("time")).to_have_attribute(
        "datetime", mine.locator("time").get_attribute("datetime")
    )

    send(pb, "hi alice")
    expect(pa.get_by_test_id("message").filter(has_text="hi alice")).to_have_attribute(
        "data-sender", bob
    )
    assert texts(pa) == ["hello bob", "hi alice"]

    # Room B: carol's own message arrives, and nothing from room A ever did.
    send(pc, "anyone in b?")
    expect(pc.get_by_test_id("message")).to_have_count(1)
    assert texts(pc) == ["anyone in b?"]
    expect(pa.get_by_test_id("message")).to_have_count(2)
    expect(pc.locator(f"[data-testid=presence-member][data-user='{alice}']")).to_have_count(0)

    # Leaving: bob closes his tab, alice sees him go.
    pb.context.close()
    expect(pa.locator(f"[data-testid=presence-member][data-user='{bob}']")).to_have_count(0)


def test_late_joiner_gets_history_and_loads_older(open_tab, app, mint) -> None:
    from websockets.sync.client import connect

    room, writer, late = unique("history"), unique("writer"), unique("late")
    total = 57  # more than one page of history (50)
    url = f"{app.websocket}?token={mint(writer)}&room={room}"
    with connect(url) as ws:
        ws.send(json.dumps({"action": "join", "room": room}))
        # One at a time: API Gateway runs concurrent invocations in any order, so a burst
        # would be stored in an order of the workers' choosing.
        for i in range(total):
            ws.send(json.dumps({"action": "send", "room": room, "text": f"message {i:02d}"}))
            while True:
                frame = json.loads(ws.recv(timeout=15))
                assert frame.get("type") != "error", frame
                if frame.get("type") == "message":
                    break

    page = enter_room(open_tab(), late, room)
    expect(page.get_by_test_id("message")).to_have_count(50)
    assert texts(page)[0] == f"message {total - 50:02d}"
    assert texts(page)[-1] == f"message {total - 1:02d}"
    expect(page.get_by_test_id("message").first).to_have_attribute("data-sender", writer)

    older = page.get_by_test_id("load-older")
    expect(older).to_be_visible()
    older.click()
    expect(page.get_by_test_id("message")).to_have_count(total)
    assert texts(page) == [f"message {i:02d}" for i in range(total)]
    expect(older).to_be_hidden()
    expect(page.get_by_test_id("history-start")).to_be_visible()


def test_xss_payload_stays_text(open_tab, admin_http: Http) -> None:
    room = unique("xss")
    tab_a, tab_b = open_tab(), open_tab()
    pa = enter_room(tab_a, unique("mallory"), room)
    pb = enter_room(tab_b, unique("victim"), room)

    send(pa, XSS)
    send(pa, "<script>alert(2)</script><b>bold?</b>")
    for page in (pa, pb):
        expect(page.get_by_test_id("message")).to_have_count(2)
        assert texts(page) == [XSS, "<script>alert(2)</script><b>bold?</b>"]
        assert (
            page.locator(
                "[data-testid=messages] img, [data-testid=messages] script, "
                "[data-testid=messages] b"
            ).count()
            == 0
        )
    page_html = pb.locator("[data-testid=messages]").inner_html()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page_html

    # A transaction description on the dashboard is text too.
    status, body = admin_http.call("POST", "/transactions", {"amount": 101, "description": XSS})
    assert status == 201, body
    tx = body["transaction"]
    dash = open_dashboard(open_tab(), unique("admin"))
    item = dash.locator(f"[data-testid=pending-item][data-id='{tx['id']}']")
    expect(item).to_contain_text(XSS)
    assert item.locator("img").count() == 0
    item.get_by_role("button", name="Verify").click()
    expect(dash.get_by_test_id("dashboard-notice")).to_contain_text(f"Verified “{XSS}”")
    assert dash.locator("main img").count() == 0

    dash.wait_for_timeout(300)  # an onerror would have fired by now
    assert tab_a.dialogs == tab_b.dialogs == []
    assert tab_a.errors == tab_b.errors == []


def test_server_error_frames_are_shown_in_words(open_tab) -> None:
    room = unique("errors")
    page = enter_room(open_tab(), unique("erin"), room)
    # Ask for the history of a room this connection never joined: the server says not_member.
    page.evaluate(
        "(r) => window.__roomSocket.send({action: 'history', room: r})", unique("elsewhere")
    )
    alert = page.get_by_test_id("room-error")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("not in this room")
    expect(alert).to_have_attribute("role", "alert")


# --- the dashboard -----------------------------------------------------------------------


def test_chart_moves_after_verify_click(open_tab) -> None:
    page = open_dashboard(open_tab(), unique("admin"))
    before = chart_state(page)
    week = before["currentWeek"]
    total_before = int(page.get_by_test_id("week-total").get_attribute("data-cents"))

    page.get_by_label("Amount").fill("12.34")
    page.get_by_label("Description").fill("Browser test: coffee beans")
    page.get_by_test_id("tx-create").click()
    item = page.get_by_test_id("pending-item").filter(has_text="Browser test: coffee beans")
    expect(item).to_have_attribute("data-amount", "1234")

    item.get_by_role("button", name="Verify").click()
    after = wait_for_new_chart(page, before["version"])
    assert after["currentWeek"] == week
    assert chart_value(after, week) == pytest.approx(chart_value(before, week) + 12.34)
    expect(page.get_by_test_id("week-total")).to_have_attribute(
        "data-cents", str(total_before + 1234)
    )
    expect(item).to_have_count(0)
    expect(page.get_by_test_id("dashboard-notice")).to_contain_text("Verified")


def test_chart_moves_after_verify_over_http(open_tab, admin_http: Http) -> None:
    page = open_dashboard(open_tab(), unique("admin"))
    before = chart_state(page)

    status, body = admin_http.call(
        "POST", "/transactions", {"amount": 5000, "description": "over http"}
    )
    assert status == 201, body
    tx = body["transaction"]
    status, body = admin_http.call("POST", f"/transactions/{tx['id']}/verify")
    assert status == 200, body

    after = wait_for_new_chart(page, before["version"])
    week = tx["week"]
    assert chart_value(after, week) == pytest.approx(chart_value(before, week) + 50.0)
    assert {w["week"]: w["total"] for w in after["weeks"]}[week] == body["week"]["total"]

    # A repeat is answered, not double-counted, and the chart does not move.
    status, again = admin_http.call("POST", f"/transactions/{tx['id']}/verify")
    assert status == 409, again
    assert chart_value(chart_state(page), week) == chart_value(after, week)


# --- connection -----------------------------------------------------------------------


def test_reconnects_and_rejoins_after_the_server_closes_the_socket(open_tab, app) -> None:
    room, name, other = unique("reconnect"), unique("rita"), unique("olga")
    page = enter_room(open_tab(), name, room)
    peer = enter_room(open_tab(), other, room)

    ids = connection_ids(app, name)
    assert len(ids) == 1, ids
    delete_connection(app, ids[0])

    view = page.locator("[data-view=room]")
    expect(view).to_have_attribute("data-reconnects", "1")
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "open")
    expect(view).to_have_attribute("data-joined", "true")
    transitions = page.evaluate("window.__roomSocket.transitions")
    assert transitions[:2] == ["connecting", "open"], transitions
    assert "reconnecting" in transitions[2:] and transitions[-1] == "open", transitions
    # The old connection's $disconnect cleans up after it: one connection, a new one.
    deadline = time.monotonic() + 10
    while len(new_ids := connection_ids(app, name)) != 1 or new_ids == ids:
        assert time.monotonic() < deadline, (ids, new_ids)
        time.sleep(0.1)

    # Re-joined: messages flow both ways again.
    send(peer, "are you back?")
    expect(page.get_by_test_id("message").filter(has_text="are you back?")).to_be_visible()
    send(page, "yes")
    expect(peer.get_by_test_id("message").filter(has_text="yes")).to_have_count(1)


# --- sign-in, safety of the token, small screens, screenshots ---------------------------


def test_keyboard_only_from_lobby_to_message(open_tab) -> None:
    page = open_tab().page
    room, name = unique("keys"), unique("kim")
    expect(page.get_by_label("Display name")).to_be_focused()  # the lobby starts there
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Room", exact=True)).to_be_focused()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type(room)
    page.keyboard.press("Enter")
    expect(page.locator("[data-view=room]")).to_have_attribute("data-joined", "true")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("message-text")).to_have_text(["typed, not clicked"])


def test_pasted_token_signs_in_and_stays_out_of_urls(open_tab, mint) -> None:
    tab = open_tab()
    page = tab.page
    token = mint(unique("pasted"), "admin")
    page.get_by_text("Sign in with a token").click()
    page.get_by_label("Token", exact=True).fill(token)
    page.get_by_test_id("use-token").click()
    expect(page.locator("[data-view=room]")).to_have_attribute("data-joined", "true")
    page.get_by_test_id("nav-dashboard").click()
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "open")

    assert page.evaluate("sessionStorage.getItem('rooms.token')") == token
    assert page.evaluate("Object.keys(localStorage).length") == 0
    assert all(token not in url for url in tab.urls)
    assert all(token not in line for line in tab.console)
    assert token not in page.content()


def test_phone_width_and_screenshots(open_tab, admin_http: Http) -> None:
    alice, bob = open_tab(), open_tab(width=375, height=740)
    pa = enter_room(alice, "alice", "general")
    pb = enter_room(bob, "bob", "general")
    send(pa, "Morning! Did the new pricing go out?")
    send(pb, "Yes, live since 9:00. First orders are in.")
    send(pa, "Great, I'll verify them on the dashboard.")
    expect(pb.get_by_test_id("message")).to_have_count(3)
    expect(pa.get_by_test_id("presence-member")).to_have_count(2)
    # Nothing overflows sideways on a 375px-wide screen.
    assert pb.evaluate("document.documentElement.scrollWidth") <= 375
    save_screenshot(pa, "room.png")
    save_screenshot(pb, "room-phone.png")

    # Some verified income in earlier weeks, so the chart has a shape; two pending ones.
    now = datetime.now(UTC)
    for weeks_ago, cents in [(5, 182000), (4, 240050), (3, 199900), (2, 310000), (1, 287500)]:
        created = (now - timedelta(weeks=weeks_ago)).isoformat(timespec="milliseconds")
        status, body = admin_http.call(
            "POST",
            "/transactions",
            {"amount": cents, "description": "Orders", "createdAt": created.replace("+00:00", "Z")},
        )
        assert status == 201, body
        status, body = admin_http.call("POST", f"/transactions/{body['transaction']['id']}/verify")
        assert status == 200, body
    for cents, text in [(129900, "Annual plan: Acme Corp"), (4999, "Monthly plan: Jo's Bakery")]:
        status, body = admin_http.call(
            "POST", "/transactions", {"amount": cents, "description": text}
        )
        assert status == 201, body

    dash = open_dashboard(open_tab(), "admin")
    expect(dash.get_by_test_id("pending-item").filter(has_text="Acme Corp")).to_be_visible()
    dash.wait_for_timeout(500)  # let the bars' animation settle for the picture
    save_screenshot(dash, "dashboard.png", full_page=True)
    phone = open_dashboard(open_tab(width=375, height=740), "admin")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375


def test_deployed_config_hides_dev_sign_in_and_takes_a_pasted_token(browser, app, mint) -> None:
    """With a `config.json` (what `make web-config` writes for a stage) there is no dev sign-in."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    try:
        page = context.new_page()
        config = {"websocketUrl": app.websocket + "/", "httpApiUrl": app.http + "/"}
        page.route(
            "**/config.json",
            lambda route: route.fulfill(
                status=200, content_type="application/json", body=json.dumps(config)
            ),
        )
        page.goto(app.web + "#/room/deployed")
        expect(page.get_by_test_id("lobby-notice")).to_contain_text("Sign in to join #deployed")
        expect(page.get_by_test_id("dev-signin")).to_be_hidden()
        expect(page.get_by_label("Token", exact=True)).to_be_visible()  # the box is open

        page.get_by_test_id("enter-room").click()
        expect(page.get_by_test_id("lobby-error")).to_contain_text("Paste a token")

        page.get_by_label("Token", exact=True).fill("not a token")
        page.get_by_test_id("use-token").click()
        expect(page.get_by_test_id("lobby-error")).to_contain_text("does not look like a token")

        name = unique("deployed")
        page.get_by_label("Token", exact=True).fill(mint(name))
        page.get_by_test_id("use-token").click()
        expect(page.locator("[data-view=room]")).to_have_attribute("data-joined", "true")
        expect(page.get_by_test_id("room-name")).to_have_text("deployed")
        expect(page.get_by_test_id("signed-in-as")).to_have_text(f"{name} · user")
        expect(page.get_by_test_id("nav-dashboard")).to_be_hidden()  # not an admin
    finally:
        context.close()


def test_client_modules_pure_functions(open_tab) -> None:
    """The small pure helpers, run as the page's own ES modules (no Node test runner needed)."""
    page = open_tab().page
    result = page.evaluate(
        """async () => {
          const f = await import('./js/format.js');
          const s = await import('./js/socket.js');
          const a = await import('./js/auth.js');
          const cents = (t) => { try { return f.parseCents(t); } catch (e) { return 'error'; } };
          const utf8 = (o) => String.fromCharCode(...new TextEncoder().encode(JSON.stringify(o)));
          const b64 = (o) => btoa(utf8(o)).replace(/=+$/, '');
          return {
            cents: ['12.5', '12,50', '0.07', '1250', ' 3.10 ', '100000000', '100000000.01',
                    '0', '1.234', '-5', '1e3', '', 'abc'].map(cents),
            lowest: [0, 1, 2, 3, 10].map((n) => s.backoffDelay(n, {random: () => 0})),
            highest: [0, 1, 2, 3, 10].map((n) => s.backoffDelay(n, {random: () => 1})),
            claims: a.readClaims(`x.${b64({sub: 'zoë', role: 'admin', exp: 1})}.y`),
            garbage: a.readClaims('not-a-token'),
            words: f.errorText({code: 'not_member', message: "Join room 'x' first."}),
          };
        }"""
    )
    assert result["cents"] == [
        1250, 1250, 7, 125000, 310, 10_000_000_000, "error",
        "error", "error", "error", "error", "error", "error",
    ]  # fmt: skip
    assert result["lowest"] == [250, 500, 1000, 2000, 7500]  # half the step at least
    assert result["highest"] == [500, 1000, 2000, 4000, 15000]  # capped at 15 s
    assert result["claims"]["sub"] == "zoë" and result["claims"]["role"] == "admin"
    assert result["garbage"] is None
    assert result["words"] == "You are not in this room (yet). Join room 'x' first."
