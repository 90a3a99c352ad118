"""Where the functions' AWS calls go: every service to the embedded moto server, to an
`AWS_ENDPOINT_URL` of the user's, or to LocalStack with `--localstack`.

LocalStack needs an auth token nowadays, so CI runs the `--localstack` path against a
separately started `moto_server` found where LocalStack is found (`LOCALSTACK_HOST`), through
the same `localstack-client` resolution; a real LocalStack is used when one is reachable and
`LOCALSTACK_AUTH_TOKEN` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from emulator_process import ROOT, EmulatorProcess, environment_without_aws, free_port

pytestmark = pytest.mark.integration

FIXTURE = ROOT / "tests" / "fixtures" / "backend" / "template.yaml"


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@pytest.fixture
def moto_server(tmp_path) -> Iterator[str]:
    """moto's own server, as a user would start it, on a free port."""
    port = free_port()
    with open(tmp_path / "moto_server.log", "wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p",
             str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not answers(f"{url}/moto-api/"):
            assert process.poll() is None, (tmp_path / "moto_server.log").read_text()
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def aws(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def put(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="PUT")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status


def notes_table(endpoint: str) -> str:
    (name,) = [t for t in aws("dynamodb", endpoint).list_tables()["TableNames"] if "Notes" in t]
    return name


def check_every_call_goes_to(backend: str, endpoints: dict[str, str], parameter: str) -> None:
    """The function reads an SSM parameter that only `backend` holds, and its DynamoDB write
    lands in `backend`'s table."""
    aws("ssm", backend).put_parameter(Name=parameter, Value=f"from {backend}", Type="String",
                                      Overwrite=True)
    status, body = get(f"{endpoints['http']}/parameter/{parameter}")
    assert (status, body) == (200, {"value": f"from {backend}"})
    assert put(f"{endpoints['http']}/notes/n1", b"kept here") == 204
    item = aws("dynamodb", backend).get_item(TableName=notes_table(backend),
                                             Key={"id": {"S": "n1"}})["Item"]
    assert item["text"] == {"S": "kept here"}


def test_the_embedded_server_answers_every_service(tmp_path):
    with EmulatorProcess(tmp_path, "-t", str(FIXTURE),
                         env=environment_without_aws(tmp_path)) as emulator:
        endpoints = emulator.start()
        check_every_call_goes_to(endpoints["dynamodb"], endpoints, "greeting")


def test_an_aws_endpoint_url_of_the_users_reaches_the_workers(tmp_path, moto_server):
    """Theirs for every service; DynamoDB stays on the embedded server (the more specific
    AWS_ENDPOINT_URL_DYNAMODB), where the template's tables were made."""
    env = {**environment_without_aws(tmp_path), "AWS_ENDPOINT_URL": moto_server}
    with EmulatorProcess(tmp_path, "-t", str(FIXTURE), env=env) as emulator:
        endpoints = emulator.start()
        assert endpoints["dynamodb"] != moto_server
        aws("ssm", moto_server).put_parameter(Name="mine", Value="mine", Type="String")
        assert get(f"{endpoints['http']}/parameter/mine") == (200, {"value": "mine"})


def test_a_local_dynamodb_endpoint_needs_no_credentials(tmp_path, moto_server):
    """--dynamodb-endpoint on a local server, with no AWS credentials anywhere: the tables
    are made there and the function writes there (local dummy credentials)."""
    with EmulatorProcess(tmp_path, "-t", str(FIXTURE), "--dynamodb-endpoint", moto_server,
                         env=environment_without_aws(tmp_path)) as emulator:
        endpoints = emulator.start()
        assert endpoints["dynamodb"] == moto_server
        assert put(f"{endpoints['http']}/notes/n2", b"local") == 204
        item = aws("dynamodb", moto_server).get_item(TableName=notes_table(moto_server),
                                                     Key={"id": {"S": "n2"}})["Item"]
        assert item["text"] == {"S": "local"}


def test_localstack_backend_against_a_stand_in(tmp_path, moto_server):
    """`--localstack` with LocalStack's own variable pointing at a moto_server: the tables
    are created there and every call of the function goes there."""
    host = moto_server.removeprefix("http://")
    env = {**environment_without_aws(tmp_path), "LOCALSTACK_HOST": host}
    with EmulatorProcess(tmp_path, "-t", str(FIXTURE), "--localstack", env=env) as emulator:
        endpoints = emulator.start()
        assert endpoints["dynamodb"] == moto_server
        check_every_call_goes_to(moto_server, endpoints, "greeting")


def test_localstack_backend_honours_edge_port(tmp_path, moto_server):
    """LocalStack's older EDGE_PORT variable (on localhost) is honoured too."""
    port = moto_server.rsplit(":", 1)[1]
    env = {**environment_without_aws(tmp_path), "EDGE_PORT": port}
    with EmulatorProcess(tmp_path, "-t", str(FIXTURE), "--localstack", env=env) as emulator:
        endpoints = emulator.start()
        assert endpoints["dynamodb"] == f"http://localhost:{port}"
        assert notes_table(moto_server)


def test_an_unreachable_localstack_is_one_clear_line(tmp_path):
    env = {**environment_without_aws(tmp_path), "LOCALSTACK_HOST": f"127.0.0.1:{free_port()}"}
    answer = EmulatorProcess(tmp_path, "-t", str(FIXTURE), "--localstack",
                             env=env).run_to_exit()
    assert answer.returncode == 1
    assert "Traceback" not in answer.stderr
    last = answer.stderr.strip().splitlines()[-1]
    assert last.startswith("error: http://127.0.0.1:"), answer.stderr


def test_a_real_localstack(tmp_path):
    """The same path against LocalStack itself, when there is one to use."""
    if not os.environ.get("LOCALSTACK_AUTH_TOKEN"):
        pytest.skip("LOCALSTACK_AUTH_TOKEN is not set (LocalStack needs an auth token)")
    from apigw_local.backend import localstack_endpoint

    edge = localstack_endpoint()
    if not answers(f"{edge}/_localstack/health"):
        pytest.skip(f"no LocalStack answers at {edge}")
    env = {**os.environ}
    with EmulatorProcess(tmp_path, "-t", str(FIXTURE), "--localstack", env=env) as emulator:
        endpoints = emulator.start()
        check_every_call_goes_to(edge, endpoints, f"apigw-local-test-{time.time_ns()}")


@pytest.mark.timeout(900)  # a whole pytest run of the app's handlers in a subprocess
@pytest.mark.parametrize("target", ["moto_server", "embedded"])
def test_the_apps_own_suite_runs_against_an_endpoint(tmp_path, moto_server, target):
    """tests/app on an external moto_server or apigw-local's embedded server, chosen by
    APP_TEST_ENDPOINT alone (one of its modules, to keep CI short)."""
    env = {**os.environ, "APP_TEST_ENDPOINT": moto_server if target == "moto_server"
           else target}
    answer = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         "tests/app/test_verify_tx.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert answer.returncode == 0, answer.stdout[-3000:]
    served = (tmp_path / "moto_server.log").read_text().count('"POST / HTTP/1.1" 200')
    if target == "moto_server":
        assert served > 50, "the suite did not use the moto_server"
        assert "is a moto_server: it applies transactions without" in answer.stdout
    else:
        assert served == 0
        assert " skipped" not in answer.stdout  # the race runs: the embedded server isolates
