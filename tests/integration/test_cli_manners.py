"""The command line's manners: defaults, the endpoints it reports, runs without AWS credentials,
one-line errors, --version; and that any selection of test directories runs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import boto3
import jwt
import pytest
from emulator_process import ROOT, EmulatorProcess, environment_without_aws, free_port

from apigw_local import __version__
from apigw_local.testing import connect

pytestmark = pytest.mark.integration

SECRET = "cli-secret-" + "x" * 32
TABLE_ONLY = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Notes:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: notes
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
"""


def test_version():
    answer = subprocess.run([sys.executable, "-m", "apigw_local.cli", "--version"],
                            capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == f"apigw-local, version {__version__}"


def test_template_defaults_to_template_yaml_and_the_dynamodb_port_can_be_fixed(tmp_path):
    missing = EmulatorProcess(tmp_path).run_to_exit()
    assert missing.returncode == 2
    assert "'template.yaml' does not exist" in missing.stderr

    (tmp_path / "template.yaml").write_text(TABLE_ONLY)
    port = free_port()
    env = environment_without_aws(tmp_path)
    with EmulatorProcess(tmp_path, "--dynamodb-port", str(port), env=env) as emulator:
        endpoints = emulator.start()
        assert endpoints["dynamodb"] == f"http://127.0.0.1:{port}"
        assert f"DynamoDB        http://127.0.0.1:{port}" in emulator.log()
        db = boto3.client("dynamodb", endpoint_url=endpoints["dynamodb"],
                          region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
        assert db.list_tables()["TableNames"] == ["notes"]


def test_the_app_runs_with_no_aws_credentials_anywhere(tmp_path):
    """No AWS_* variables and an empty HOME: the handlers still reach DynamoDB and sign their
    @connections posts (with local dummy credentials)."""
    args = ["-t", str(ROOT / "template.yaml"), "-t", str(ROOT / "local" / "template.yaml"),
            "--parameter-overrides", f"AuthSecret={SECRET}"]
    with EmulatorProcess(tmp_path, *args, env=environment_without_aws(tmp_path)) as emulator:
        endpoints = emulator.start()
        now = int(time.time())
        token = jwt.encode({"sub": "alice", "role": "user", "iat": now, "exp": now + 600},
                           SECRET, algorithm="HS256")

        async def scenario() -> dict:
            async with connect(endpoints["websocket"], query={"token": token}) as ws:
                await ws.send_json({"action": "join", "room": "general"})
                await ws.receive_until(lambda f: f.get("type") == "presence", timeout=20)
                await ws.send_json({"action": "send", "room": "general", "text": "hi"})
                return await ws.receive_until(lambda f: f.get("type") in ("message", "error"),
                                              timeout=20)

        frame = asyncio.run(scenario())
        assert (frame["type"], frame.get("text")) == ("message", "hi"), frame


def test_an_aws_endpoint_without_credentials_is_one_clear_line(tmp_path):
    (tmp_path / "template.yaml").write_text(TABLE_ONLY)
    answer = EmulatorProcess(
        tmp_path, "--dynamodb-endpoint", "https://dynamodb.us-east-1.amazonaws.com",
        env=environment_without_aws(tmp_path)).run_to_exit()
    assert answer.returncode == 1
    assert "Traceback" not in answer.stderr
    (line,) = answer.stderr.strip().splitlines()
    assert line.startswith("error: https://dynamodb.us-east-1.amazonaws.com is AWS and no AWS "
                           "credentials were found")


def test_test_directories_can_be_selected_together():
    """Each test directory has a conftest; their helpers have names of their own."""
    answer = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/app", "tests/conformance", "tests/emulator", "tests/integration"],
        cwd=ROOT, capture_output=True, text=True)
    assert answer.returncode == 0, answer.stdout[-2000:] + answer.stderr[-2000:]
    assert "tests/app/" in answer.stdout and "tests/conformance/" in answer.stdout
