"""Only the user who started apigw-local is served on its HTTP port, on @connections and by its
embedded moto server: real loopback sockets, and a client run as another user (`nobody`)."""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from apigw_local.moto_server import EmbeddedMoto
from apigw_local.peers import OwnerCheck, peer_uid
from apigw_local.server.http11 import HttpConnection, Request, json_response
from apigw_local.testing import serve

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]

NOBODY = 65534

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="owner lookups need Linux's sock_diag")
# Another user's client runs the system's Python (the project's may sit in a private home).
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or ""
as_root = pytest.mark.skipif(os.geteuid() != 0 or not SYSTEM_PYTHON,
                             reason="acting as another local user needs root (setuid) and "
                                    "/usr/bin/python3")


def test_the_owner_of_a_loopback_peer_is_found():
    if not sys.platform.startswith("linux"):
        pytest.skip("owner lookups need Linux's sock_diag")
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, peer = server.accept()
        with client, accepted:
            local = accepted.getsockname()
            assert peer_uid(peer, local) == os.getuid()
            assert peer_uid((peer[0], peer[1] ^ 1), local) is None  # no such socket
            assert peer_uid(("192.0.2.7", peer[1]), local) is None  # not loopback: no owner
            assert OwnerCheck().stranger(peer, local) is None
            assert OwnerCheck(uid=os.getuid() + 1).stranger(peer, local) == os.getuid()


def test_where_owners_cannot_be_told_it_is_said_once_and_everyone_is_served(monkeypatch, caplog):
    from apigw_local import peers

    def unavailable(*args):
        raise peers.PeerLookupUnavailable("no netlink sockets on this system")

    monkeypatch.setattr(peers, "_lookup", unavailable)
    with caplog.at_level("WARNING", logger="apigw_local.peers"):
        check = OwnerCheck(uid=os.getuid() + 1)
        quiet = OwnerCheck(announce=False)
    assert not check.available and not quiet.available
    assert check.stranger(("127.0.0.1", 40000), ("127.0.0.1", 3000)) is None
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "other local users can reach" in said[0]


def as_other_user(port: int, data: bytes, uid: int = NOBODY) -> bytes:
    """Send `data` to 127.0.0.1:`port` from a process of user `uid`; what it read back."""
    client = ("import socket, sys\n"
              f"s = socket.create_connection(('127.0.0.1', {port}), timeout=30)\n"
              "s.sendall(sys.stdin.buffer.read())\n"
              "while chunk := s.recv(65536): sys.stdout.buffer.write(chunk)\n")
    done = subprocess.run([SYSTEM_PYTHON, "-I", "-c", client], input=data, capture_output=True,
                          user=uid, group=uid, cwd="/", timeout=60, check=True)
    return done.stdout


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    return got


class App:
    def __init__(self):
        self.seen: list[str] = []
        self.upgrades = 0

    def handle(self, request: Request):
        self.seen.append(request.path)
        return json_response(200, b'{"token":"minted"}')

    def upgrade(self, request, connection):
        self.upgrades += 1
        return None  # answered 404 by the connection


async def serve_app(app: App, owners_on_upgrades: bool = True):
    owners = OwnerCheck()
    assert owners.available
    return await asyncio.get_running_loop().create_server(
        lambda: HttpConnection(app, owners=owners, owners_on_upgrades=owners_on_upgrades),
        "127.0.0.1", 0)


SIGN_IN = b'{"user":"mallory","role":"admin"}'
POST = (b"POST /dev/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(SIGN_IN), SIGN_IN))
UPGRADE = (b"GET /_apigw-local/live HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")


@linux_only
@as_root
async def test_another_local_user_is_refused_before_the_application_sees_the_request():
    app = App()
    server = await serve_app(app)
    port = server.sockets[0].getsockname()[1]
    try:
        theirs = await asyncio.to_thread(as_other_user, port, POST)
        head, _, body = theirs.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 403 ")
        assert b"Connection: close" in head
        message = json.loads(body)["message"]
        assert f"uid {NOBODY}" in message and f"uid {os.getuid()}" in message
        assert app.seen == []  # nothing was minted for them
        # An upgrade (the inspector's live view) is refused too.
        theirs = await asyncio.to_thread(as_other_user, port, UPGRADE)
        assert theirs.startswith(b"HTTP/1.1 403 ") and app.upgrades == 0
        # The owner is served.
        ours = await asyncio.to_thread(raw, port, POST)
        assert ours.startswith(b"HTTP/1.1 200 ") and app.seen == ["/dev/token"]
    finally:
        server.close()
        await server.wait_closed()


@linux_only
@as_root
async def test_websocket_upgrades_can_be_left_to_the_api():
    """The WebSocket port: @connections requests are checked, upgrades are the API's (tokens)."""
    app = App()
    server = await serve_app(app, owners_on_upgrades=False)
    port = server.sockets[0].getsockname()[1]
    try:
        theirs = await asyncio.to_thread(as_other_user, port, UPGRADE)
        assert theirs.startswith(b"HTTP/1.1 404 ") and app.upgrades == 1
        theirs = await asyncio.to_thread(as_other_user, port, POST)
        assert theirs.startswith(b"HTTP/1.1 403 ") and app.seen == []
    finally:
        server.close()
        await server.wait_closed()


@linux_only
@as_root
def test_the_embedded_moto_server_refuses_another_local_user():
    """It holds the template's secrets, the token key among them."""
    call = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: secretsmanager.ListSecrets\r\n"
            b"Content-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\n"
            b"Authorization: AWS4-HMAC-SHA256 Credential=testing/20000101/us-east-1/"
            b"secretsmanager/aws4_request, SignedHeaders=host, Signature=0\r\n"
            b"Connection: close\r\n\r\n{}")
    with EmbeddedMoto() as server:
        theirs = as_other_user(server.port, call)
        head, _, body = theirs.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 403 ")
        assert f"uid {NOBODY}" in json.loads(body)["message"]
        ours = raw(server.port, call)
        assert ours.startswith(b"HTTP/1.1 200 ") and b"SecretList" in ours


@linux_only
@as_root
def test_the_app_as_make_run_serves_it_refuses_another_local_user():
    """The dev sign-in, @connections and the embedded DynamoDB of a running emulator."""
    with serve([ROOT / "template.yaml", ROOT / "local" / "template.yaml"],
               parameter_overrides={"AuthSecret": "s" * 40}) as ep:
        def port_of(url: str) -> int:
            return urlsplit(url).port or 0

        http_port, ws_port = port_of(ep.http), port_of(ep.connections)
        stage = urlsplit(ep.connections).path
        post = (b"POST %s/@connections/AAAAAAAAAAAAAAA= HTTP/1.1\r\nHost: localhost\r\n"
                b"Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/"
                b"execute-api/aws4_request, SignedHeaders=host, Signature=" + b"0" * 64 +
                b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi") % stage.encode()
        scan = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: DynamoDB_20120810."
                b"ListTables\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2"
                b"\r\nConnection: close\r\n\r\n{}")
        for port, request in ((http_port, POST), (ws_port, post),
                              (port_of(ep.dynamodb), scan)):
            theirs = as_other_user(port, request)
            assert theirs.startswith(b"HTTP/1.1 403 "), (port, theirs[:200])
            assert f"uid {NOBODY}".encode() in theirs
        # The owner: signed in, and @connections answers about the connection (gone).
        assert raw(http_port, POST).startswith(b"HTTP/1.1 200 ")
        assert raw(ws_port, post).startswith(b"HTTP/1.1 410 ")
