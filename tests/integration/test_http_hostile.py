"""Hostile HTTP input against the running app (`make run`'s templates and web client), over real
sockets: whatever a client sends, the emulator answers with a typed 4xx — never a 500, a
traceback or silence — and keeps serving everyone else."""

import json
import secrets
import socket
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apigw_local.server.http11 import MAX_BODY
from apigw_local.testing import serve

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def port():
    with serve([ROOT / "template.yaml", ROOT / "local" / "template.yaml"],
               parameter_overrides={"AuthSecret": secrets.token_urlsafe(32)},
               static_dir=ROOT / "web") as endpoints:
        yield int(endpoints.http.rsplit(":", 1)[1])


def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; the one answer (status, headers, body), or (0, {}, b"") for none."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head:
        return 0, {}, b""
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def assert_typed_client_error(status: int, headers: dict[str, str], body: bytes) -> None:
    assert 400 <= status < 500, (status, body[:300])
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert isinstance(json.loads(body), dict)
    assert b"Traceback" not in body


def assert_still_serving(port) -> None:
    status, _, body = exchange(port, b"GET /index.html HTTP/1.1\r\nHost: x\r\n"
                                        b"Connection: close\r\n\r\n")
    assert status == 200 and b"<html" in body


segment = st.one_of(
    st.text(min_size=1, max_size=40),
    st.text(alphabet="./%\\~:;@!$&'()*+,=", min_size=1, max_size=12),
    st.integers(200, 400).map(lambda n: "a" * n),  # longer than a file name may be
    st.sampled_from(["..", ".", "%2e%2e", "%00", "%", "%zz", "%c0%af", "%ff", "node_modules",
                     ".git", ".env", "package.json", "README.md"]),
)


@SETTINGS
@given(parts=st.lists(segment, min_size=1, max_size=6), method=st.sampled_from(["GET", "HEAD"]))
def test_any_path_is_a_file_of_the_client_or_a_typed_404(port, parts, method):
    # Already-escaped tokens pass through; everything else is percent-encoded as a client would.
    path = "/" + "/".join(p if p.startswith("%") else quote(p, safe="./~") for p in parts)
    status, headers, body = exchange(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
                                              f"Connection: close\r\n\r\n".encode())
    if status != 200:
        assert status == 404, (path, status, body[:200])
        if method == "GET":
            assert_typed_client_error(status, headers, body)


@SETTINGS
@given(target=st.binary(min_size=1, max_size=300).filter(lambda b: b" " not in b
                                                          and b"\r" not in b and b"\n" not in b))
def test_malformed_request_targets_are_answered(port, target):
    status, headers, body = exchange(port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                                              b"Connection: close\r\n\r\n")
    if status != 200:
        assert_typed_client_error(status, headers, body)


@SETTINGS
@given(head=st.binary(max_size=2000))
def test_garbage_is_a_400_or_nothing(port, head):
    status, headers, body = exchange(port, head)
    if status:
        assert_typed_client_error(status, headers, body)


def nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


@SETTINGS
@given(depth=st.integers(1, 200_000), kind=st.sampled_from(["list", "object"]))
def test_deeply_nested_json_to_the_local_sign_in_is_a_400(port, depth, kind):
    body = nested(depth, kind)
    request = (b"POST /dev/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    status, headers, answer = exchange(port, request)
    for _ in range(200):  # the route's throttling (docs/fidelity.md H8): resubmit, as a client
        if status != 429:
            break
        time.sleep(0.05)  # a token comes back every 50 ms
        status, headers, answer = exchange(port, request)
    assert_typed_client_error(status, headers, answer)


@pytest.mark.parametrize("route", ["POST /transactions", "POST /transactions/x/verify"])
def test_deeply_nested_json_to_app_routes_leaves_the_emulator_serving(port, route):
    method, path = route.split()
    body = nested(100_000, "list")
    status, _, _ = exchange(
        port, b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                 % (method.encode(), path.encode(), len(body), body))
    assert status != 0  # answered (what the app decides is the app's tests' business)
    assert_still_serving(port)


@SETTINGS
@given(headers=st.lists(st.tuples(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=40),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=400)),
    max_size=300))
def test_any_header_set_is_served_or_refused_with_a_typed_answer(port, headers):
    lines = "".join(f"{k}: {v.strip()}\r\n" for k, v in headers)
    status, answer_headers, body = exchange(
        port, f"GET /index.html HTTP/1.1\r\nHost: x\r\n{lines}Connection: close\r\n\r\n"
                 .encode("latin-1"))
    if status != 200:
        assert_typed_client_error(status, answer_headers, body)


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST /dev/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1), 413),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n", 417),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
])
def test_limits_answer_with_their_status(port, request_bytes, status):
    got, headers, body = exchange(port, request_bytes)
    assert got == status
    assert_typed_client_error(got, headers, body)
    assert_still_serving(port)
