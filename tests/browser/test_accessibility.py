"""axe-core on every view of the web client: the lobby (also with an error shown), a room with
messages, the admin dashboard, and the room on a phone. No serious or critical violations."""

from __future__ import annotations

import pytest
from a11y import serious_violations
from playwright.sync_api import expect
from test_web_client import enter_room, open_dashboard, send
from webclient_support import unique

pytestmark = pytest.mark.browser


def test_lobby(open_tab) -> None:
    page = open_tab().page
    expect(page.locator("[data-view=lobby]")).to_be_visible()
    assert serious_violations(page) == []


def test_lobby_with_an_error(open_tab) -> None:
    page = open_tab().page
    page.get_by_label("Display name").fill("not a valid name!")
    page.get_by_test_id("enter-room").click()
    expect(page.get_by_label("Display name")).to_have_attribute("aria-invalid", "true")
    assert serious_violations(page) == []


def test_room_with_messages(open_tab) -> None:
    page = enter_room(open_tab(), unique("ally"), unique("a11y-room"))
    send(page, "hello, <b>screen readers</b>")
    expect(page.get_by_test_id("message")).to_have_count(1)
    assert serious_violations(page) == []


def test_room_on_a_phone(open_tab) -> None:
    page = enter_room(open_tab(width=390, height=800), unique("phone"), unique("a11y-phone"))
    assert serious_violations(page) == []


def test_dashboard(open_tab) -> None:
    page = open_dashboard(open_tab(), unique("a11y-admin"))
    assert serious_violations(page) == []
