"""HTTP/1.1 bounds and pipelining over real sockets: an `HttpConnection` server on 127.0.0.1:0
with a small application, driven by raw bytes from an asyncio client."""

import asyncio
import json

import pytest

from apigw_local.server.http11 import (
    MAX_BODY,
    MAX_HEAD,
    MAX_HEADERS,
    HttpConnection,
    Request,
    Response,
    json_response,
)


class App:
    def __init__(self):
        self.seen: list[Request] = []

    def handle(self, request: Request):
        self.seen.append(request)
        body = json.dumps({"path": request.path, "size": len(request.body)}).encode()
        if request.path == "/slow":
            async def later():
                await asyncio.sleep(0.05)
                return json_response(200, body)
            return later()
        return json_response(200, body)

    def upgrade(self, request, connection):
        return None


@pytest.fixture
async def server():
    app = App()
    srv = await asyncio.get_running_loop().create_server(lambda: HttpConnection(app),
                                                         "127.0.0.1", 0)
    app.port = srv.sockets[0].getsockname()[1]
    yield app
    srv.close()
    await srv.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers, body


async def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await read_response(reader)
    finally:
        writer.close()


def request(method="GET", target="/", headers=(), body=b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: t", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def test_announced_body_over_10_mb_is_413_before_any_byte_of_it(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1))
    status, headers, body = await read_response(reader)  # answered without sending the body
    assert (status, json.loads(body)) == (413, {"message": "Request Entity Too Large"})
    assert headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed
    writer.close()
    assert server.seen == []


async def test_exactly_10_mb_passes(server):
    status, _, body = await exchange(server.port, request("POST", "/up", body=b"x" * MAX_BODY))
    assert (status, json.loads(body)["size"]) == (200, MAX_BODY)


async def test_chunked_body_growing_past_10_mb_is_413_and_the_rest_is_dropped(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * (1 << 20)
    for _ in range(12):  # 12 MB in 1 MB chunks; the answer comes when the 11th crosses 10 MB
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
    status, headers, _ = await read_response(reader)
    assert status == 413 and headers["connection"] == "close"
    writer.close()
    assert server.seen == []


async def test_expect_100_continue(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                 b"Content-Length: 5\r\n\r\n")
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    status, _, body = await read_response(reader)
    assert (status, json.loads(body)["size"]) == (200, 5)
    writer.close()
    # Too large: 413 at once, never a 100.
    status, _, _ = await exchange(
        server.port, b"POST /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1))
    assert status == 413
    # An expectation other than 100-continue (RFC 9110 10.1.1).
    status, _, _ = await exchange(server.port, request(headers=["Expect: teapot"]))
    assert status == 417


async def test_request_line_and_header_values_are_bounded_at_10240_bytes(server):
    # "GET " + target + " HTTP/1.1" + header values ("t" for Host, then the filler).
    fixed = len("GET ") + len("/") + len(" HTTP/1.1") + len("t")
    at_limit = request(headers=[f"X-Fill: {'a' * (MAX_HEAD - fixed)}"])
    assert (await exchange(server.port, at_limit))[0] == 200
    over = request(headers=[f"X-Fill: {'a' * (MAX_HEAD - fixed + 1)}"])
    status, headers, body = await exchange(server.port, over)
    assert (status, json.loads(body)) == (431, {"message": "Request Header Fields Too Large"})
    long_target = request(target="/" + "a" * MAX_HEAD)
    assert (await exchange(server.port, long_target))[0] == 431


async def test_header_count_and_raw_head_are_bounded(server):
    many = request(headers=[f"X-{i}: 1" for i in range(MAX_HEADERS)])
    assert (await exchange(server.port, many))[0] == 431
    # Names are not counted by AWS's quota, but a head of endless names is still cut.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-" + b"n" * (1 << 20))
    status, _, _ = await read_response(reader)
    assert status == 431
    writer.close()
    assert (await exchange(server.port, request()))[0] == 200  # still serving


async def test_pipelined_answers_in_order_and_a_malformed_request_answered_last(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request(target="/slow") + request(target="/a", body=b"12")
                 + b"BROKEN\r\n\r\n" + request(target="/never"))
    answers = [await read_response(reader) for _ in range(3)]
    assert [a[0] for a in answers] == [200, 200, 400]
    assert [json.loads(a[2]).get("path") for a in answers[:2]] == ["/slow", "/a"]
    assert answers[2][1]["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    assert [r.path for r in server.seen] == ["/slow", "/a"]


async def test_many_pipelined_requests_with_bodies_all_answered(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    n = 200  # beyond the pending bound: reading pauses and resumes
    writer.write(b"".join(request("POST", "/slow" if i % 50 == 0 else f"/{i}",
                                  body=b"b" * 1000) for i in range(n)))
    sizes = [json.loads((await read_response(reader))[2])["size"] for _ in range(n)]
    assert sizes == [1000] * n
    writer.close()


def test_error_response_shape():
    from apigw_local.server.http11 import error_response

    r = error_response(413)
    assert isinstance(r, Response) and r.close
    assert json.loads(r.body) == {"message": "Request Entity Too Large"}


async def test_idle_and_stalled_connections_are_not_held():
    def quick() -> HttpConnection:
        conn = HttpConnection(App())
        conn.idle_timeout = 0.3
        return conn

    srv = await asyncio.get_running_loop().create_server(quick, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        # A keep-alive connection that goes quiet after its answer is closed.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request())
        assert (await read_response(reader))[0] == 200
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        # A head that stops arriving midway is answered 408, then closed.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Half: ")
        status, headers, _ = await read_response(reader)
        assert (status, headers["connection"]) == (408, "close")
        writer.close()
        # So is a body that stops short of its Content-Length.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        assert (await read_response(reader))[0] == 408
        writer.close()
    finally:
        srv.close()
        await srv.wait_closed()
