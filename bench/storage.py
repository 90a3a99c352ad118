"""What a DynamoDB endpoint stores, in DynamoDB's own measure: the yardstick for its memory.

Item sizes follow "DynamoDB item sizes and formats" (Amazon DynamoDB Developer Guide,
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):
attribute names and values in UTF-8 bytes, numbers one byte per two significant digits plus
one, binary its raw bytes, null and Boolean one byte, lists and maps 3 bytes plus one per
element; each item also takes 100 bytes of storage overhead for indexing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3

__all__ = ["Stored", "attribute_size", "item_size", "stored"]

ITEM_OVERHEAD = 100  # bytes per item, for indexing (the page above, storage billing)


@dataclass(frozen=True)
class Stored:
    items: int
    bytes: int

    def __sub__(self, other: Stored) -> Stored:
        return Stored(self.items - other.items, self.bytes - other.bytes)


def _number_size(text: str) -> int:
    digits = text.lstrip("-").split("e")[0].split("E")[0].replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def attribute_size(value: dict[str, Any]) -> int:
    """The size of one attribute value in DynamoDB JSON (`{"S": "…"}`), name not included."""
    (kind, data), = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(_number_size(n) for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_size(v) for k, v in data.items())
    raise ValueError(f"unknown attribute type {kind!r}")


def item_size(item: dict[str, dict[str, Any]]) -> int:
    """An item's stored size, the indexing overhead included."""
    return ITEM_OVERHEAD + sum(len(name.encode()) + attribute_size(value)
                               for name, value in item.items())


def stored(endpoint_url: str, region: str = "us-east-1") -> Stored:
    """Every table's items at `endpoint_url` (a Scan of each): how many, and their size."""
    client = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=region,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    items = size = 0
    for page in client.get_paginator("list_tables").paginate():
        for table in page["TableNames"]:
            for scanned in client.get_paginator("scan").paginate(TableName=table):
                items += len(scanned["Items"])
                size += sum(item_size(item) for item in scanned["Items"])
    return Stored(items, size)
