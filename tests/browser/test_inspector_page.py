"""The inspector page in Debian's chromium: live rows, user text kept as text, the actions,
the item browser, accessibility (axe-core), and cross-origin use refused over real sockets."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from a11y import serious_violations
from playwright.sync_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "devloop"))
from inspector_support import XSS, InspectorServer, now_ms, populate  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture
def server():
    with InspectorServer() as server:
        server.call(populate, server.model)
        yield server


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
    page.goto(server.url)
    expect(page.get_by_test_id("live-status")).to_have_text("Live")
    yield page
    context.close()
    assert not errors, errors


def test_shows_connections_and_invocations_with_user_text_as_text(page, server):
    rows = page.get_by_test_id("connections").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("AAAAAAAAAAAAAAA=")
    expect(rows.first).to_contain_text(f"alice · 127.0.0.1 · {XSS}")  # text, not an <img>
    assert page.locator("img").count() == 0
    inv = page.get_by_test_id("invocations").locator("tbody tr")
    expect(inv).to_have_count(2)
    expect(inv.first).to_contain_text("502 ValueError")  # newest first
    page.get_by_role("button", name="Show invocation 1 of Message").click()
    expect(page.get_by_test_id("detail-logs")).to_contain_text(XSS)
    expect(page.get_by_test_id("detail-logs")).to_contain_text("START RequestId: r-1")
    expect(page.get_by_test_id("detail-event")).to_contain_text('"routeKey": "$default"')
    routes = page.get_by_test_id("routes").locator("tbody tr")
    expect(routes).to_have_count(3)
    assert page.locator("img").count() == 0


def test_live_updates_arrive_without_reload(page, server):
    t = now_ms()
    server.call(lambda: server.model.connection_opened(
        "BBBBBBBBBBBBBBB=", api="ChatApi", stage="dev", source_ip="127.0.0.1",
        user_agent="test", connected_at=t))
    rows = page.get_by_test_id("connections").locator("tbody tr")
    expect(rows).to_have_count(2)
    server.call(lambda: server.model.activity("BBBBBBBBBBBBBBB=", bytes_in=5000, bytes_out=0,
                                              frames_in=50, frames_out=0, last_active=t + 1))
    expect(page.locator('[data-connection="BBBBBBBBBBBBBBB="]')).to_contain_text("50 / 0")
    server.call(lambda: server.model.invocation(
        function="Connect", route_key="$connect", api="websocket", status=200,
        duration_ms=4.2, now_ms=t, connection_id="BBBBBBBBBBBBBBB="))
    expect(page.get_by_test_id("invocation-count")).to_have_text("3")
    server.call(lambda: server.model.connection_closed("BBBBBBBBBBBBBBB=", 1001, t + 2))
    expect(rows).to_have_count(1)
    server.call(lambda: server.model.notice("template reloaded: routes +ping"))
    expect(page.get_by_test_id("notice-list")).to_contain_text("routes +ping")


def test_post_disconnect_and_replay(page, server):
    page.get_by_label("Frame to post").fill('{"type": "hello", "text": "hi"}')
    page.get_by_role("button", name="Post frame").click()
    expect(page.get_by_test_id("act-result")).to_have_text(
        "Posted 31 bytes to AAAAAAAAAAAAAAA=.")
    assert server.actions.posted == [("AAAAAAAAAAAAAAA=", b'{"type": "hello", "text": "hi"}')]
    page.get_by_role("button", name="Show invocation 1 of Message").click()
    page.get_by_role("button", name="Replay this event").click()
    expect(page.get_by_test_id("replay-result")).to_contain_text("Replayed as #3: 200")
    expect(page.get_by_test_id("invocation-count")).to_have_text("3")
    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_test_id("act-result")).to_have_text("Disconnected AAAAAAAAAAAAAAA=.")
    expect(page.get_by_test_id("no-connections")).to_be_visible()
    expect(page.get_by_role("button", name="Post frame")).to_be_disabled()


def test_item_browser_pages_through_a_table(page, server):
    page.get_by_role("button", name="Show items").click()
    items = page.get_by_test_id("items")
    expect(page.get_by_test_id("table-status")).to_have_text("25 items of Items; more follow.")
    expect(items.locator("tbody tr")).to_have_count(25)
    expect(items.locator("tbody tr").first).to_contain_text(XSS)
    page.get_by_role("button", name="Next page").click()
    expect(page.get_by_test_id("table-status")).to_have_text("5 items of Items.")
    expect(page.get_by_role("button", name="Next page")).to_be_hidden()
    assert page.locator("img").count() == 0


def test_no_serious_accessibility_violations(page, server):
    assert serious_violations(page) == []
    page.get_by_role("button", name="Show invocation 2 of Message").click()
    page.get_by_role("button", name="Show items").click()
    expect(page.get_by_test_id("items").locator("tbody tr")).to_have_count(25)
    assert serious_violations(page) == []


def test_another_origin_cannot_use_it(browser, server):
    """A page on another origin (here: the same server under another host name) can neither
    read the API, nor post through it, nor open the live WebSocket."""
    context = browser.new_context()
    page = context.new_page()
    page.goto("about:blank")
    base = f"http://127.0.0.1:{server.port}/_apigw-local"
    outcome = page.evaluate("""async (base) => {
        const out = {};
        try { await fetch(base + "/api/state"); out.read = "read"; }
        catch (e) { out.read = "blocked"; }
        try {
          const r = await fetch(base + "/api/connections/AAAAAAAAAAAAAAA=/messages",
                                {method: "POST", mode: "no-cors", body: '{"data": "x"}'});
          out.post = r.type;
        } catch (e) { out.post = "blocked"; }
        out.ws = await new Promise((resolve) => {
          const ws = new WebSocket(base.replace("http", "ws") + "/live");
          ws.onopen = () => resolve("open");
          ws.onerror = () => resolve("refused");
        });
        return out;
    }""", base)
    context.close()
    assert outcome["read"] == "blocked"  # no CORS answer: the response is not readable
    assert outcome["ws"] == "refused"
    assert server.actions.posted == []  # the no-cors POST reached the server and was refused


def _raw(port: int, request: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode("latin-1")


def test_live_handshake_checks_origin_and_host(server):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    head = (f"GET /_apigw-local/live HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    own = f"127.0.0.1:{server.port}"
    ok = _raw(server.port, head + f"Host: {own}\r\nOrigin: http://{own}\r\n\r\n")
    assert ok.startswith("HTTP/1.1 101")
    foreign = _raw(server.port, head + f"Host: {own}\r\nOrigin: http://evil.example\r\n\r\n")
    assert foreign.startswith("HTTP/1.1 403")
    rebound = _raw(server.port, head + f"Host: evil.example:{server.port}\r\n"
                   f"Origin: http://evil.example:{server.port}\r\n\r\n")
    assert rebound.startswith("HTTP/1.1 403")


def test_live_snapshot_over_a_real_websocket(server):
    from websockets.sync.client import connect

    own = f"127.0.0.1:{server.port}"
    with connect(f"ws://{own}/_apigw-local/live", origin=f"http://{own}") as ws:
        snapshot = json.loads(ws.recv(timeout=5))
        assert snapshot["type"] == "snapshot"
        assert [c["id"] for c in snapshot["connections"]] == ["AAAAAAAAAAAAAAA="]
        server.call(lambda: server.model.activity("AAAAAAAAAAAAAAA=", bytes_in=49, bytes_out=0,
                                                  frames_in=2, frames_out=0,
                                                  last_active=now_ms()))
        while True:  # a batch from before may come first; ours follows within a flush
            change = json.loads(ws.recv(timeout=5))
            assert change["type"] == "changes"
            if change["connections"] and change["connections"][0]["bytes_in"] == 42 + 7:
                break
