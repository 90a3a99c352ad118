"""Framing between the runtime and its workers: a 4-byte big-endian length, then JSON.

The frames travel over a socketpair, never over stdout/stderr: those belong to the
handler's prints and are forwarded line by line as logs.

Parent → worker: `{"id": request id, "deadline": epoch ms, "event": …}`.
Worker → parent, once after init: `{"ready": true}` or `{"ready": false, "error": E}`;
then one answer per request: `{"ok": result}` or `{"error": E, "fatal": bool}` where
E = `{"errorType", "errorMessage", "stackTrace"}` (Lambda's error shape) and `fatal`
means the worker exits after answering.

Stdlib only: the worker imports this module before the handler's own paths are set.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 30


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def read_frame_sync(stream: BinaryIO) -> bytes | None:
    """The next frame's body from a buffered binary stream; None at a clean EOF."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    body = stream.read(size)
    if len(body) < size:
        return None
    return body


async def read_frame(reader) -> bytes:  # reader: asyncio.StreamReader
    """The next frame's body; raises asyncio.IncompleteReadError at EOF."""
    header = await reader.readexactly(HEADER.size)
    (size,) = HEADER.unpack(header)
    return await reader.readexactly(size)
