"""The inspector of a running emulator, in chromium: a real client's connection and its
invocations appear live, the page posts to it, replays its event, browses its table and
disconnects it; and the page passes axe-core."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from a11y import serious_violations
from playwright.sync_api import expect

from apigw_local.testing import serve

pytestmark = pytest.mark.browser

FIXTURE = Path(__file__).parents[1] / "fixtures" / "devloop"


class Client:
    """A real WebSocket client in its own thread (the test's thread runs Playwright)."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self._connection = connect(url, user_agent_header="devloop-test <b>agent</b>")
        self.ws = self._connection.__enter__()  # closed by the server's Disconnect
        self.frames: list[str] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.ws:
                self.frames.append(message)
        except Exception:
            pass
        self.closed.set()


@pytest.fixture(scope="module")
def emulator():
    with serve(FIXTURE / "template.yaml") as endpoints:
        yield endpoints


def test_live_connection_actions_and_accessibility(emulator, browser):
    assert emulator.inspector.endswith("/_apigw-local/")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(emulator.inspector)
    expect(page.get_by_test_id("live-status")).to_have_text("Live")
    expect(page.get_by_test_id("routes").locator("tbody tr")).not_to_have_count(0)

    client = Client(emulator.websocket)
    row = page.locator("[data-testid=connections] tbody tr")
    expect(row).to_have_count(1)
    expect(row.first).to_contain_text("devloop-test <b>agent</b>")
    client.ws.send("hello inspector")
    inv = page.locator("[data-testid=invocations] tbody tr").filter(has_text="$default")
    expect(inv).to_have_count(1)
    expect(inv.first).to_contain_text("EchoFunction")
    expect(row.first).to_contain_text("1 / 1")  # one frame in, the echo out

    seq = inv.first.get_attribute("data-seq")
    page.get_by_role("button", name=f"Show invocation {seq} of EchoFunction").click()
    expect(page.get_by_test_id("detail-logs")).to_contain_text("echo v1 got 'hello inspector'")
    expect(page.get_by_test_id("detail-logs")).to_contain_text("REPORT RequestId:")
    assert serious_violations(page) == []

    page.get_by_role("button", name="Replay this event").click()
    expect(page.get_by_test_id("replay-result")).to_contain_text("Replayed as #")
    expect(inv).to_have_count(2)

    page.get_by_label("Frame to post").fill('{"from": "the inspector"}')
    page.get_by_role("button", name="Post frame").click()
    expect(page.get_by_test_id("act-result")).to_contain_text("Posted 25 bytes")

    page.get_by_role("button", name="Show items").click()
    expect(page.get_by_test_id("items").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("items")).to_contain_text("hello inspector")
    assert serious_violations(page) == []

    page.get_by_role("button", name="Disconnect").click()
    assert client.closed.wait(10)
    expect(row).to_have_count(0)
    context.close()
    bodies = [json.loads(f).get("body") if f.startswith("{\"version") else f
              for f in client.frames]
    assert bodies == ["hello inspector", "hello inspector", '{"from": "the inspector"}']
    assert not errors, errors
