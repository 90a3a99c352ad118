"""The worker's end of the channel, in this process: botocore clients answered over a socket.

A socketpair stands for the gateway; `GatewayEnd` answers on the other side, so botocore's
own validation, parsing and typed exceptions run exactly as in a worker.
"""

from __future__ import annotations

import socket
import threading

import boto3
import botocore.handlers
import pytest

from apigw_local.runtime import channel

HOST = "localhost:39999"


class FakeTransport:
    def __init__(self, sock):
        self.sock = sock

    def write(self, data):
        self.sock.sendall(data)


@pytest.fixture
def gateway_end(monkeypatch):
    seen = []

    def answer(method, path, body):
        seen.append((method, path, body))
        if "GONE" in path:
            return 410, [("Content-Type", "application/json"),
                         ("x-amzn-ErrorType", "GoneException")], b"{}"
        return 200, [("Content-Type", "application/json")], b""

    worker_sock, gateway_sock = socket.socketpair()
    end = channel.GatewayEnd(answer)
    end.connection_made(FakeTransport(gateway_sock))

    def serve():
        while data := gateway_sock.recv(65536):
            end.data_received(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    builtins = list(botocore.handlers.BUILTIN_HANDLERS)
    monkeypatch.setenv(channel.PLUGINS_ENV, channel.PLUGIN)
    monkeypatch.setattr(channel, "_installed", None)
    assert channel.install(worker_sock.detach(), {channel.HOSTS_ENV: HOST})
    yield seen
    assert builtins == botocore.handlers.BUILTIN_HANDLERS  # no global list was edited
    gateway_sock.shutdown(socket.SHUT_RDWR)
    gateway_sock.close()
    thread.join(5)


def _client(service, endpoint):
    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x")


def test_a_new_sessions_client_posts_over_the_channel(gateway_end):
    client = _client("apigatewaymanagementapi", f"https://{HOST}/dev")
    client.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"hi")
    assert gateway_end == [("POST", "/dev/@connections/AAAAAAAAAAAAAAA%3D", b"hi")]
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId="GONE", Data=b"x")


def test_other_endpoints_and_services_are_left_alone(gateway_end):
    elsewhere = _client("apigatewaymanagementapi", "https://127.0.0.1:1/dev")
    with pytest.raises(Exception) as exc:  # botocore's own HTTP path: nothing listens there
        elsewhere.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"hi")
    assert "GoneException" not in type(exc.value).__name__
    assert gateway_end == []


def test_the_http_transport_installs_nothing(monkeypatch):
    monkeypatch.setattr(channel, "_installed", None)
    a, b = socket.socketpair()
    assert not channel.install(a.detach(), {channel.HOSTS_ENV: HOST,
                                            channel.TRANSPORT_ENV: "http"})
    assert not channel.installed()
    b.close()
