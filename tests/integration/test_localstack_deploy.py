"""`make deploy-localstack`, and the app end to end on the stack it deploys.

The refusal path runs everywhere (nothing beyond 127.0.0.1). The tests marked `localstack` need
a running LocalStack with LOCALSTACK_AUTH_TOKEN set and the stack deployed (its WebSocket API
needs a LocalStack plan with API Gateway v2); without them they skip, saying which is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError
from emulator_process import ROOT, environment_without_aws, free_port

from apigw_local.testing import connect

pytestmark = pytest.mark.integration

STACK = os.environ.get("LOCALSTACK_STACK", "realtime-app-local")


def deploy(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in environment_without_aws(tmp_path).items()
                   if not k.startswith(("LOCALSTACK_", "EDGE_PORT"))}
    return subprocess.run([sys.executable, "-m", "scripts.localstack_deploy", *args],
                          cwd=ROOT, env={**environment, **env}, capture_output=True, text=True,
                          timeout=60)


def one_error_line(answer: subprocess.CompletedProcess) -> str:
    assert answer.returncode == 2, answer
    assert "Traceback" not in answer.stderr
    (line,) = answer.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def test_without_an_auth_token_it_says_so_in_one_line(tmp_path):
    edge = f"127.0.0.1:{free_port()}"
    line = one_error_line(deploy(tmp_path, LOCALSTACK_HOST=edge))
    assert "LOCALSTACK_AUTH_TOKEN is not set" in line
    assert "API Gateway v2" in line


def test_without_a_running_localstack_it_says_where_it_looked(tmp_path):
    port = free_port()
    line = one_error_line(deploy(tmp_path, LOCALSTACK_HOST=f"127.0.0.1:{port}",
                                 LOCALSTACK_AUTH_TOKEN="any"))
    assert f"no LocalStack answers at http://127.0.0.1:{port}" in line


def test_the_make_target_stops_before_building(tmp_path):
    port = free_port()
    env = {**environment_without_aws(tmp_path), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
           "LOCALSTACK_AUTH_TOKEN": "any", "PATH": os.environ["PATH"]}
    answer = subprocess.run(["make", "--no-print-directory", "-s", "deploy-localstack"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert answer.returncode != 0
    assert f"error: no LocalStack answers at http://127.0.0.1:{port}" in answer.stderr
    assert "samlocal" not in answer.stdout + answer.stderr


class Health(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps({"services": {"apigateway": "running"}}).encode()
        self.send_response(200 if self.path == "/_localstack/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_localstack_that_answers_and_a_token_pass_the_check(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        edge = f"http://127.0.0.1:{server.server_port}"
        answer = deploy(tmp_path, "--check", AWS_ENDPOINT_URL=edge, LOCALSTACK_AUTH_TOKEN="t")
    finally:
        server.shutdown()
        server.server_close()
    assert (answer.returncode, answer.stdout.strip()) == (0, f"LocalStack answers at {edge}")


def test_the_auth_secret_goes_to_a_private_samconfig(tmp_path):
    sys.path.insert(0, str(ROOT))
    from scripts.localstack_deploy import write_samconfig

    secret = 'q"uo\\te-' + "s" * 32
    path = write_samconfig("stack-x", secret, tmp_path / "private" / "samconfig.toml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    deploy_options = tomllib.loads(path.read_text())["default"]["deploy"]["parameters"]
    assert deploy_options["parameter_overrides"] == f"AuthSecret={secret}"
    assert deploy_options["stack_name"] == "stack-x"


# --- the app on a real LocalStack ----------------------------------------------------------


def aws(service: str, edge: str):
    return boto3.client(service, endpoint_url=edge, region_name="us-east-1",
                        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
                        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))


def reachable_edge() -> str:
    if not os.environ.get("LOCALSTACK_AUTH_TOKEN"):
        pytest.skip("LOCALSTACK_AUTH_TOKEN is not set (LocalStack needs an auth token, and the "
                    "WebSocket API a plan with API Gateway v2)")
    from apigw_local.backend import localstack_endpoint

    edge = localstack_endpoint()
    try:
        urllib.request.urlopen(f"{edge}/_localstack/health", timeout=3).close()
    except OSError:
        pytest.skip(f"no LocalStack answers at {edge}")
    return edge


def api_url(apigw, output_url: str) -> str:
    """Where LocalStack serves the API an output names: its ApiEndpoint (LocalStack's own
    host and port, not AWS's), plus the output's stage path."""
    parts = urlsplit(output_url)
    endpoint = apigw.get_api(ApiId=parts.hostname.split(".")[0])["ApiEndpoint"]
    return endpoint.rstrip("/") + parts.path.rstrip("/")


@pytest.fixture(scope="module")
def stack():
    edge = reachable_edge()
    try:
        found = aws("cloudformation", edge).describe_stacks(StackName=STACK)["Stacks"][0]
    except ClientError:
        pytest.skip(f"stack {STACK} is not deployed in LocalStack: make deploy-localstack")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    apigw = aws("apigatewayv2", edge)
    env = {**os.environ, "AWS_ENDPOINT_URL": edge, "AWS_DEFAULT_REGION": "us-east-1"}
    env.setdefault("AWS_ACCESS_KEY_ID", "test")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "test")

    def token(user: str, role: str = "user") -> str:
        return subprocess.run(
            [sys.executable, "-m", "scripts.token", "--stack", STACK, "--region", "us-east-1",
             "--user", user, "--role", role], cwd=ROOT, env=env, check=True,
            capture_output=True, text=True, timeout=60).stdout.strip()

    return {"websocket": api_url(apigw, outputs["WebSocketUrl"]),
            "http": api_url(apigw, outputs["HttpApiUrl"]), "token": token}


def of_type(kind):
    return lambda frame: frame.get("type") == kind


def http(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, method=method, data=json.dumps(body).encode() if body is not None else b"",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.mark.localstack
async def test_a_room_on_localstack_carries_a_message(stack):
    room = f"ls{time.time_ns()}"
    alice, bob = stack["token"]("alice"), stack["token"]("bob")
    async with connect(stack["websocket"], query={"token": alice}) as a, \
            connect(stack["websocket"], query={"token": bob}) as b:
        for ws in (a, b):
            await ws.send_json({"action": "join", "room": room})
            await ws.receive_until(of_type("presence"), timeout=30)
        await a.send_json({"action": "send", "room": room, "text": "over localstack"})
        got = await b.receive_until(of_type("message"), timeout=30)
        assert (got["text"], got["sender"]) == ("over localstack", "alice")


@pytest.mark.localstack
async def test_a_verified_transaction_on_localstack_reaches_the_dashboard(stack):
    admin = stack["token"]("admin", "admin")
    status, body = await asyncio.to_thread(
        http, "POST", f"{stack['http']}/transactions", admin,
        {"amount": 1234, "description": "localstack"})
    assert status == 201, body
    tx = body["transaction"]
    async with connect(stack["websocket"], query={"token": admin}) as dash:
        await dash.send_json({"action": "subscribe", "channel": "admin_dashboard"})
        await dash.receive_until(of_type("income"), timeout=30)
        status, body = await asyncio.to_thread(
            http, "POST", f"{stack['http']}/transactions/{tx['id']}/verify", admin)
        assert status == 200, body
        update = await dash.receive_until(
            lambda f: f.get("type") == "income" and f.get("updated"), timeout=30)
        assert update["updated"]["transactionId"] == tx["id"]
