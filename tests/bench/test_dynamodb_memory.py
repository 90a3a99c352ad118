"""The embedded DynamoDB's memory follows what it stores, not how often it is read.

A real embedded server (moto's server in its child process), boto3 over HTTP, RSS from /proc.
Every Query answers deep copies of the items; moto used to keep each copy for ever (its
`instances_tracked`), so reads alone grew the server by about their answers' size.
No timing is asserted: the figures are bytes, compared as ratios.
"""

from __future__ import annotations

import json
import os
import urllib.request

import boto3
import pytest

from apigw_local.moto_server import LOCAL_CREDENTIALS, EmbeddedMoto
from bench.storage import item_size

pytestmark = pytest.mark.integration

ITEMS = 2000
SETTLE = 3  # Query passes after the writes: the allocator reaches its working size
READS = 10  # Query passes measured


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def item(n: int) -> dict:
    return {"room": {"S": f"room{n % 4}"}, "id": {"S": f"{n:08d}"},
            "text": {"S": f"message {n} " + "x" * 200}, "seq": {"N": str(n)}}


def read_everything(client) -> int:
    count = 0
    for room in range(4):
        for page in client.get_paginator("query").paginate(
                TableName="messages", KeyConditionExpression="room = :r",
                ExpressionAttributeValues={":r": {"S": f"room{room}"}}):
            count += len(page["Items"])
    return count


def put(client, items: list[dict]) -> None:
    for start in range(0, len(items), 25):
        client.batch_write_item(RequestItems={"messages": [
            {"PutRequest": {"Item": i}} for i in items[start:start + 25]]})


@pytest.mark.timeout(300)
def test_reads_keep_no_memory_and_writes_cost_in_proportion_to_what_is_stored():
    with EmbeddedMoto() as moto:
        pid = moto.process.pid
        client = boto3.client("dynamodb", endpoint_url=moto.endpoint_url,
                              region_name="us-east-1", **LOCAL_CREDENTIALS)
        client.create_table(
            TableName="messages", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "room", "KeyType": "HASH"},
                       {"AttributeName": "id", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "room", "AttributeType": "S"},
                                  {"AttributeName": "id", "AttributeType": "S"}])
        # Warm: the first request of each kind loads code and fills caches once.
        put(client, [item(-n) for n in range(1, 51)])
        read_everything(client)

        items = [item(n) for n in range(ITEMS)]
        stored = sum(item_size(i) for i in items)
        before = rss(pid)
        put(client, items)
        assert read_everything(client) == ITEMS + 50
        for _ in range(SETTLE - 1):
            read_everything(client)
        written = rss(pid)
        for _ in range(READS):
            read_everything(client)
        read = rss(pid)

        # moto's dashboard still lists the items it holds (weakly tracked), and only those.
        with urllib.request.urlopen(moto.endpoint_url + "/moto-api/data.json") as answer:
            listed = json.load(answer)["dynamodb"]["Item"]
    # The reads answered READS times the stored items; they keep next to nothing (moto used to
    # keep every copy: about 27 times the stored bytes here).
    assert (read - written) / stored < 1, (before, written, read, stored)
    # Writes: moto's objects cost a constant multiple of DynamoDB's own measure of the data.
    assert (written - before) / stored < 15, (before, written, read, stored)
    assert len(listed) == ITEMS + 50


def test_item_size_follows_dynamodbs_rules():
    # names + values; a number is 1 byte per 2 significant digits + 1; lists and maps 3 bytes
    # plus 1 per element; 100 bytes per item for indexing.
    assert item_size({"id": {"S": "abc"}}) == 100 + 2 + 3
    assert item_size({"n": {"N": "0123.40"}, "b": {"BOOL": True}, "z": {"NULL": True}}) == \
        100 + (1 + 3) + (1 + 1) + (1 + 1)
    assert item_size({"l": {"L": [{"S": "x"}, {"N": "1"}]}, "m": {"M": {"k": {"S": "v"}}},
                      "s": {"SS": ["é", "ab"]}, "bin": {"B": b"\x00\x01"}}) == \
        100 + (1 + 3 + (1 + 1) + (1 + 2)) + (1 + 3 + (1 + 1 + 1)) + (1 + 2 + 2) + (3 + 2)
