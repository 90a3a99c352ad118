"""The embedded DynamoDB's persistence: journal, snapshots, restore (persistence.py, and the
moto server that uses it over real HTTP)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import boto3
import pytest

from apigw_local.moto_server import LOCAL_CREDENTIALS, EmbeddedMoto
from apigw_local.persistence import Journal, PersistError, changes_state


def client(server: EmbeddedMoto):
    return boto3.client("dynamodb", endpoint_url=server.endpoint_url, region_name="eu-west-1",
                        **LOCAL_CREDENTIALS)


def make_tables(db) -> None:
    db.create_table(
        TableName="rooms", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"},
                              {"AttributeName": "user", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{"IndexName": "byUser", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "user", "KeyType": "HASH"}]}])
    db.update_time_to_live(TableName="rooms", TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expiresAt"})
    db.create_table(
        TableName="counters", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    db.create_table(
        TableName="dropped", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])


def write_some(db) -> None:
    for n in range(30):  # more than one BatchWriteItem on restore
        db.put_item(TableName="rooms", Item={"pk": {"S": "general"}, "sk": {"S": f"m{n:02}"},
                                             "user": {"S": f"u{n % 3}"}, "n": {"N": str(n)}})
    db.delete_item(TableName="rooms", Key={"pk": {"S": "general"}, "sk": {"S": "m00"}})
    db.transact_write_items(TransactItems=[
        {"Update": {"TableName": "counters", "Key": {"id": {"S": "week"}},
                    "UpdateExpression": "ADD amount :a", "ExpressionAttributeValues": {
                        ":a": {"N": "150"}}}},
        {"Put": {"TableName": "counters", "Item": {"id": {"S": "tx1"}, "ok": {"BOOL": True}},
                 "ConditionExpression": "attribute_not_exists(id)"}}])
    db.update_item(TableName="counters", Key={"id": {"S": "week"}},
                   UpdateExpression="ADD amount :a", ExpressionAttributeValues={":a": {"N": "7"}})
    db.delete_table(TableName="dropped")


def state(db) -> dict:
    out = {}
    for table in sorted(db.list_tables()["TableNames"]):
        items = db.scan(TableName=table)["Items"]
        out[table] = sorted(json.dumps(i, sort_keys=True) for i in items)
    return out


def check_restored(db, expected: dict) -> None:
    assert state(db) == expected
    assert "dropped" not in expected
    ttl = db.describe_time_to_live(TableName="rooms")["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expiresAt")
    by_user = db.query(TableName="rooms", IndexName="byUser",
                       KeyConditionExpression="#u = :u", ExpressionAttributeNames={"#u": "user"},
                       ExpressionAttributeValues={":u": {"S": "u1"}})
    assert by_user["Count"] == 10
    week = db.get_item(TableName="counters", Key={"id": {"S": "week"}})["Item"]
    assert week["amount"] == {"N": "157"}  # each ADD applied once


def test_a_clean_stop_and_start_keeps_tables_indexes_ttl_and_items(tmp_path):
    with EmbeddedMoto(persist=tmp_path) as server:
        db = client(server)
        make_tables(db)
        write_some(db)
        expected = state(db)
    assert json.loads((tmp_path / "snapshot.json").read_text())["regions"]["eu-west-1"]
    assert (tmp_path / "journal.jsonl").stat().st_size == 0  # compacted at the stop
    with EmbeddedMoto(persist=tmp_path) as server:
        assert server.restored.startswith("2 table(s), 31 item(s) from the snapshot")
        check_restored(client(server), expected)


def killed_after(directory: Path, *writes) -> dict:
    """Start a server, make the writes, kill it (no last snapshot: only the journal stays);
    returns the state it had."""
    server = EmbeddedMoto(persist=directory)
    server.start()
    try:
        db = client(server)
        for write in writes:
            write(db)
        expected = state(db)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
    finally:
        server.stop()
    return expected


def test_a_killed_server_loses_no_answered_write(tmp_path):
    expected = killed_after(tmp_path, make_tables, write_some)
    with EmbeddedMoto(persist=tmp_path) as server:
        assert "journal entries" in server.restored
        check_restored(client(server), expected)


def test_journal_entries_already_in_the_snapshot_are_not_replayed(tmp_path):
    """A crash between writing the snapshot and emptying the journal: the journal's entries are
    in the snapshot too, and their sequence numbers keep them from being applied twice."""
    server = EmbeddedMoto(persist=tmp_path)
    server.start()
    try:
        db = client(server)
        make_tables(db)
        write_some(db)
        expected = state(db)
        shutil.copy(tmp_path / "journal.jsonl", tmp_path / "journal.before")
    finally:
        server.stop()  # writes the snapshot, empties the journal
    os.replace(tmp_path / "journal.before", tmp_path / "journal.jsonl")
    with EmbeddedMoto(persist=tmp_path) as server:
        check_restored(client(server), expected)


def test_a_torn_last_entry_is_dropped_and_said(tmp_path):
    expected = killed_after(tmp_path, make_tables)
    with open(tmp_path / "journal.jsonl", "ab") as journal:
        journal.write(b'{"seq": 99, "region": "eu-west-1", "act')  # died mid-write
    with EmbeddedMoto(persist=tmp_path) as server:
        assert "half-written" in server.restored
        assert state(client(server)) == expected


def test_damaged_state_is_refused_and_left_untouched(tmp_path):
    (tmp_path / "journal.jsonl").write_bytes(b'garbage\n{"seq": 1}\n')
    with pytest.raises(RuntimeError, match="line 1 is damaged; nothing was changed"):
        EmbeddedMoto(persist=tmp_path).start()
    assert (tmp_path / "journal.jsonl").read_bytes() == b'garbage\n{"seq": 1}\n'
    (tmp_path / "journal.jsonl").unlink()
    (tmp_path / "snapshot.json").write_text("{not json")
    with pytest.raises(RuntimeError, match="snapshot.json cannot be read"):
        EmbeddedMoto(persist=tmp_path).start()
    assert (tmp_path / "snapshot.json").read_text() == "{not json"


def test_one_directory_serves_one_server(tmp_path):
    with EmbeddedMoto(persist=tmp_path) as first:
        second = EmbeddedMoto(persist=tmp_path, lock_timeout=0.5)
        with pytest.raises(RuntimeError, match=rf"in use by another apigw-local \(pid "
                                               rf"{first.process.pid}\)"):
            second.start()
        assert second.process is None


def test_reads_are_not_journaled():
    assert not any(map(changes_state, ["GetItem", "BatchGetItem", "Query", "Scan",
                                       "DescribeTable", "ListTables", "TransactGetItems"]))
    assert all(map(changes_state, ["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem",
                                   "TransactWriteItems", "CreateTable", "DeleteTable"]))


def test_the_journal_compacts_itself_past_its_size_limit(tmp_path):
    """Without a server: a Journal fed entries directly, with a tiny size limit."""
    items = {"t": [{"id": {"S": "a"}}]}
    journal = Journal(tmp_path, compact_bytes=300)
    journal.acquire()
    journal.restore(lambda region, action, body: 200)
    create = json.dumps({"TableName": "t", "KeySchema": [], "AttributeDefinitions": []})
    journal.record("us-east-1", "CreateTable", create.encode(), lambda r, t: items[t])
    assert (tmp_path / "journal.jsonl").stat().st_size > 0
    put = json.dumps({"TableName": "t", "Item": {"id": {"S": "x" * 300}}}).encode()
    journal.record("us-east-1", "PutItem", put, lambda r, t: items[t])
    assert (tmp_path / "journal.jsonl").stat().st_size == 0
    snapshot = json.loads((tmp_path / "snapshot.json").read_text())
    assert snapshot["seq"] == 2
    assert snapshot["regions"]["us-east-1"]["t"]["items"] == items["t"]
    assert snapshot["regions"]["us-east-1"]["t"]["definition"][0][0] == "CreateTable"
    journal.close()


def test_the_journal_is_synced_within_its_interval(tmp_path, monkeypatch):
    synced: list[float] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(time.monotonic()) or
                        real_fsync(fd))
    journal = Journal(tmp_path, sync_interval=0.05)
    journal.acquire()
    journal.restore(lambda region, action, body: 200)
    import threading

    thread = threading.Thread(target=journal.sync_forever)
    thread.start()
    body = json.dumps({"TableName": "t", "Item": {}}).encode()
    journal.record("us-east-1", "PutItem", body, lambda r, t: [])
    deadline = time.monotonic() + 5
    while not synced and time.monotonic() < deadline:
        time.sleep(0.01)
    journal.close()
    thread.join(5)
    assert synced, "the journal was never fsync'd"


def test_a_directory_that_cannot_be_made_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PersistError, match="cannot use"):
        Journal(Path(blocker) / "state").acquire()
