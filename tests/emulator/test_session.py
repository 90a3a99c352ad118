"""API Gateway's per-connection rules as bytes in → events out: no sockets, no event loop.

Each test feeds a `Session` the frames a client would send (masked, as RFC 6455 5.3 requires
of clients) and the time, then reads what it decided: `Invoke`/`Closed` events and the bytes
it would write, decoded back into frames.
"""

from __future__ import annotations

import json

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from apigw_local.gateway.events import ConnectionInfo
from apigw_local.gateway.invocation import FunctionError, Invocation
from apigw_local.gateway.quotas import Quotas
from apigw_local.gateway.routing import WebSocketRouter
from apigw_local.gateway.session import Closed, Invoke, Session
from apigw_local.gateway.throttle import TokenBucket
from apigw_local.model import Throttle, WebSocketApi, WebSocketRoute

OP_TEXT, OP_CONT, OP_BINARY, OP_PING = Opcode.TEXT, Opcode.CONT, Opcode.BINARY, Opcode.PING
EPOCH_MS = 1_764_527_400_123
ROUTES = {
    "$default": WebSocketRoute("$default", "Default"),
    "echo": WebSocketRoute("echo", "Echo", route_response=True),
}


def make(quotas=None, routes=ROUTES, throttle=None, now=0.0):
    quotas = quotas or Quotas()
    api = WebSocketApi("Api", "api", "abcdefghij", "$request.body.action", dict(routes), "dev")
    info = ConnectionInfo(connection_id="AAAAAAAAAAAAAAA=", api_id=api.api_id, stage="dev",
                          domain_name="localhost:1", source_ip="127.0.0.1", user_agent="t",
                          connected_at=0)
    bucket = TokenBucket.for_stage(throttle, now)
    return Session(info, WebSocketRouter(api), quotas, now, throttle=bucket,
                   epoch_ms=lambda: EPOCH_MS)


def frame(opcode, data, fin=True):
    return Frame(opcode, data, fin).serialize(mask=True, extensions=[])


def text(s, fin=True):
    return frame(OP_TEXT, s.encode() if isinstance(s, str) else s, fin)


class Client:
    """Reads what the session wrote, as a client would."""

    def __init__(self):
        self.protocol = ClientProtocol(parse_uri("ws://localhost/dev"), state=State.OPEN,
                                       max_size=None)
        self.eof = False

    def read(self, session):
        for chunk in session.data_to_send():
            if chunk:
                self.protocol.receive_data(chunk)
            else:
                self.eof = True
        return self.protocol.events_received()


def texts(frames):
    return [f.data.decode() for f in frames if f.opcode is Opcode.TEXT]


def close_code(frames):
    closes = [Close.parse(f.data) for f in frames if f.opcode is Opcode.CLOSE]
    return closes[0].code if closes else None


def ok(payload=None):
    return Invocation("Echo", "rid", 1.0, payload=payload)


# -- quotas ----------------------------------------------------------------------------------


def test_a_40000_byte_frame_closes_1009():
    s, client = make(), Client()
    s.receive_data(text("x" * 40_000), now=1.0)
    assert close_code(client.read(s)) == 1009 and client.eof
    assert s.events_received() == []
    s.connection_lost()
    [closed] = s.events_received()
    assert isinstance(closed, Closed) and closed.code == 1009


def test_binary_frame_closes_1003():
    s, client = make(), Client()
    s.receive_data(frame(OP_BINARY, b"\x00\x01"), now=1.0)
    assert close_code(client.read(s)) == 1003
    s.connection_lost()
    assert s.events_received() == [Closed(1003, "Unsupported data")]


def test_invalid_utf8_closes_1007():
    s, client = make(), Client()
    s.receive_data(text(b"\xff\xfe"), now=1.0)
    assert close_code(client.read(s)) == 1007


def test_fragments_make_one_message_up_to_128kb():
    s, client = make(), Client()
    chunk = "y" * 32 * 1024
    s.receive_data(text(chunk, fin=False) + frame(OP_CONT, b"z", fin=True), now=1.0)
    [invoke] = s.events_received()
    assert isinstance(invoke, Invoke) and invoke.event["body"] == chunk + "z"
    s.receive_data(b"".join(frame(OP_TEXT if i == 0 else OP_CONT, chunk.encode(), fin=False)
                            for i in range(4)) + frame(OP_CONT, b"!"), now=2.0)
    assert close_code(client.read(s)) == 1009


def test_ping_is_answered_with_pong():
    s, client = make(), Client()
    s.receive_data(frame(OP_PING, b"hb"), now=1.0)
    [pong] = client.read(s)
    assert pong.opcode is Opcode.PONG and pong.data == b"hb"


# -- routes and answers ----------------------------------------------------------------------


def test_route_selection_and_event():
    s = make()
    s.receive_data(text('{"action": "echo", "n": 1}') + text("plain"), now=1.0)
    first, second = s.events_received()
    assert (first.route_key, first.function, first.route_response) == ("echo", "Echo", True)
    assert first.event["requestContext"]["connectionId"] == "AAAAAAAAAAAAAAA="
    assert first.event["requestContext"]["requestId"] == first.request_id
    assert first.event["requestContext"]["requestTimeEpoch"] == EPOCH_MS
    assert (second.route_key, second.function) == ("$default", "Default")


def test_no_route_and_no_default_sends_forbidden():
    s, client = make(routes={"echo": ROUTES["echo"]}), Client()
    s.receive_data(text('{"action": "other"}'), now=1.0)
    assert s.events_received() == []
    [reply] = texts(client.read(s))
    assert json.loads(reply)["message"] == "Forbidden"


def test_answers_of_an_invocation():
    s, client = make(Quotas(connection_inflight=3)), Client()
    s.receive_data(text('{"action": "echo"}') * 3, now=1.0)
    a, b, c = s.events_received()
    s.invocation_done(a, ok({"statusCode": 200, "body": "pong"}), now=1.1)
    s.invocation_done(b, Invocation("Echo", "r", 1.0, error=FunctionError("ValueError", "x")),
                      now=1.2)
    s.invocation_done(c, Invocation("Echo", "r", 1.0, error=FunctionError(
        "Gateway.IntegrationTimeout", "Endpoint request timed out")), now=1.3)
    replies = texts(client.read(s))
    assert replies[0] == "pong"
    assert json.loads(replies[1]) == {"message": "Internal server error",
                                      "connectionId": "AAAAAAAAAAAAAAA=",
                                      "requestId": b.request_id}
    assert json.loads(replies[2])["message"] == "Endpoint request timed out"


# -- throttling and bounds -------------------------------------------------------------------


def test_stage_throttling_is_a_token_bucket():
    s, client = make(Quotas(connection_inflight=4), throttle=Throttle(burst_limit=2,
                                                                      rate_limit=1.0)), Client()
    s.receive_data(text("a") + text("b") + text("c"), now=0.0)
    assert len(s.events_received()) == 2
    [refused] = texts(client.read(s))
    assert json.loads(refused)["message"] == "Too Many Requests"
    s.receive_data(text("d"), now=1.0)  # one token back after a second
    assert len(s.events_received()) == 1
    assert s.open  # throttled, not closed


def test_a_route_with_route_settings_has_its_own_bucket():
    from apigw_local.gateway.stage import Stage

    api = WebSocketApi("Api", "api", "abcdefghij", "$request.body.action", dict(ROUTES), "dev",
                       throttle=Throttle(burst_limit=2, rate_limit=1.0),
                       route_throttles={"echo": Throttle(burst_limit=1, rate_limit=1.0)})
    stage = Stage(api, "dev", now=0.0)
    info = ConnectionInfo(connection_id="AAAAAAAAAAAAAAA=", api_id=api.api_id, stage="dev",
                          domain_name="localhost:1", source_ip="127.0.0.1", user_agent="t",
                          connected_at=0)
    s, client = Session(info, stage.router, Quotas(connection_inflight=8), 0.0,
                        throttle=stage.throttle, route_throttles=stage.route_throttles,
                        epoch_ms=lambda: EPOCH_MS), Client()
    echo = json.dumps({"action": "echo"})
    s.receive_data(text(echo) + text(echo) + text("a") + text("b") + text("c"), now=0.0)
    # echo: its own burst of 1; $default: the stage's burst of 2, untouched by echo's.
    assert [e.route_key for e in s.events_received()] == ["echo", "$default", "$default"]
    assert [json.loads(t)["message"] for t in texts(client.read(s))] == \
        ["Too Many Requests"] * 2
    assert stage.bucket("$connect") is stage.throttle


def test_queued_invocations_are_bounded():
    s, client = make(Quotas(connection_inflight=1, connection_queue=2)), Client()
    s.receive_data(text("1") + text("2"), now=1.0)
    [first] = s.events_received()
    assert s.reading  # one waits: keep reading
    s.receive_data(text("3"), now=1.0)
    assert not s.reading  # two wait: the pump stops reading this client (backpressure)
    # Frames already read still queue, up to four times the limit; then a clear refusal.
    s.receive_data(b"".join(text(str(n)) for n in range(4, 12)), now=1.0)
    assert [json.loads(t)["message"] for t in texts(client.read(s))] == \
        ["Too Many Requests"] * 2
    s.invocation_done(first, ok(), now=1.1)
    [second] = s.events_received()
    assert second.event["body"] == "2"
    assert not s.reading


def test_a_client_that_does_not_read_is_closed():
    s = make(Quotas(client_write_buffer_bytes=10_000))
    s.pause_writing()  # the socket's buffer is full
    assert not s.reading  # ...so its pings are not read either: pongs obey the backpressure
    assert s.send_text("x" * 4_000, now=1.0) and s.data_to_send() == []
    assert s.buffered > 4_000
    assert not s.send_text("x" * 8_000, now=1.1)
    assert s.aborted and s.data_to_send() == [b""]
    s.connection_lost()
    assert s.events_received() == [Closed(1001, "Going away")]


def test_pongs_wait_while_writing_is_paused():
    s, client = make(), Client()
    s.pause_writing()
    s.receive_data(frame(OP_PING, b"1"), now=1.0)
    assert client.read(s) == []
    s.resume_writing()
    assert [f.opcode for f in client.read(s)] == [Opcode.PONG]


# -- deadlines -------------------------------------------------------------------------------


def test_idle_timeout_closes_1001_then_drops_a_silent_client():
    s, client = make(Quotas(idle_timeout=10, max_duration=100), now=0.0), Client()
    s.receive_data(text("hi"), now=4.0)
    assert [type(e) for e in s.events_received()] == [Invoke]
    assert s.deadline() == 14.0  # traffic moves the idle deadline
    s.tick(13.0)
    assert s.open
    s.tick(14.0)
    assert close_code(client.read(s)) == 1001
    assert s.deadline() == 16.0  # the client has CLOSE_TIMEOUT to answer our close
    s.tick(16.0)
    assert s.aborted and s.data_to_send() == [b""]
    s.connection_lost()
    assert s.events_received() == [Closed(1001, "Going away")]


def test_max_duration_wins_over_activity():
    s = make(Quotas(idle_timeout=10, max_duration=12), now=0.0)
    s.receive_data(text("hi"), now=9.0)
    assert s.deadline() == 12.0
