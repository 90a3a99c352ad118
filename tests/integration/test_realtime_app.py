"""The project's own app (template.yaml + local overlay) served by apigw-local, end to end."""

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import jwt
import pytest
from websockets.exceptions import InvalidStatus

from apigw_local.testing import connect, serve

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
SECRET = "integration-secret-" + "x" * 32
# How long a client waits for an answer or a frame before the test fails: every wait ends as
# soon as what it waits for arrives, so a generous bound costs nothing when things work and
# still fails a stack that never answers (cold workers on a loaded 2-core machine take seconds).
WAIT = 60


def token(sub, role="user"):
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": role, "iat": now, "exp": now + 3600}, SECRET,
                      algorithm="HS256")


@pytest.fixture(scope="module")
def ep(tmp_path_factory):
    templates = [ROOT / "template.yaml", ROOT / "local" / "template.yaml"]
    seed = tmp_path_factory.mktemp("seed") / "seed.json"
    seed.write_text(subprocess.run([sys.executable, str(ROOT / "local" / "seed.py")],
                                   check=True, capture_output=True, text=True).stdout)
    with serve(templates, parameter_overrides={"AuthSecret": SECRET}, seed=seed) as endpoints:
        yield endpoints


def http(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def of_type(kind):
    return lambda frame: frame.get("type") == kind


async def test_missing_token_is_refused(ep):
    with pytest.raises(InvalidStatus) as exc:
        await connect(ep.websocket)
    assert exc.value.response.status_code == 401


async def test_rooms_are_isolated_and_history_on_join(ep):
    room, other = f"r{int(time.time() * 1000)}", f"o{int(time.time() * 1000)}"
    async with connect(ep.websocket, query={"token": token("alice")}) as alice, \
            connect(ep.websocket, query={"token": token("bob")}) as bob, \
            connect(ep.websocket, query={"token": token("carol")}) as carol:
        await alice.send_json({"action": "join", "room": room})
        await alice.receive_until(of_type("presence"), timeout=WAIT)
        await bob.send_json({"action": "join", "room": room})
        await bob.receive_until(of_type("presence"), timeout=WAIT)
        await carol.send_json({"action": "join", "room": other})
        await carol.receive_until(of_type("presence"), timeout=WAIT)

        await alice.send_json({"action": "send", "room": room, "text": "hello room"})
        got_a = await alice.receive_until(of_type("message"), timeout=WAIT)
        got_b = await bob.receive_until(of_type("message"), timeout=WAIT)
        assert got_a["text"] == got_b["text"] == "hello room"
        assert got_b["sender"] == "alice"
        # Isolation: carol (another room) gets nothing of room's traffic.
        while not await carol.receive_nothing(0.5):
            pass
        for frame in carol.skipped:
            assert json.loads(frame).get("room") != room, frame

    async with connect(ep.websocket, query={"token": token("dave")}) as dave:
        await dave.send_json({"action": "join", "room": room})
        history = await dave.receive_until(of_type("history"), timeout=WAIT)
        assert [m["text"] for m in history["messages"]] == ["hello room"]


async def test_disconnect_cleans_dynamodb(ep):
    table = ep.tables["ConnectionsTable"]
    db = boto3.client("dynamodb", endpoint_url=ep.dynamodb, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    async with connect(ep.websocket, query={"token": token("erin")}) as ws:
        await ws.send_json({"action": "ping"})
        await ws.receive_until(of_type("pong"), timeout=WAIT)
        items = await asyncio.to_thread(lambda: db.scan(TableName=table)["Items"])
        mine = [i for i in items if "erin" in json.dumps(i)]
        assert mine
        cid = mine[0]["connectionId"]["S"]
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        item = await asyncio.to_thread(
            lambda: db.get_item(TableName=table, Key={"connectionId": {"S": cid}}))
        if "Item" not in item:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the connection is still stored after $disconnect")


async def test_verify_over_http_reaches_a_dashboard_subscriber(ep):
    admin = token("admin", "admin")
    auth = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
    status, body = await asyncio.to_thread(
        http, "POST", f"{ep.http}/transactions",
        json.dumps({"amount": 4200, "description": "integration"}).encode(), auth)
    assert status == 201, body
    tx = json.loads(body)["transaction"]
    async with connect(ep.websocket, query={"token": admin}) as dash:
        await dash.send_json({"action": "subscribe", "channel": "admin_dashboard"})
        snapshot = await dash.receive_until(of_type("income"), timeout=WAIT)
        assert snapshot["updated"] is None
        status, body = await asyncio.to_thread(
            http, "POST", f"{ep.http}/transactions/{tx['id']}/verify", b"", auth)
        assert status == 200, body
        update = await dash.receive_until(
            lambda f: f.get("type") == "income" and f.get("updated"), timeout=WAIT)
        assert update["updated"]["transactionId"] == tx["id"]
        status, _ = await asyncio.to_thread(
            http, "POST", f"{ep.http}/transactions/{tx['id']}/verify", b"", auth)
        assert status == 409


async def test_concurrent_verifies_through_workers_count_once(ep):
    """8 verifies of one transaction at once, each in its own Lambda worker process:
    one 200, seven 409, and the week's total moves by the amount exactly once."""
    auth = {"Authorization": f"Bearer {token('admin', 'admin')}",
            "Content-Type": "application/json"}
    status, body = await asyncio.to_thread(
        http, "POST", f"{ep.http}/transactions",
        json.dumps({"amount": 777, "description": "race"}).encode(), auth)
    assert status == 201, body
    tx = json.loads(body)["transaction"]

    def week_total() -> int:
        _, body = http("GET", f"{ep.http}/income/weekly?weeks=1", headers=auth)
        return json.loads(body)["weeks"][-1]["total"]

    before = await asyncio.to_thread(week_total)
    answers = await asyncio.gather(*(asyncio.to_thread(
        http, "POST", f"{ep.http}/transactions/{tx['id']}/verify", b"", auth)
        for _ in range(8)))
    assert sorted(status for status, _ in answers) == [200] + [409] * 7
    assert await asyncio.to_thread(week_total) == before + 777


async def test_boto3_posts_to_an_app_connection(ep):
    client = boto3.client("apigatewaymanagementapi", endpoint_url=ep.connections,
                          region_name="us-east-1", aws_access_key_id="t",
                          aws_secret_access_key="t")
    db = boto3.client("dynamodb", endpoint_url=ep.dynamodb, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    async with connect(ep.websocket, query={"token": token("frank")}) as ws:
        await ws.send_json({"action": "ping"})
        await ws.receive_until(of_type("pong"), timeout=WAIT)
        items = await asyncio.to_thread(
            lambda: db.scan(TableName=ep.tables["ConnectionsTable"])["Items"])
        cid = [i for i in items if "frank" in json.dumps(i)][0]["connectionId"]["S"]
        await asyncio.to_thread(client.post_to_connection, ConnectionId=cid,
                                Data=b'{"type": "pong"}')
        assert await ws.receive_json(timeout=WAIT) == {"type": "pong"}
