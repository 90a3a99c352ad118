"""Fixtures for the app's tests: DynamoDB with the template's tables (moto in-process, or the
endpoint named by APP_TEST_ENDPOINT), the handlers wired to it and a recording Management API
client. Helpers and constants live in app_support.py."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from app_support import (
    ENDPOINT,
    SECRET,
    TABLE_ENV,
    App,
    FakeManagement,
    LambdaContext,
    http_event,
    load_function,
    table_definitions,
    token,
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
        "PRESENCE_WINDOW_MS": "0",  # every join announced at once; coalescing tested apart
    }.items():
        monkeypatch.setenv(name, value)
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(var, raising=False)
    for env in TABLE_ENV.values():
        monkeypatch.setenv(env, "test-" + env.lower())


@pytest.fixture(scope="session")
def endpoint() -> Iterator[str | None]:
    """The DynamoDB the app's tests use, from APP_TEST_ENDPOINT: unset (or `moto`): moto
    in-process; `embedded`: apigw-local's embedded moto server, over HTTP; `localstack`:
    LocalStack, found as localstack-client finds it; a URL: that endpoint (an external
    `moto_server`, DynamoDB Local, ...)."""
    choice = os.environ.get("APP_TEST_ENDPOINT", "").strip()
    if choice in ("", "moto"):
        yield None
    elif choice == "embedded":
        from apigw_local.moto_server import EmbeddedMoto

        with EmbeddedMoto() as server:
            yield server.endpoint_url
    elif choice == "localstack":
        from apigw_local.backend import localstack_endpoint

        yield localstack_endpoint()
    elif choice.startswith(("http://", "https://")):
        yield choice
    else:
        pytest.exit(f"APP_TEST_ENDPOINT={choice!r}: expected moto, embedded, localstack or a "
                    "URL", returncode=4)


@pytest.fixture
def dynamodb(endpoint: str | None, monkeypatch: pytest.MonkeyPatch):
    """DynamoDB with the template's tables, created from their CloudFormation properties (so
    tests and template cannot drift), and the token key in Secrets Manager. On a shared
    endpoint each test has tables and a secret of its own, deleted after it, and the handlers
    reach it through AWS_ENDPOINT_URL as in apigw-local."""
    if endpoint is None:
        with mock_aws():
            put_token_key(boto3.client("secretsmanager"), "auth-token-key", monkeypatch)
            resource = boto3.resource("dynamodb")
            create_tables(resource)
            yield resource
        return
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    suffix = uuid.uuid4().hex[:12]
    names = {env: f"test-{env.lower()}-{suffix}" for env in TABLE_ENV.values()}
    for env, name in names.items():
        monkeypatch.setenv(env, name)
    secrets = boto3.client("secretsmanager", endpoint_url=endpoint)
    put_token_key(secrets, f"auth-token-key-{suffix}", monkeypatch)
    resource = boto3.resource("dynamodb", endpoint_url=endpoint)
    create_tables(resource)
    try:
        yield resource
    finally:
        for name in names.values():
            resource.Table(name).delete()
        secrets.delete_secret(SecretId=os.environ["AUTH_SECRET_ARN"],
                              ForceDeleteWithoutRecovery=True)


def put_token_key(secrets, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The token key in Secrets Manager, named by AUTH_SECRET_ARN as the template names it
    for the functions."""
    secret = secrets.create_secret(Name=name, SecretString=SECRET)
    monkeypatch.setenv("AUTH_SECRET_ARN", secret["ARN"])


def create_tables(resource) -> None:
    for lid, props in table_definitions().items():
        keep = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes",
                "LocalSecondaryIndexes", "BillingMode")
        args = {k: v for k, v in props.items() if k in keep}
        resource.create_table(TableName=os.environ[TABLE_ENV[lid]], **args)
    for env in TABLE_ENV.values():  # LocalStack creates tables asynchronously
        resource.Table(os.environ[env]).wait_until_exists()


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


@pytest.fixture
def serializable_moto(monkeypatch, endpoint):
    """DynamoDB isolates a transaction from other writes and reads of its items, and
    TransactGetItems reads them as one
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-isolation);
    moto applies one without a lock (and rolls a cancelled one back by restoring a copy of
    the table), so threads can interleave inside it. Give moto that isolation, so that races
    test our code rather than moto's threading. On an endpoint, its own isolation is
    tested: a plain moto_server has none, so the race is skipped there."""
    if endpoint is not None:
        if os.environ.get("APP_TEST_ENDPOINT") != "embedded" and is_moto_server(endpoint):
            pytest.skip(f"{endpoint} is a moto_server: it applies transactions without "
                        "DynamoDB's isolation (APP_TEST_ENDPOINT=embedded provides it)")
        return
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    for owner, names in (
        (DynamoDBBackend, ("transact_write_items", "get_item", "update_item", "put_item",
                           "delete_item", "query")),
        (DynamoHandler, ("transact_get_items",)),
    ):
        for name in names:
            original = getattr(owner, name)

            def locked(self, *args, __original=original, **kwargs):
                with lock:
                    return __original(self, *args, **kwargs)

            monkeypatch.setattr(owner, name, locked)


def is_moto_server(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=5):
            return True
    except OSError:
        return False


@pytest.fixture
def admin_api(dynamodb, management):
    """call(method, path, **http_event options) → (status, JSON body), as an admin."""
    module = load_function("verify_tx")

    def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = module.lambda_handler(
            http_event(method, path, token=token("root", "admin"), **kwargs), LambdaContext()
        )
        return response["statusCode"], json.loads(response["body"])

    return call
