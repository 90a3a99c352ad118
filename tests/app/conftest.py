"""Fixtures for the app's tests: DynamoDB with the template's tables (moto in-process, or the
endpoint named by APP_TEST_ENDPOINT), the handlers wired to it and a recording Management API
client. Helpers and constants live in app_support.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest
from app_support import (
    ENDPOINT,
    SECRET,
    TABLE_ENV,
    App,
    FakeManagement,
    table_definitions,
)
from moto import mock_aws
from realtime import fanout


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "test",
        "POWERTOOLS_METRICS_NAMESPACE": "Test",
        "AUTH_SECRET": SECRET,
        "MANAGEMENT_API_ENDPOINT": ENDPOINT,
    }.items():
        monkeypatch.setenv(name, value)
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(var, raising=False)
    for env in TABLE_ENV.values():
        monkeypatch.setenv(env, "test-" + env.lower())


@pytest.fixture
def dynamodb():
    """moto's DynamoDB with the template's tables, created from their CloudFormation
    properties (so tests and template cannot drift)."""
    with mock_aws():
        resource = boto3.resource("dynamodb")
        for lid, props in table_definitions().items():
            args = {
                k: v
                for k, v in props.items()
                if k
                in (
                    "AttributeDefinitions",
                    "KeySchema",
                    "GlobalSecondaryIndexes",
                    "LocalSecondaryIndexes",
                    "BillingMode",
                )
            }
            resource.create_table(TableName=os.environ[TABLE_ENV[lid]], **args)
        yield resource


@pytest.fixture
def store(dynamodb):
    from realtime.store import Store

    return Store.from_env(dynamodb)


@pytest.fixture
def management(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeManagement]:
    fake = FakeManagement()
    endpoints: list[str] = []

    def factory(endpoint: str) -> FakeManagement:
        endpoints.append(endpoint)
        return fake

    monkeypatch.setattr(fanout, "management_client", factory)
    fanout.fanout_for.cache_clear()  # Fanouts cached by earlier tests hold other clients
    fake.endpoints = endpoints  # type: ignore[attr-defined]
    yield fake
    fanout.fanout_for.cache_clear()


@pytest.fixture
def app(dynamodb, management) -> App:
    return App(management)
