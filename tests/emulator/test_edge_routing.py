"""The LocalStack-style edge's routing (edge.py), without sockets: which requests reach the
Management API core, which the backend, and the health answer."""

from __future__ import annotations

import json

import pytest

from apigw_local.edge import LocalStackEdge
from apigw_local.gateway.connections import ConnectionRegistry
from apigw_local.gateway.management import Management
from apigw_local.server.http11 import Request

SIGNED = ("Authorization", "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/execute-api/"
          "aws4_request, SignedHeaders=host, Signature=" + "0" * 64)


def request(method: str, target: str, host: str = "localhost:4566",
            headers: tuple[tuple[str, str], ...] = (SIGNED,)) -> Request:
    return Request(method=method, target=target, headers=[("Host", host), *headers], body=b"hi",
                   keep_alive=True, http_version="1.1", peer=("127.0.0.1", 1), scheme="http",
                   local_port=4566)


@pytest.fixture
def edge() -> LocalStackEdge:
    management = Management(ConnectionRegistry(), {"dev": "abc123"})
    return LocalStackEdge(lambda: management, None, ["dynamodb"])


async def test_health_lists_the_services(edge):
    answer = await edge.handle(request("GET", "/_localstack/health"))
    assert answer.status == 200
    services = json.loads(answer.body)["services"]
    assert services == {"apigatewaymanagementapi": "running", "dynamodb": "running"}


@pytest.mark.parametrize("host, target", [
    ("localhost:4566", "/@connections/bm9uZQ%3D%3D"),  # the edge as the SDK's endpoint
    ("localhost:4566", "/_aws/execute-api/abc123/dev/@connections/bm9uZQ%3D%3D"),
    ("abc123.execute-api.localhost.localstack.cloud:4566", "/dev/@connections/bm9uZQ%3D%3D"),
])
async def test_every_url_form_reaches_the_management_api(edge, host, target):
    answer = await edge.handle(request("POST", target, host))
    assert answer.status == 410  # an unknown connection, answered by the Management API core
    assert ("x-amzn-ErrorType", "GoneException") in answer.headers


async def test_the_management_api_still_wants_a_signature(edge):
    answer = await edge.handle(request("POST", "/@connections/x", headers=()))
    assert answer.status == 403


async def test_other_calls_need_a_backend(edge):
    answer = await edge.handle(request("POST", "/"))
    assert answer.status == 404
