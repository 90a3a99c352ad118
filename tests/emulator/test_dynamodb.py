"""The embedded moto server, table provisioning, seeding and the TTL sweeper."""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal
from pathlib import Path

import boto3
import pytest

from apigw_local.dynamodb import (
    LOCAL_CREDENTIALS,
    EmbeddedDynamoDB,
    TtlSweeper,
    provision_tables,
    seed,
)
from apigw_local.template import load_application

TEMPLATE = Path(__file__).parent.parent / "fixtures" / "templates" / "websocket.yaml"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def server():
    with EmbeddedDynamoDB() as db:
        yield db


@pytest.fixture
def app():
    # A stack name per test keeps tables apart on the shared server.
    return load_application([TEMPLATE], stack_name=f"t{time.time_ns()}")


def _client(server):
    return boto3.client("dynamodb", endpoint_url=server.endpoint_url, region_name="us-east-1",
                        **LOCAL_CREDENTIALS)


def test_embedded_server_starts_answers_and_stops():
    db = EmbeddedDynamoDB()
    endpoint = db.start()
    pid = db.process.pid
    assert endpoint.startswith("http://127.0.0.1:")
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                          **LOCAL_CREDENTIALS)
    assert client.list_tables()["TableNames"] == []
    db.stop()
    db.stop()  # idempotent
    assert not _running(pid)
    with pytest.raises(RuntimeError):
        db.endpoint_url  # noqa: B018


async def test_embedded_server_as_async_context_manager():
    async with EmbeddedDynamoDB() as db:
        pid = db.process.pid
        assert _running(pid)
    assert not _running(pid)


def test_provision_tables_with_gsi_stream_and_ttl(server, app):
    outcome = provision_tables(server.endpoint_url, app.tables.values(),
                               credentials=LOCAL_CREDENTIALS)
    assert outcome == {"ConnectionsTable": "created", "NamedTable": "created",
                       "Simple": "created"}
    client = _client(server)
    table = app.tables["ConnectionsTable"]
    description = client.describe_table(TableName=table.name)["Table"]
    assert description["TableStatus"] == "ACTIVE"
    assert [k["AttributeName"] for k in description["KeySchema"]] == ["pk", "sk"]
    assert description["GlobalSecondaryIndexes"][0]["IndexName"] == "by-room"
    assert description["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    ttl = client.describe_time_to_live(TableName=table.name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}
    named = client.describe_table(TableName=app.tables["NamedTable"].name)["Table"]
    assert named["ProvisionedThroughput"]["WriteCapacityUnits"] == 3
    # Idempotent: a second run finds them.
    again = provision_tables(server.endpoint_url, app.tables.values(),
                             credentials=LOCAL_CREDENTIALS)
    assert set(again.values()) == {"exists"}


def test_seed_puts_items_with_numbers_kept(server, app, tmp_path):
    provision_tables(server.endpoint_url, app.tables.values(), credentials=LOCAL_CREDENTIALS)
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps({
        "ConnectionsTable": [
            {"pk": "c#1", "sk": "meta", "room": "general", "count": 3, "ratio": 0.5},
            {"pk": "c#2", "sk": "meta", "room": "general", "tags": ["a"]},
        ],
        "Simple": [{"key": 1}],
    }))
    counts = seed(server.endpoint_url, app, seed_file, credentials=LOCAL_CREDENTIALS)
    assert counts == {"ConnectionsTable": 2, "Simple": 1}
    resource = boto3.resource("dynamodb", endpoint_url=server.endpoint_url,
                              region_name="us-east-1", **LOCAL_CREDENTIALS)
    item = resource.Table(app.tables["ConnectionsTable"].name).get_item(
        Key={"pk": "c#1", "sk": "meta"})["Item"]
    assert item["count"] == 3 and item["ratio"] == Decimal("0.5")


def test_seed_names_an_unknown_table(server, app, tmp_path):
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps({"NoSuchTable": []}))
    with pytest.raises(ValueError, match="NoSuchTable"):
        seed(server.endpoint_url, app, seed_file, credentials=LOCAL_CREDENTIALS)


def test_ttl_sweeper_deletes_expired_items_only(server, app):
    provision_tables(server.endpoint_url, app.tables.values(), credentials=LOCAL_CREDENTIALS)
    resource = boto3.resource("dynamodb", endpoint_url=server.endpoint_url,
                              region_name="us-east-1", **LOCAL_CREDENTIALS)
    table = resource.Table(app.tables["ConnectionsTable"].name)
    now = int(time.time())
    table.put_item(Item={"pk": "old", "sk": "x", "expiresAt": now - 10})
    table.put_item(Item={"pk": "new", "sk": "x", "expiresAt": now + 3600})
    table.put_item(Item={"pk": "none", "sk": "x"})
    sweeper = TtlSweeper(server.endpoint_url, app.tables.values(), credentials=LOCAL_CREDENTIALS)
    assert [t.logical_id for t in sweeper.tables] == ["ConnectionsTable"]
    assert sweeper.sweep_once() == 1
    left = sorted(i["pk"] for i in table.scan()["Items"])
    assert left == ["new", "none"]


def test_conditional_transactions_race_to_exactly_one_winner(server):
    """DynamoDB isolates transactions: of 16 racing conditional writes, one wins."""
    client = _client(server)
    name = f"race{time.time_ns()}"
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    client.put_item(TableName=name, Item={"id": {"S": "tx"}, "status": {"S": "pending"}})
    client.put_item(TableName=name, Item={"id": {"S": "week"}, "total": {"N": "0"}})

    def verify(_: int) -> bool:
        own = boto3.client("dynamodb", endpoint_url=server.endpoint_url,
                           region_name="us-east-1", **LOCAL_CREDENTIALS)
        try:
            own.transact_write_items(TransactItems=[
                {"Update": {"TableName": name, "Key": {"id": {"S": "tx"}},
                            "UpdateExpression": "SET #s = :v",
                            "ConditionExpression": "#s = :p",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": {":v": {"S": "verified"},
                                                          ":p": {"S": "pending"}}}},
                {"Update": {"TableName": name, "Key": {"id": {"S": "week"}},
                            "UpdateExpression": "ADD #t :one",
                            "ExpressionAttributeNames": {"#t": "total"},
                            "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            ])
            return True
        except own.exceptions.TransactionCanceledException:
            return False

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        wins = sum(pool.map(verify, range(16)))
    total = client.get_item(TableName=name, Key={"id": {"S": "week"}})["Item"]["total"]["N"]
    assert (wins, total) == (1, "1")


def test_web_pages_get_no_cors_from_the_embedded_server(server):
    """A page in the developer's browser must not reach the tables (or the secrets): the
    preflight of a DynamoDB call from a foreign origin gets no CORS allowance."""
    import urllib.request

    preflight = urllib.request.Request(server.endpoint_url + "/", method="OPTIONS", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-amz-target,content-type,authorization"})
    try:
        with urllib.request.urlopen(preflight, timeout=10) as answer:
            headers = answer.headers
    except urllib.error.HTTPError as err:
        headers = err.headers
    assert headers.get("Access-Control-Allow-Origin") is None


def _connections_to(port: int) -> dict[int, str]:
    """This machine's TCP sockets whose remote end is 127.0.0.1:`port`: local port → state
    (/proc/net/tcp: 01 ESTABLISHED, 06 TIME_WAIT)."""
    sockets = {}
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            local, remote, state = line.split()[1:4]
            if remote == f"0100007F:{port:04X}":
                sockets[int(local.split(":")[1], 16)] = state
    return sockets


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc/net/tcp")
def test_one_client_keeps_one_connection_for_many_calls(server):
    """Each worker's boto3 client reuses its connection (HTTP/1.1 keep-alive): 50 calls open
    one TCP connection, not 50 that each linger in TIME_WAIT afterwards."""
    port = int(server.endpoint_url.rsplit(":", 1)[1])
    before = set(_connections_to(port))
    client = _client(server)
    for _ in range(50):
        client.list_tables()
    opened = {local: state for local, state in _connections_to(port).items()
              if local not in before}
    assert list(opened.values()) == ["01"], opened  # one, still established


def test_one_raw_connection_carries_request_after_request(server):
    """Three requests over one socket: each answered with `Connection: keep-alive`, and the
    socket still open after each answer."""
    import http.client

    connection = http.client.HTTPConnection(server.endpoint_url.removeprefix("http://"),
                                            timeout=10)
    try:
        for _ in range(3):
            connection.request("POST", "/", body="{}", headers={**_SIGNED, "X-Amz-Target":
                                                                "DynamoDB_20120810.ListTables"})
            sock = connection.sock
            answer = connection.getresponse()
            assert (answer.status, "TableNames" in json.loads(answer.read())) == (200, True)
            assert answer.headers["Connection"] == "keep-alive"
            assert connection.sock is sock
    finally:
        connection.close()


def test_a_chunked_request_body_reaches_moto_whole(server):
    """A request whose body arrives in chunks (Transfer-Encoding: chunked) is answered as if it
    had a Content-Length."""
    import http.client

    name = f"chunked{time.time_ns()}"
    _client(server).create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    body = json.dumps({"TableName": name, "Item": {"id": {"S": "a"}, "n": {"N": "7"}}}).encode()
    connection = http.client.HTTPConnection(server.endpoint_url.removeprefix("http://"),
                                            timeout=10)
    try:
        connection.request("POST", "/", body=iter([body[:20], body[20:]]), encode_chunked=True,
                           headers={**_SIGNED, "X-Amz-Target": "DynamoDB_20120810.PutItem"})
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (200, b"{}")
    finally:
        connection.close()
    item = _client(server).get_item(TableName=name, Key={"id": {"S": "a"}})["Item"]
    assert item["n"] == {"N": "7"}


def test_a_body_over_dynamodbs_largest_request_is_refused_unread(server):
    """16 MB is DynamoDB's largest request (BatchWriteItem): a longer one announced gets 413
    before a byte of its body is read, and the server goes on answering."""
    import socket

    host, port = server.endpoint_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: DynamoDB_20120810.ListTables"
                     b"\r\nContent-Length: %d\r\n\r\n" % (16 * 1024 * 1024 + 1))
        assert sock.recv(65536).startswith(b"HTTP/1.1 413 ")
    assert "TableNames" in _client(server).list_tables()


_SIGNED = {"Content-Type": "application/x-amz-json-1.0",
           "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20000101/us-east-1/dynamodb/"
                            "aws4_request, SignedHeaders=host, Signature=0"}
