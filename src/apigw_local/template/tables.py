"""Tables: `AWS::DynamoDB::Table` and `AWS::Serverless::SimpleTable`, as boto3 CreateTable
arguments (keys, indexes, billing, streams) and their TTL attribute."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..intrinsics import TemplateError
from ..model import Table
from .reader import Resource, Stack, truthy


def read_table(stack: Stack, r: Resource) -> Table:
    name = stack.table_name(r)
    if r.type == "AWS::Serverless::SimpleTable":
        pk = stack.prop(r, "PrimaryKey") or {"Name": "id", "Type": "String"}
        short = {"String": "S", "Number": "N", "Binary": "B"}
        if pk.get("Type", "String") not in short:
            raise TemplateError(f"{r.where('PrimaryKey')}: Type must be String, Number "
                                "or Binary")
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": [{"AttributeName": pk["Name"], "KeyType": "HASH"}],
            "AttributeDefinitions": [
                {"AttributeName": pk["Name"], "AttributeType": short[pk.get("Type",
                                                                            "String")]}
            ],
        }
        throughput = stack.prop(r, "ProvisionedThroughput")
        if throughput:
            kwargs["BillingMode"] = "PROVISIONED"
            kwargs["ProvisionedThroughput"] = _throughput(throughput)
        else:
            kwargs["BillingMode"] = "PAY_PER_REQUEST"
        return Table(logical_id=r.logical_id, name=name, create_table=kwargs)

    for required in ("KeySchema", "AttributeDefinitions"):
        if required not in r.properties:
            raise TemplateError(f"{r.where(required)}: a table needs {required}")
    kwargs = {
        "TableName": name,
        "KeySchema": stack.prop(r, "KeySchema"),
        "AttributeDefinitions": stack.prop(r, "AttributeDefinitions"),
    }
    throughput = stack.prop(r, "ProvisionedThroughput")
    billing = stack.prop(r, "BillingMode") or ("PROVISIONED" if throughput
                                               else "PAY_PER_REQUEST")
    kwargs["BillingMode"] = billing
    if billing == "PROVISIONED":
        kwargs["ProvisionedThroughput"] = _throughput(throughput or {})
    for prop in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = stack.prop(r, prop)
        if indexes:
            kwargs[prop] = [
                _index(ix, billing, prop == "GlobalSecondaryIndexes") for ix in indexes
            ]
    stream = stack.prop(r, "StreamSpecification")
    if stream and stream.get("StreamViewType"):
        kwargs["StreamSpecification"] = {
            "StreamEnabled": True, "StreamViewType": stream["StreamViewType"],
        }
    ttl = stack.prop(r, "TimeToLiveSpecification") or {}
    ttl_attribute = None
    if truthy(ttl.get("Enabled", False)):
        ttl_attribute = ttl.get("AttributeName")
        if not ttl_attribute:
            raise TemplateError(f"{r.where('TimeToLiveSpecification')}: AttributeName "
                                "missing")
    return Table(logical_id=r.logical_id, name=name, create_table=kwargs,
                 ttl_attribute=ttl_attribute)


def _throughput(value: Mapping[str, Any]) -> dict[str, int]:
    return {
        "ReadCapacityUnits": int(value.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(value.get("WriteCapacityUnits", 5)),
    }


def _index(ix: Mapping[str, Any], billing: str, gsi: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "IndexName": ix["IndexName"],
        "KeySchema": ix["KeySchema"],
        "Projection": ix.get("Projection") or {"ProjectionType": "ALL"},
    }
    if gsi and billing == "PROVISIONED":
        out["ProvisionedThroughput"] = _throughput(ix.get("ProvisionedThroughput") or {})
    return out
