"""The app as `make run` serves it (template.yaml + local/template.yaml + web/): who may sign in
locally, what CORS lets a foreign page read, and which files the web client's directory gives
out."""

import json
import secrets
from pathlib import Path

import pytest
from http_support import http

from apigw_local.testing import serve

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
WEB = ROOT / "web"
SECRET = secrets.token_urlsafe(32)
FOREIGN = "https://evil.example"


@pytest.fixture(scope="module")
def ep():
    with serve([ROOT / "template.yaml", ROOT / "local" / "template.yaml"],
               parameter_overrides={"AuthSecret": SECRET}, static_dir=WEB) as endpoints:
        yield endpoints


def sign_in(ep, origin=None):
    headers = {"Content-Type": "application/json", **({"Origin": origin} if origin else {})}
    body = json.dumps({"user": "mallory", "role": "admin"}).encode()
    return http("POST", f"{ep.http}/dev/token", body, headers)


def test_the_served_web_client_signs_in(ep):
    port = ep.http.rsplit(":", 1)[1]
    for origin in (ep.http, f"http://localhost:{port}", None):
        status, headers, body = sign_in(ep, origin)
        assert status == 200 and json.loads(body)["token"].count(".") == 2, (origin, body)
        assert headers.get("Access-Control-Allow-Origin") != "*"


@pytest.mark.parametrize("origin", [
    FOREIGN,
    "null",  # a sandboxed frame or a file:// page
    "http://localhost:1",  # another local server's page
    "http://rebound.example:{port}",  # DNS rebinding: the page keeps its own name
    "http://127.0.0.1:notaport",
])
def test_a_foreign_page_is_refused(ep, origin):
    origin = origin.format(port=ep.http.rsplit(":", 1)[1])
    status, headers, body = sign_in(ep, origin)
    answer = json.loads(body)
    assert (status, answer["code"]) == (403, "forbidden_origin")
    assert "only for the web client" in answer["message"]
    assert "Access-Control-Allow-Origin" not in headers


def test_a_foreign_preflight_is_not_echoed(ep):
    asked = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type,authorization"}
    for path in ("/dev/token", "/transactions"):
        _, headers, _ = http("OPTIONS", f"{ep.http}{path}", headers={"Origin": FOREIGN, **asked})
        assert not [k for k in headers if k.lower().startswith("access-control-")], headers
    # The web client under another name of the loopback host is allowed.
    web = ep.http.replace("127.0.0.1", "localhost")
    status, headers, _ = http("OPTIONS", f"{ep.http}/dev/token", headers={"Origin": web, **asked})
    assert (status, headers["Access-Control-Allow-Origin"]) == (204, web)
    # A foreign page reading an answer gets no CORS header on it either.
    for path in ("/income/weekly", "/.apigw-local/endpoints.json"):
        _, headers, _ = http("GET", f"{ep.http}{path}", headers={"Origin": FOREIGN})
        assert "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize("path", [
    "/", "/index.html", "/styles.css", "/js/app.js", "/js/auth.js",
    "/node_modules/chart.js/dist/chart.umd.js",
])
def test_the_web_clients_files_are_served(ep, path):
    if "node_modules" in path and not (WEB / path.lstrip("/")).is_file():
        pytest.fail("web/node_modules is missing: run `npm ci` in web/ (make deps does)")
    assert http("GET", ep.http + path)[0] == 200


@pytest.mark.parametrize("path", [
    "/package.json", "/package-lock.json", "/README.md", "/node_modules/chart.js/package.json",
    "/node_modules/chart.js/README.md", "/node_modules/chart.js/dist/chart.js",
    "/node_modules/", "/node_modules/.package-lock.json", "/" + "a" * 300,
    "/js/" + "%41" * 300,
])
def test_nothing_else_of_web_is(ep, path):
    status, _, body = http("GET", ep.http + path)
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
