"""Hostile input to the app's HTTP API and to the WebSocket port, on the running emulator
(hypothesis, real sockets): JSON bodies of any shape, dates at the edges of the calendar,
query strings and cursors, long and strange paths, raw requests with malformed request lines
and headers. Every answer is a typed one (a JSON `{"code", "message"}` from the app, or the
gateway's JSON `{"message"}`), never a 5xx or a traceback in a log, and an answer that is an
error changed nothing in any table."""

from __future__ import annotations

import base64
import json
import socket
import time
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote, urlencode, urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from hostile_support import HOSTILE, hostile_app, json_values
from http_support import http
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with hostile_app(tmp_path_factory.mktemp("http"), "HTTP hostile input") as app:
        yield app


@pytest.fixture(scope="module")
def admin(app):
    return {"Authorization": f"Bearer {app.token('root', 'admin')}",
            "Content-Type": "application/json"}


def call(app, strategy: str, method: str, path: str, body: bytes | None = None,
         headers: dict | None = None, *, writes: bool = False) -> tuple[int, dict | None]:
    """One request; asserts a typed answer and, for an error (or any read), no change."""
    app.tried[strategy] += 1
    before, mark = app.tables(), app.recorder.mark()
    status, answer_headers, raw = http(method, app.ep.http + path, body, headers)
    # The stage throttles each route (burst 50, then 20/s) and a fast stream of examples can
    # meet a 429; a client resubmits then (docs/fidelity.md H8), and so does this one.
    for _ in range(200):
        if status != 429:
            break
        assert json.loads(raw) == {"message": "Too Many Requests"}
        time.sleep(0.05)  # a token comes back every 50 ms
        status, answer_headers, raw = http(method, app.ep.http + path, body, headers)
    assert status < 500, (method, path, body and body[:200], status, raw[:300])
    assert app.recorder.faults_since(mark) == [], (method, path, body and body[:200])
    lowered = {k.lower(): v for k, v in answer_headers.items()}
    if method == "GET" and status == 200 and lowered["content-type"].startswith("text/html"):
        # No route matched and the path, its dot segments resolved, is the web client's page.
        assert raw.startswith(b"<!doctype html>") and app.tables() == before
        return status, None
    assert lowered.get("content-type", "").startswith("application/json"), (status, lowered)
    answer = json.loads(raw)
    if status >= 400:
        assert answer.get("code") or answer.get("message"), answer
        assert b"Traceback" not in raw
    if status >= 400 or not writes:
        assert app.tables() == before, (method, path, status, answer)
    return status, answer


# --- JSON bodies -------------------------------------------------------------------------------


def calendar_edges():
    """ISO 8601 strings at and beyond the edges of what datetime and the app can hold."""
    zones = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)),
                             timezone(timedelta(hours=23, minutes=59))])
    instants = st.one_of(
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 3)),
        st.datetimes(min_value=datetime(1969, 12, 31), max_value=datetime(1970, 1, 2)),
        st.datetimes(min_value=datetime(9999, 12, 29), max_value=datetime(9999, 12, 31, 23, 59)),
        st.datetimes(min_value=datetime(2038, 1, 18), max_value=datetime(2038, 1, 20)),
    )
    aware = st.builds(lambda d, z: d.replace(tzinfo=z).isoformat(), instants, zones)
    odd = st.sampled_from([
        "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "+002026-11-25T00:00:00Z",
        "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-25T24:00:00Z",
        "2026-11-25T23:59:60Z", "2026-11-25", "2026-11-25T00:00:00", "1e10", "",
        "2026-11-25T00:00:00+25:00", "-0001-01-01T00:00:00Z", "2026-W48-1",
        "9999-12-31T23:59:59.999999999Z",
    ])
    numbers = st.integers(-(2**64), 2**64) | st.floats(allow_nan=False)
    return aware | odd | numbers


transaction_bodies = st.fixed_dictionaries(
    {},
    optional={
        "amount": st.one_of(st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=10),
                            st.none(), st.booleans(), st.just([1])),
        "description": st.one_of(st.text(max_size=30), st.text(min_size=190, max_size=260),
                                 st.just(" \n\t"), st.integers(), st.none()),
        "createdAt": calendar_edges(),
        "id": st.text(max_size=10),
        "status": st.just("verified"),
    },
)


@HOSTILE
@given(body=json_values | transaction_bodies)
def test_any_json_body_to_create_is_a_201_or_a_typed_400(app, admin, body):
    status, answer = call(app, "http: POST /transactions JSON bodies", "POST", "/transactions",
                          json.dumps(body).encode(), admin, writes=True)
    assert status in (201, 400), answer
    if status == 201:  # a valid body: it was created as asked, never another status
        assert answer["transaction"]["status"] == "pending"


@HOSTILE
@given(created_at=calendar_edges())
def test_dates_at_the_calendar_edges_are_a_201_or_a_typed_400(app, admin, created_at):
    body = {"amount": 1, "description": "edge", "createdAt": created_at}
    status, answer = call(app, "http: createdAt at the calendar's edges", "POST", "/transactions",
                          json.dumps(body).encode(), admin, writes=True)
    assert status in (201, 400), answer
    if status == 201:
        created = answer["transaction"]["createdAt"]
        assert datetime.fromisoformat(created.replace("Z", "+00:00")).year >= 1970, created
    else:
        assert answer["code"] == "invalid_request" and "createdAt" in answer["message"]


@HOSTILE
@given(raw=st.binary(max_size=300) | st.integers(1, 20_000).map(lambda n: b"[" * n + b"]" * n)
       | st.integers(1, 20_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
       key=st.none() | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                               max_size=300),
       route=st.sampled_from(["/transactions", "/dev/token"]))
def test_any_bytes_to_create_is_a_typed_answer(app, admin, raw, key, route):
    headers = dict(admin) if key is None else {**admin, "Idempotency-Key": key}
    status, answer = call(app, "http: raw bodies and Idempotency-Keys", "POST", route, raw,
                          headers, writes=True)
    assert status in (200, 201, 400, 422), answer


# --- query strings and paths -----------------------------------------------------------------


def cursor_of(key: dict) -> str:
    """A cursor as the store writes one (base64url JSON, unpadded), around any key."""
    raw = json.dumps(key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


ascii_text = st.characters(max_codepoint=0x7f)
key_strings = st.one_of(st.text(ascii_text, max_size=40),
                        st.text(ascii_text, min_size=200, max_size=700),
                        st.sampled_from(["", "pending", "verified", "transaction", "\x00",
                                         "9999-12-31T23:59:59.999Z", "01JD" + "Z" * 22]))
# Cursors of the right shape (the keys the store hands out) with any values: what a client
# that decoded one and edited it sends.
crafted_cursors = st.builds(
    lambda partition, values: cursor_of(dict(zip(["id", partition, "createdAt"], values,
                                                  strict=True))),
    st.sampled_from(["status", "kind", "room"]),
    st.tuples(key_strings, key_strings, key_strings),
)


@HOSTILE
@given(cursor=crafted_cursors, status=st.sampled_from([None, "pending", "verified"]),
       limit=st.integers(1, 100))
def test_a_crafted_cursor_is_a_page_or_a_typed_400(app, admin, cursor, status, limit):
    query = {"next": cursor, "limit": limit, **({"status": status} if status else {})}
    status_code, answer = call(app, "http: crafted cursors", "GET",
                               f"/transactions?{urlencode(query)}", None, admin)
    assert status_code in (200, 400), answer


queries = st.dictionaries(
    st.sampled_from(["status", "limit", "next", "weeks", "x", ""]),
    st.one_of(st.text(max_size=60), st.integers(-(2**70), 2**70).map(str),
              st.binary(max_size=80).map(lambda b: __import__("base64").urlsafe_b64encode(b)
                                         .decode()),
              st.sampled_from(["pending", "verified", "0", "101", "1e3", "", "eyJ9", "%00"]),
              st.text(min_size=1020, max_size=1100)),
    max_size=4,
)


@HOSTILE
@given(query=queries, route=st.sampled_from(["/transactions", "/income/weekly"]),
       repeat=st.booleans())
def test_any_query_string_is_a_200_or_a_typed_400(app, admin, query, route, repeat):
    text = urlencode(query)
    if repeat and text:
        text = f"{text}&{text}"  # every parameter twice
    status, answer = call(app, "http: query strings and cursors", "GET", f"{route}?{text}",
                          None, admin)
    if len(text) + len(admin["Authorization"]) > 10 * 1024:  # the request line + headers bound
        assert status == 431, answer
    else:
        assert status in (200, 400), answer


segments = st.one_of(
    st.text(min_size=1, max_size=40),
    st.integers(60, 2000).map(lambda n: "a" * n),
    st.sampled_from(["..", ".", "%2e%2e", "%00", "%", "%zz", "%ff", "01JD" + "Z" * 22,
                     "a/b", "{id}", "$default"]),
)


@HOSTILE
@given(segment=segments, suffix=st.sampled_from(["/verify", "", "/verify/", "/verify/x"]),
       method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH"]))
def test_any_path_is_a_typed_answer(app, admin, segment, suffix, method):
    path = "/transactions/" + (segment if segment.startswith("%") else quote(segment, safe=""))
    status, answer = call(app, "http: paths", method, path + suffix, b"", admin)
    assert status in (400, 404, 405) or answer is None, answer


# --- raw requests ------------------------------------------------------------------------------


def exchange(address: tuple[str, int], data: bytes) -> bytes:
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    return raw


def assert_typed(raw: bytes, request: bytes, *, json_errors: bool = True) -> None:
    """Nothing, or answers (a blank line may end a request early: what follows is the next
    one) that are each a typed client error or a success."""
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next((int(v) for k, _, v in (ln.partition(":") for ln in lines[1:])
                       if k.lower() == "content-length"), len(rest))
        body, raw = rest[:length], rest[length:]
        assert status < 500, (request[:300], head, body[:300])
        if status >= 400 and body:
            assert b"Traceback" not in body
            if json_errors:
                assert isinstance(json.loads(body), dict), (request[:300], body[:300])


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


methods = st.sampled_from(["GET", "POST", "get", "CONNECT", "OPTIONS", "TRACE", "G\x00T", ""])
targets = st.sampled_from(["/transactions", "/income/weekly", "/transactions/x/verify",
                           "/dev/token", "*", "http://x/transactions", "//transactions",
                           "/transactions?next=%ff", "/transactions#x"])
versions = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 extra", "", "HTTP/9"])
header_lines = st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(
        ["Authorization", "Content-Length", "Content-Type", "Transfer-Encoding", "Host",
         "Idempotency-Key", "Origin", "Expect", "Connection", "Upgrade", "Sec-WebSocket-Key",
         "Sec-WebSocket-Version", "X-Forwarded-For"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=60)),
    st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=60),
), max_size=8)


@HOSTILE
@given(method=methods, target=targets, version=versions, headers=header_lines,
       body=st.binary(max_size=100))
def test_raw_requests_to_the_http_api_are_answered_typed(app, method, target, version, headers,
                                                          body):
    app.tried["raw HTTP: request lines and headers (HTTP API)"] += 1
    before, mark = app.tables(), app.recorder.mark()
    request = (f"{method} {target} {version}\r\nHost: x\r\n" + "".join(
        f"{h}\r\n" for h in headers) + "Connection: close\r\n\r\n").encode("latin-1") + body
    assert_typed(exchange(address(app.ep.http), request), request)
    assert app.recorder.faults_since(mark) == []
    assert app.tables() == before


@HOSTILE
@given(method=methods, target=st.sampled_from(
    ["/dev", "/dev/@connections/x", "/dev/@connections/", "/dev/@connections/%ff",
     "/dev/@connections/" + "A" * 300, "/dev?token=x", "/", "/other/@connections/x"]),
       version=versions, headers=header_lines, body=st.binary(max_size=100))
def test_raw_requests_to_the_websocket_port_are_answered_typed(app, method, target, version,
                                                                headers, body):
    app.tried["raw HTTP: handshakes and @connections (WebSocket port)"] += 1
    before, mark = app.tables(), app.recorder.mark()
    request = (f"{method} {target} {version}\r\nHost: x\r\n" + "".join(
        f"{h}\r\n" for h in headers) + "Connection: close\r\n\r\n").encode("latin-1") + body
    # A refused handshake answers a line of text (426 "Upgrade Required"...), not JSON.
    assert_typed(exchange(address(app.ep.websocket), request), request, json_errors=False)
    assert app.recorder.faults_since(mark) == []
    assert app.tables() == before


header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255),
                        max_size=80)


@HOSTILE
@given(key=header_values | st.just("dGhlIHNhbXBsZSBub25jZQ=="),
       version=st.sampled_from(["13", "8", "", "13, 8", "x"]),
       protocol=st.none() | header_values, extensions=st.none() | header_values,
       token=st.booleans())
def test_hostile_upgrade_headers_are_a_handshake_or_a_4xx(app, key, version, protocol,
                                                         extensions, token):
    app.tried["raw HTTP: WebSocket upgrade headers"] += 1
    before, mark = app.tables(), app.recorder.mark()
    target = f"/dev?{urlencode({'token': app.token('eve')})}" if token else "/dev"
    lines = [f"GET {target} HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", f"Sec-WebSocket-Version: {version}"]
    lines += [f"Sec-WebSocket-Protocol: {protocol}"] * (protocol is not None)
    lines += [f"Sec-WebSocket-Extensions: {extensions}"] * (extensions is not None)
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection(address(app.ep.websocket), timeout=30) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head and (chunk := sock.recv(65536)):
            head += chunk
    status = int(head.split(b" ", 2)[1])
    assert status == 101 or 400 <= status < 500, (request, head[:300])
    assert b"Traceback" not in head
    assert app.recorder.faults_since(mark) == []
    if status != 101:
        assert app.tables() == before


def test_the_api_still_serves(app, admin):
    status, answer = call(app, "http: follow-up", "GET", "/transactions?limit=1", None, admin)
    assert status == 200 and len(answer["transactions"]) == 1


# --- @connections --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def management(app):
    return boto3.client("apigatewaymanagementapi", endpoint_url=app.ep.connections,
                        region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing",
                        config=Config(retries={"max_attempts": 1}))


@HOSTILE
@given(connection_id=st.text(min_size=1, max_size=300) | st.sampled_from(
    ["AAAAAAAAAAAAAAA=", "..", "%2e%2e", "a/b", "x" * 2000, "\x00", "=" * 16]),
       operation=st.sampled_from(["post", "get", "delete"]), data=st.binary(max_size=200))
def test_a_malformed_or_unknown_connection_id_is_gone(app, management, connection_id,
                                                      operation, data):
    """Signed calls (boto3) with any connection id: 410 GoneException, as the knowledge-center
    article on GoneException lists an id that is not valid among its causes."""
    app.tried["@connections: any connection id (signed)"] += 1
    before, mark = app.tables(), app.recorder.mark()
    call_ = {"post": lambda: management.post_to_connection(ConnectionId=connection_id,
                                                           Data=data),
             "get": lambda: management.get_connection(ConnectionId=connection_id),
             "delete": lambda: management.delete_connection(ConnectionId=connection_id)}
    with pytest.raises(ClientError) as refused:
        call_[operation]()
    error = refused.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (
        410, "GoneException"), (connection_id, error)
    assert app.recorder.faults_since(mark) == []
    assert app.tables() == before
