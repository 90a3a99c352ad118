"""The static web client: only the client's own files are served."""

import os
from pathlib import Path

import pytest

from apigw_local.server.static import StaticSite


@pytest.fixture
def site(tmp_path: Path) -> StaticSite:
    files = {
        "index.html": '<link href="styles.css"><script src="node_modules/lib/dist/lib.js">'
                      '</script><script src="./js/app.js" type="module"></script>'
                      '<a href="https://example.test/x.js">',
        "styles.css": "body{}",
        "config.json": "{}",
        "package.json": '{"name": "secret-ish"}',
        "package-lock.json": "{}",
        "README.md": "# notes",
        ".env": "SECRET=1",
        "js/app.js": "import './room.js'",
        "js/room.js": "",
        "js/.hidden.js": "",
        "js/notes.md": "",
        "node_modules/lib/dist/lib.js": "lib()",
        "node_modules/lib/dist/lib.js.map": "{}",
        "node_modules/lib/dist/other.js": "",
        "node_modules/lib/package.json": "{}",
        "node_modules/.package-lock.json": "{}",
        "sub/index.html": "sub",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path.parent / "outside.js").write_text("no")
    return StaticSite(tmp_path)


@pytest.mark.parametrize("path", [
    "/", "/index.html", "/styles.css", "/config.json", "/js/app.js", "/js/room.js",
    "/node_modules/lib/dist/lib.js", "/node_modules/lib/dist/lib.js.map", "/sub/",
    "/%6as/app.js",
])
def test_the_clients_files_are_served(site, path):
    response = site.get(path)
    assert response is not None and response.status == 200
    assert ("X-Content-Type-Options", "nosniff") in response.headers
    assert ("X-Frame-Options", "SAMEORIGIN") in response.headers


@pytest.mark.parametrize("path", [
    "/package.json", "/package-lock.json", "/README.md", "/.env", "/js/.hidden.js",
    "/js/notes.md", "/node_modules/lib/package.json", "/node_modules/lib/dist/other.js",
    "/node_modules/.package-lock.json", "/node_modules/", "/node_modules/lib/",
    "/../outside.js", "/%2e%2e/outside.js", "/js/../../outside.js", "/nothing.js",
    "/" + "a" * 300, "/js/" + "b" * 300 + ".js", "/%00.js", "/%ff%fe.js", "/a%2f..%2f..%2fx",
])
def test_everything_else_is_not_found(site, path):
    assert site.get(path) is None


def test_a_page_referencing_a_new_vendor_file_is_followed(site):
    assert site.get("/node_modules/lib/dist/other.js") is None
    index = site.root / "index.html"
    index.write_text(index.read_text() + '<script src="/node_modules/lib/dist/other.js">')
    os.utime(index, (1, 1))  # a different mtime even within the same clock tick
    assert site.get("/node_modules/lib/dist/other.js") is not None
