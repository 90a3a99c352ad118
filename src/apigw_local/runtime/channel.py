"""The worker channel: how a worker's botocore reaches the gateway's Management API core
without the HTTP hop. Both ends live here: the worker's (`Channel`, the botocore hook) and the
gateway's (`GatewayEnd`).

A delivery through `post_to_connection` used to be a full HTTPS request from the worker to the
gateway: TLS, HTTP framing and a connection pool, 1–3 ms of CPU each on a small machine. Here
botocore still does everything of its own — parameter validation, endpoint resolution,
serialisation, response parsing and typed exceptions (`GoneException` is raised by botocore
itself, from the gateway's answer) — but the request does not go through the network:

- every botocore client is offered to `initialize_client_plugin` as it is created: botocore's
  client plugins, named by `BOTOCORE_EXPERIMENTAL__PLUGINS` in the worker's environment. For
  an `apigatewaymanagementapi` client whose endpoint is one of the emulator's own WebSocket
  port (`APIGW_LOCAL_MANAGEMENT_HOSTS`), a `before-call.apigatewaymanagementapi` handler is
  registered on that client's own event emitter; botocore's global handler lists are left
  alone, and clients for anything else (DynamoDB, AWS itself) are not touched;
- `before-call` runs after validation and serialisation and before signing and sending; a
  handler that returns `(http_response, parsed)` answers the call (the mechanism botocore's
  Stubber uses). Answering there costs 45 µs of CPU per call where answering at `before-send`
  cost 258 µs;
- the request (method, path, body, exactly as botocore serialised them) goes over a socket to
  the gateway, whose `gateway.management.Management.handle` answers it — the code that serves
  `@connections` over HTTP — in one hop; the answer is parsed by botocore's own parser for the
  service's protocol, with the modelled error fields, as `Endpoint` does.

What is skipped: signing (the channel is a socket the runtime handed to its own worker, so the
gateway trusts it as signed), retries (a local socket does not drop requests) and the
`before-send`/`before-parse` events. `APIGW_LOCAL_MANAGEMENT_TRANSPORT=http` in the worker's
environment (the CLI's `--management-transport http`) keeps botocore's HTTPS path. A botocore
without client plugins takes the HTTPS path too.

The channel is one socket per worker, thread-safe and pipelined: any number of threads may
have requests in flight, matched to answers by id. Frame (both ways): 4-byte big-endian
length, 4-byte id, 2-byte header length, the header as latin-1 text (request: `METHOD path`;
answer: `status` then one `name: value` per line), then the body. No JSON: this runs for every
delivery. Stdlib only at import (the worker imports it before the handler's paths are set).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

HOSTS_ENV = "APIGW_LOCAL_MANAGEMENT_HOSTS"
TRANSPORT_ENV = "APIGW_LOCAL_MANAGEMENT_TRANSPORT"
PLUGINS_ENV = "BOTOCORE_EXPERIMENTAL__PLUGINS"
PLUGIN = f"apigw_local={__name__}"
SERVICE = "apigatewaymanagementapi"
EVENT = f"before-call.{SERVICE}"

_LENGTH = struct.Struct(">I")
_HEAD = struct.Struct(">IH")  # id, header length


def encode(request_id: int, head: bytes, body: bytes) -> bytes:
    size = _HEAD.size + len(head) + len(body)
    return _LENGTH.pack(size) + _HEAD.pack(request_id, len(head)) + head + body


def decode(payload: bytes) -> tuple[int, bytes, bytes]:
    request_id, head_size = _HEAD.unpack_from(payload)
    start = _HEAD.size
    return request_id, payload[start:start + head_size], payload[start + head_size:]


def request_head(method: str, path: str) -> bytes:
    return f"{method} {path}".encode("latin-1")


def parse_request_head(head: bytes) -> tuple[str, str]:
    method, _, path = head.decode("latin-1").partition(" ")
    return method, path


def answer_head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    return "\n".join([str(status), *(f"{k}: {v}" for k, v in headers)]).encode("latin-1")


def parse_answer_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    status, *lines = head.decode("latin-1").split("\n")
    headers = []
    for line in lines:
        name, _, value = line.partition(": ")
        headers.append((name, value))
    return int(status), headers


class ChannelClosed(ConnectionError):
    pass


class Channel:
    """The worker's end: `call()` from any thread; answers matched by id.

    Leader/follower, no reader thread: the first caller without an answer reads the socket
    and hands the answers it finds to their callers; when its own answer is in, it passes the
    reading on to a caller still waiting. A lone caller (the common serial case) thus never
    waits for another thread to be scheduled.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._stream = sock.makefile("rb")
        self._lock = threading.Lock()
        self._pending: dict[int, list[Any]] = {}
        self._next = 0
        self._leader = False  # someone is reading; guarded by _lock
        self._closed = False

    def call(self, method: str, path: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        done = threading.Lock()
        done.acquire()  # released when the answer is in, or to make this caller the reader
        slot: list[Any] = [done, None]
        with self._lock:
            if self._closed:
                raise ChannelClosed("the gateway closed the Management API channel")
            self._next = request_id = (self._next + 1) & 0xFFFFFFFF
            self._pending[request_id] = slot
            try:
                self.sock.sendall(encode(request_id, request_head(method, path), body))
            except OSError as exc:
                self._pending.pop(request_id, None)
                raise ChannelClosed(str(exc)) from exc
            lead = not self._leader
            self._leader = True
        while not lead:
            done.acquire()
            if slot[1] is not None or self._closed:
                break
            lead = True  # promoted by the previous reader
        if lead:
            self._lead(slot)
        if slot[1] is None:
            raise ChannelClosed("the gateway closed the Management API channel")
        head, answer = slot[1]
        status, headers = parse_answer_head(head)
        return status, headers, answer

    def _lead(self, slot: list[Any]) -> None:
        stream = self._stream
        closed = False
        try:
            while slot[1] is None:
                size_bytes = stream.read(_LENGTH.size)
                if len(size_bytes) < _LENGTH.size:
                    closed = True
                    break
                (size,) = _LENGTH.unpack(size_bytes)
                payload = stream.read(size)
                if len(payload) < size:
                    closed = True
                    break
                request_id, head, body = decode(payload)
                with self._lock:
                    other = self._pending.pop(request_id, None)
                if other is not None:
                    other[1] = (head, body)
                    if other is not slot:
                        other[0].release()
        except (OSError, ValueError):
            closed = True
        finally:
            with self._lock:
                if closed:
                    self._closed = True
                    self._leader = False
                    waiting, self._pending = self._pending, {}
                    for other in waiting.values():
                        if other is not slot:
                            other[0].release()
                elif self._pending:  # hand the reading over (leadership stays taken)
                    next(iter(self._pending.values()))[0].release()
                else:
                    self._leader = False


def make_handler(hosts: Iterable[str], channel: Channel) -> Any:
    """The `before-call` handler: answers requests to `hosts` through `channel`."""
    from botocore.awsrequest import AWSResponse
    from botocore.endpoint import convert_to_response_dict
    from botocore.exceptions import EndpointConnectionError
    from botocore.parsers import create_parser

    local = frozenset(h.lower() for h in hosts)
    parsers: dict[str, Any] = {}

    def before_call(model: Any, params: dict[str, Any], **kwargs: Any) -> Any:
        url = params.get("url") or ""
        parts = urlsplit(url)
        if parts.netloc.lower() not in local:
            return None  # not our gateway (the endpoint changed): botocore sends it as usual
        body = params.get("body") or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes | bytearray):
            body = body.read() if hasattr(body, "read") else bytes(body)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            status, headers, answer = channel.call(params.get("method", "GET"), path, bytes(body))
        except ChannelClosed as exc:
            raise EndpointConnectionError(endpoint_url=url, error=exc) from exc
        response = AWSResponse(url, status, {k.lower(): v for k, v in headers}, None)
        response._content = answer
        response_dict = convert_to_response_dict(response, model)
        protocol = model.service_model.resolved_protocol
        parser = parsers.get(protocol)
        if parser is None:
            parser = parsers[protocol] = create_parser(protocol)
        parsed = parser.parse(response_dict, model.output_shape)
        if status >= 300:  # the modelled error fields, as botocore's Endpoint adds them
            code = parsed.get("Error", {}).get("Code")
            shape = model.service_model.shape_for_error_code(code) if code else None
            if shape is not None:
                parsed.update(parser.parse(response_dict, shape))
        if "ResponseMetadata" in parsed:
            parsed["ResponseMetadata"]["RetryAttempts"] = 0
        return response, parsed

    return before_call


# The worker's installed channel: (hosts, before-call handler); None without one.
_installed: tuple[frozenset[str], Any] | None = None


def install(fd: int, environ: Any = os.environ) -> bool:
    """Answer this worker's Management API calls to the gateway over the socket `fd`.

    Returns False (closing `fd`) when the transport is `http` or no hosts are given.
    """
    global _installed
    hosts = frozenset(h.lower() for h in (environ.get(HOSTS_ENV) or "").split(",") if h)
    if not hosts or environ.get(TRANSPORT_ENV, "direct").lower() == "http":
        os.close(fd)
        return False
    try:
        handler = make_handler(hosts, Channel(socket.socket(fileno=fd)))
    except ImportError:  # no botocore for this function: nothing to answer
        os.close(fd)
        return False
    _installed = (hosts, handler)
    return True


def installed() -> bool:
    return _installed is not None


def initialize_client_plugin(client: Any) -> None:
    """botocore's client-plugin entry point: hook this client if it calls our gateway."""
    if _installed is None:
        return
    try:
        if client.meta.service_model.service_name != SERVICE:
            return
        hosts, handler = _installed
        if urlsplit(client.meta.endpoint_url or "").netloc.lower() in hosts:
            client.meta.events.register(EVENT, handler)
    except Exception:  # never break the handler's client: it keeps botocore's HTTPS path
        return


# --- the gateway's end ---------------------------------------------------------------------


class GatewayEnd:
    """The gateway's end of one worker's channel (an asyncio protocol, duck-typed so the
    worker need not import asyncio): each request is answered by `answer(method, path, body)`
    synchronously, in arrival order."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer  # (method, path, body) → (status, headers, body)
        self.transport: Any = None
        self.buffer = bytearray()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        out: list[bytes] = []
        while len(buffer) >= 4:
            size = int.from_bytes(buffer[:4], "big")
            if len(buffer) < 4 + size:
                break
            payload = bytes(buffer[4:4 + size])
            del buffer[:4 + size]
            request_id, head, body = decode(payload)
            status, headers, answer = self.answer(*parse_request_head(head), body)
            out.append(encode(request_id, answer_head(status, headers), answer))
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def eof_received(self) -> None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def pause_writing(self) -> None:
        return None

    def resume_writing(self) -> None:
        return None
