"""Fixtures for the conformance suite: apigw-local on tests/fixtures/conformance, over real sockets.

Handlers record every event they receive into an event directory; `Recorder` reads them back.
Each behaviour is checked against what API Gateway does (see docs/fidelity.md for the sources).
"""

import asyncio
import json
import time
from pathlib import Path

import boto3
import pytest

from apigw_local.testing import serve

FIXTURE = Path(__file__).parents[1] / "fixtures" / "conformance"


class Recorder:
    """The events the fixture's handlers received, read from their files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def all(self, kind: str, connection_id: str | None = None) -> list[dict]:
        pattern = f"{kind}-{connection_id or '*'}-*.json"
        return [json.loads(p.read_text()) for p in sorted(self.directory.glob(pattern))]

    async def wait(self, kind: str, connection_id: str | None = None,
                   timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.all(kind, connection_id)
            if found:
                return found[-1]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {kind} event for {connection_id} within {timeout}s")


def _start(tmp_path_factory, name, **options):
    events = tmp_path_factory.mktemp(name)
    return events, serve(FIXTURE / "template.yaml",
                         parameter_overrides={"EventDir": str(events)}, **options)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory):
    """apigw-local with AWS's default quotas."""
    events, server = _start(tmp_path_factory, "events")
    with server as endpoints:
        yield endpoints, Recorder(events)


@pytest.fixture(scope="session")
def short_gateway(tmp_path_factory):
    """apigw-local with a 0.6 s idle timeout and a 2 s maximum connection duration."""
    events, server = _start(tmp_path_factory, "short-events", idle_timeout=0.6,
                            max_connection_duration=2.0)
    with server as endpoints:
        yield endpoints, Recorder(events)


@pytest.fixture(scope="session")
def management_client():
    """A factory of boto3 `apigatewaymanagementapi` clients for an endpoint URL."""
    return _management_client


def _management_client(endpoint_url: str):
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint_url,
                        region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")
