"""Fixtures for the browser end-to-end tests: one apigw-local for the browser tests, Debian's
chromium driven by Playwright, and helpers that mint tokens and talk to the APIs directly.

The app is started from the real templates (template.yaml + local/template.yaml, which adds
`POST /dev/token`) with a random `AuthSecret`, and serves web/ as its static site, so the page
reads its endpoints from `/.apigw-local/endpoints.json` exactly as with `make run`.
"""

from __future__ import annotations

import os
import secrets
import string
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from webclient_support import Http, Tab

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# A cold Lambda worker answers its first event in a second or two: be patient, not flaky.
expect.set_options(timeout=15_000)


# --- the app ------------------------------------------------------------------


@pytest.fixture(scope="session")
def auth_secret() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(40))


@pytest.fixture(scope="module")
def app(auth_secret: str) -> Iterator[Any]:
    """A running apigw-local (WebSocket, HTTP API, @connections, web client).

    Module-scoped, like `browser`: both stop when the browser tests are done, so the rest of
    the session gets its event loop back (Playwright's sync API keeps one running while open)
    and no emulator lingers.
    """
    if not (WEB / "node_modules" / "chart.js" / "dist" / "chart.umd.js").is_file():
        pytest.fail("web/node_modules is missing: run `npm ci` in web/ (make deps does)")
    from apigw_local.testing import serve

    with serve(
        [ROOT / "template.yaml", ROOT / "local" / "template.yaml"],
        parameter_overrides={"AuthSecret": auth_secret},
        static_dir=WEB,
    ) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def mint(auth_secret: str) -> Callable[..., str]:
    """mint("alice", "admin") → an HS256 JWT the app accepts (docs/protocol.md "Tokens")."""
    import jwt

    def _mint(user: str, role: str = "user", ttl: int = 3600) -> str:
        now = int(time.time())
        claims = {"sub": user, "role": role, "iat": now, "exp": now + ttl}
        return jwt.encode(claims, auth_secret, algorithm="HS256")

    return _mint


@pytest.fixture(scope="module")
def admin_http(app: Any, mint: Callable[..., str]) -> Http:
    return Http(app.http, mint("http-admin", "admin"))


# --- the browser ----------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        print(f"SKIP: {CHROMIUM} is not installed (`make browser` installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_tab(browser: Any, app: Any) -> Iterator[Callable[..., Tab]]:
    """open_tab() → a Tab showing the client's lobby, served by apigw-local."""
    contexts = []

    def _open(width: int = 1200, height: int = 800) -> Tab:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        tab = Tab(page)

        def on_dialog(dialog: Any) -> None:
            tab.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("console", lambda msg: tab.console.append(msg.text))
        page.on("pageerror", lambda err: tab.errors.append(str(err)))
        page.on("framenavigated", lambda frame: tab.urls.append(frame.url))
        page.goto(app.web)
        page.wait_for_selector("body[data-ready=true]")
        return tab

    yield _open
    for context in contexts:
        context.close()
