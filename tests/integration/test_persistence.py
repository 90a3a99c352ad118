"""Nothing lost: the app's data survives `kill -9` of the emulator and of its embedded DynamoDB.

Real processes: `apigw-local start --persist DIR` on the app's templates, killed with SIGKILL
and started again; the app's own HTTP API and WebSocket routes write and read the data.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import boto3
import jwt
import pytest
from botocore.config import Config
from emulator_process import ROOT, EmulatorProcess

from apigw_local.testing import connect

pytestmark = pytest.mark.integration

SECRET = "persistence-secret-" + "x" * 32


def token(sub: str, role: str = "user") -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": role, "iat": now, "exp": now + 3600}, SECRET,
                      algorithm="HS256")


ADMIN = {"Content-Type": "application/json"}


def http(method: str, url: str, body: object = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    headers = {**ADMIN, "Authorization": f"Bearer {token('admin', 'admin')}"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture
def app_args(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(subprocess.run([sys.executable, str(ROOT / "local" / "seed.py")],
                                   check=True, capture_output=True, text=True).stdout)
    return ["-t", str(ROOT / "template.yaml"), "-t", str(ROOT / "local" / "template.yaml"),
            "--parameter-overrides", f"AuthSecret={SECRET}", "--seed", str(seed),
            "--persist", str(tmp_path / "state")]


async def chat(ws_url: str, room: str, text: str | None = None) -> list[str]:
    """Join `room` (and say `text`); returns the room's history as the join answered it."""
    async with connect(ws_url, query={"token": token("alice")}) as ws:
        await ws.send_json({"action": "join", "room": room})
        history = await ws.receive_until(lambda f: f.get("type") == "history", timeout=20)
        if text is not None:
            await ws.send_json({"action": "send", "room": room, "text": text})
            await ws.receive_until(lambda f: f.get("type") == "message", timeout=20)
        return [m["text"] for m in history["messages"]]


def pending_and_total(http_url: str) -> tuple[list[dict], dict[str, int]]:
    status, listed = http("GET", f"{http_url}/transactions?status=pending")
    assert status == 200, listed
    status, weekly = http("GET", f"{http_url}/income/weekly")
    assert status == 200, weekly
    return listed["transactions"], {w["week"]: w["total"] for w in weekly["weeks"]}


def test_chat_transactions_and_totals_survive_kill_9_and_the_seed_is_not_reapplied(
        tmp_path, app_args):
    with EmulatorProcess(tmp_path, *app_args) as emulator:
        endpoints = emulator.start()
        pending, totals = pending_and_total(endpoints["http"])
        assert pending, "the seed has pending transactions"
        chosen = pending[0]
        status, verified = http("POST", f"{endpoints['http']}/transactions/{chosen['id']}/verify")
        assert status == 200, verified
        asyncio.run(chat(endpoints["websocket"], "general", "said before the kill"))
        _, totals_before = pending_and_total(endpoints["http"])
        assert totals_before[chosen["week"]] == totals.get(chosen["week"], 0) + chosen["amount"]

        emulator.kill()  # SIGKILL: no shutdown code runs in the emulator

        endpoints = emulator.start()
        pending_after, totals_after = pending_and_total(endpoints["http"])
        assert chosen["id"] not in [t["id"] for t in pending_after], "seed reapplied"
        assert totals_after == totals_before
        history = asyncio.run(chat(endpoints["websocket"], "general"))
        assert history == ["said before the kill"]
        log = emulator.log()
        assert "seed not applied to tables that already existed" in log


def test_every_acknowledged_write_survives_kill_9_of_the_emulator(tmp_path):
    """Writes go on as fast as they are answered while the emulator is killed: every write
    that was answered is there after the restart (the loss window is zero for answered
    writes; the one in flight may or may not have landed)."""
    args = ["-t", str(ROOT / "tests" / "fixtures" / "templates" / "websocket.yaml"),
            "--persist", str(tmp_path / "state")]
    with EmulatorProcess(tmp_path, *args) as emulator:
        endpoints = emulator.start()
        table, key = _hash_key_table(endpoints["dynamodb"])
        acknowledged: list[int] = []
        stop = threading.Event()

        def write() -> None:
            client = _client(endpoints["dynamodb"])
            n = 0
            while not stop.is_set():
                try:
                    client.put_item(TableName=table, Item={key: {"S": f"k{n}"}})
                except Exception:
                    return  # the server is gone
                acknowledged.append(n)
                n += 1

        writer = threading.Thread(target=write)
        writer.start()
        while len(acknowledged) < 200:
            time.sleep(0.01)
        emulator.kill()
        stop.set()
        writer.join(30)

        endpoints = emulator.start()
        client = _client(endpoints["dynamodb"])
        stored = {item[key]["S"] for page in client.get_paginator("scan").paginate(
            TableName=table) for item in page["Items"]}
        missing = [n for n in acknowledged if f"k{n}" not in stored]
        assert missing == [], f"{len(missing)} of {len(acknowledged)} answered writes lost"
        in_flight = f"k{len(acknowledged)}" in stored
        print(f"kill -9 after {len(acknowledged)} answered writes: 0 lost; the one in flight "
              f"{'landed' if in_flight else 'did not land'}")


def test_a_killed_embedded_dynamodb_is_reported_and_restarted_with_its_data(tmp_path):
    args = ["-t", str(ROOT / "tests" / "fixtures" / "templates" / "websocket.yaml"),
            "--persist", str(tmp_path / "state")]
    with EmulatorProcess(tmp_path, *args) as emulator:
        endpoints = emulator.start()
        table, key = _hash_key_table(endpoints["dynamodb"])
        _client(endpoints["dynamodb"]).put_item(TableName=table, Item={key: {"S": "kept"}})
        (moto_pid,) = [pid for pid in emulator.children() if _is_moto(pid)]

        os.kill(moto_pid, signal.SIGKILL)

        log = emulator.wait_for_log("embedded DynamoDB is back")
        died = [line for line in log.splitlines() if "died" in line]
        assert len(died) == 1, log
        assert f"embedded DynamoDB (pid {moto_pid}) died (killed by SIGKILL)" in died[0]
        assert "from the state persisted in" in died[0]
        item = _client(endpoints["dynamodb"]).get_item(TableName=table, Key={key: {"S": "kept"}})
        assert "Item" in item
        assert emulator.process.poll() is None  # the emulator itself kept serving


def _client(endpoint: str):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"max_attempts": 1}, connect_timeout=5,
                                      read_timeout=10))


def _hash_key_table(endpoint: str) -> tuple[str, str]:
    """A table of the fixture template keyed by a hash key alone, and that key's name."""
    client = _client(endpoint)
    for table in client.list_tables()["TableNames"]:
        schema = client.describe_table(TableName=table)["Table"]["KeySchema"]
        if len(schema) == 1:
            return table, schema[0]["AttributeName"]
    raise AssertionError("the fixture template has no table with a hash key alone")


def _is_moto(pid: int) -> bool:
    try:
        return b"serve_moto" in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False


def test_a_server_that_keeps_dying_stops_the_emulator_with_a_message(tmp_path):
    """Without --persist the restart says the tables come back empty; a fourth death within
    a minute stops apigw-local with one error line and exit status 1, never silent 502s."""
    args = ["-t", str(ROOT / "tests" / "fixtures" / "templates" / "websocket.yaml")]
    with EmulatorProcess(tmp_path, *args) as emulator:
        emulator.start()
        for death in range(1, 5):
            (moto_pid,) = [pid for pid in emulator.children() if _is_moto(pid)]
            os.kill(moto_pid, signal.SIGKILL)
            if death < 4:
                emulator.wait_for_log(f"embedded DynamoDB (pid {moto_pid}) died")
                _wait_for(lambda n=death: emulator.log().count("embedded DynamoDB is back") == n)
        assert emulator.process.wait(120) == 1
        log = emulator.log()
        assert "EMPTY (without --persist its data is gone)" in log
        assert log.strip().splitlines()[-1].startswith(
            "error: the embedded DynamoDB died 4 times within a minute (last: killed by SIGKILL)")
        assert "Traceback" not in log


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.1)


def test_the_app_works_through_a_killed_and_restarted_embedded_dynamodb(tmp_path, app_args):
    """The workers keep their DynamoDB connections between invocations: after `kill -9` of
    the embedded DynamoDB and its restart, the app's HTTP API and chat still work, with the
    data written before the kill."""
    with EmulatorProcess(tmp_path, *app_args) as emulator:
        endpoints = emulator.start()
        asyncio.run(chat(endpoints["websocket"], "general", "before the kill"))
        # Its $disconnect runs after the socket closed: an invocation in flight when DynamoDB
        # dies fails (and logs its traceback) as it would in Lambda; this test is about after.
        emulator.wait_for_log("$disconnect")
        pending_before, totals_before = pending_and_total(endpoints["http"])
        (moto_pid,) = [pid for pid in emulator.children() if _is_moto(pid)]

        os.kill(moto_pid, signal.SIGKILL)
        emulator.wait_for_log("embedded DynamoDB is back")

        assert pending_and_total(endpoints["http"]) == (pending_before, totals_before)
        history = asyncio.run(chat(endpoints["websocket"], "general", "after the restart"))
        assert history == ["before the kill"]
        assert asyncio.run(chat(endpoints["websocket"], "general")) == [
            "before the kill", "after the restart"]
        log = emulator.log()
        assert "Traceback" not in log, log[log.index("Traceback") - 3000:][:6000]
