"""LocalStack's own tools against apigw-local's `--edge-port`: a `localstack_client` session and
`awslocal` (both from PyPI) reach DynamoDB and post to a live WebSocket connection unmodified."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jwt
import pytest
from emulator_process import ROOT, EmulatorProcess, environment_without_aws, free_port

from apigw_local.testing import connect

pytestmark = pytest.mark.integration

SECRET = "edge-secret-" + "x" * 32


def token(user: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user, "role": "user", "iat": now, "exp": now + 600}, SECRET,
                      algorithm="HS256")


def test_localstack_client_and_awslocal_work_against_the_edge(tmp_path, monkeypatch):
    edge_port = free_port()
    tools_env = {**environment_without_aws(tmp_path), "LOCALSTACK_HOST": f"127.0.0.1:{edge_port}",
                 "AWS_DEFAULT_REGION": "us-east-1", "DISABLE_DEPRECATION_NOTICE": "1",
                 "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("AWS_ENDPOINT_URL", "EDGE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCALSTACK_HOST", f"127.0.0.1:{edge_port}")
    args = ["-t", str(ROOT / "template.yaml"), "-t", str(ROOT / "local" / "template.yaml"),
            "--parameter-overrides", f"AuthSecret={SECRET}", "--edge-port", str(edge_port)]
    with EmulatorProcess(tmp_path, *args, env=environment_without_aws(tmp_path)) as emulator:
        endpoints = emulator.start()
        assert endpoints["edge"] == f"http://127.0.0.1:{edge_port}"
        with urllib.request.urlopen(f"{endpoints['edge']}/_localstack/health") as answer:
            services = json.loads(answer.read())["services"]
        assert services["dynamodb"] == services["apigatewaymanagementapi"] == "running"

        from localstack_client.session import Session

        session = Session(region_name="us-east-1")

        def awslocal(*argv: str) -> str:
            done = subprocess.run([str(Path(sys.executable).parent / "awslocal"), *argv],
                                  env=tools_env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            return done.stdout

        async def scenario() -> None:
            async with connect(endpoints["websocket"], query={"token": token("alice")}) as ws:
                (table,) = [t for t in session.client("dynamodb").list_tables()["TableNames"]
                            if "Connections" in t]
                scanned = json.loads(await asyncio.to_thread(
                    awslocal, "dynamodb", "scan", "--table-name", table))
                (connection_id,) = [i["connectionId"]["S"] for i in scanned["Items"]]

                session.client("apigatewaymanagementapi").post_to_connection(
                    ConnectionId=connection_id, Data=b"from localstack_client")
                assert await ws.receive(timeout=10) == "from localstack_client"
                await asyncio.to_thread(
                    awslocal, "apigatewaymanagementapi", "post-to-connection",
                    "--connection-id", connection_id, "--data", "from awslocal")
                assert await ws.receive(timeout=10) == "from awslocal"

        asyncio.run(scenario())
