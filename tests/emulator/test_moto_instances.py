"""moto's instance registry held weakly: it lists what the backends hold, and nothing else."""

from __future__ import annotations

import gc

import boto3
import pytest
from moto import mock_aws
from moto.core.common_models import BaseModel
from moto.core.model_instances import reset_model_data

from apigw_local.moto_instances import WeakInstances, track_weakly


@pytest.fixture
def weakly():
    original = BaseModel.__dict__["__new__"]
    track_weakly()
    track_weakly()  # twice changes nothing
    try:
        yield
    finally:
        BaseModel.__new__ = original  # type: ignore[method-assign]


def test_answered_copies_are_freed_and_stored_items_stay_listed(weakly):
    from moto.dynamodb.models.dynamo_type import Item

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
        for n in range(30):
            client.put_item(TableName="t", Item={"k": {"S": str(n)}})
        for _ in range(20):  # 20 × 30 deep copies answered
            assert len(client.scan(TableName="t")["Items"]) == 30
            client.get_item(TableName="t", Key={"k": {"S": "3"}})
        gc.collect()
        assert isinstance(Item.instances_tracked, WeakInstances)
        assert sorted(i.hash_key.value for i in Item.instances_tracked) == sorted(
            str(n) for n in range(30))
        assert len(Item.instances_tracked) == 30

        reset_model_data()  # moto's reset puts a plain list back; the next object replaces it
        client.put_item(TableName="t", Item={"k": {"S": "new"}})
        gc.collect()
        assert isinstance(Item.instances_tracked, WeakInstances)
        assert [i.hash_key.value for i in Item.instances_tracked] == ["new"]


def test_objects_without_weak_references_are_skipped():
    class Slotted:
        __slots__ = ("x",)

    tracked = WeakInstances()
    tracked.append(Slotted())
    assert list(tracked) == [] and len(tracked) == 0
