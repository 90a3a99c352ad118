"""A connection the gateway fails (1009 here) still delivers its close frame when the client
keeps sending: the gateway half-closes and reads on, instead of closing a socket that has
input left (the kernel would answer that input with RST, and the client's kernel would drop
the close frame it had not read yet). Raw sockets, so the client reads only when told to.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from websockets.frames import Close, Frame, Opcode

from apigw_local.testing import serve

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent.parent / "fixtures" / "gateway" / "template.yaml"


def _open(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:80]
    return sock


def _frame(opcode: Opcode, data: bytes, fin: bool) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=True)


def test_a_failed_connection_delivers_its_close_frame_to_a_client_still_sending():
    with serve(FIXTURE) as ep:
        sock = _open(ep.websocket)
        try:
            # Five 30 000-byte fragments: one message over 128 KB, so the gateway fails it.
            fragments = [_frame(Opcode.TEXT if n == 0 else Opcode.CONT, b"a" * 30_000, n == 4)
                         for n in range(5)]
            sock.sendall(b"".join(fragments))
            time.sleep(0.5)  # the gateway has failed the connection by now
            # More input after the failure: a closed socket would answer it with RST.
            with contextlib.suppress(OSError):
                sock.sendall(_frame(Opcode.TEXT, b"b" * 60_000, True))
            time.sleep(0.5)
            received = b""
            try:
                while chunk := sock.recv(65536):
                    received += chunk
            except ConnectionResetError:
                pass
        finally:
            sock.close()
    assert received[:1] == b"\x88", f"no close frame, got {received[:20]!r}"  # FIN + CLOSE
    length = received[1] & 0x7F
    assert Close.parse(received[2:2 + length]).code == 1009
