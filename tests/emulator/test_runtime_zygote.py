"""Cold starts through the fork server: isolation, fallbacks, throttling, clean-up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import textwrap
from pathlib import Path

import pytest

from apigw_local.runtime import Runtime
from apigw_local.runtime import process as process_module
from apigw_local.template import load_application

HANDLER = '''
import os, random, sys, time
time.sleep(float(os.environ.get("INIT_SLEEP", "0")))
LOADED_AT_INIT = "boto3" in sys.modules


def handler(event, context):
    if "daemon" in event:  # a process the handler leaves behind, holding our stdout
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 start_new_session=event["daemon"] == "own group")
        return {"pid": os.getpid(), "daemon": child.pid}
    time.sleep(event.get("seconds", 0))
    return {"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(),
            "path0": sys.path[0], "random": random.random(), "tz": time.tzname[0],
            "only_here": os.environ.get("ONLY_HERE"), "zygote_only": os.environ.get("ZYG"),
            "preloaded": LOADED_AT_INIT}
'''


def _app(tmp_path, *, shadow=False, init_sleep=0.0, functions=("A",)):
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text(HANDLER)
    if shadow:  # the function ships its own copy of a preloaded package
        (code / "six.py").write_text("")
    resources = "".join(textwrap.dedent(f"""
      {name}:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: code
          Handler: app.handler
          Runtime: python3.13
          Timeout: 5
          Environment:
            Variables: {{ONLY_HERE: "{name}", INIT_SLEEP: "{init_sleep}"}}
    """) for name in functions)
    (tmp_path / "template.yaml").write_text("Transform: AWS::Serverless-2016-10-31\n"
                                            "Resources:" + textwrap.indent(resources, "  "))
    return load_application([tmp_path / "template.yaml"])


def _running_in(directory) -> list[int]:
    """The processes whose working directory is `directory` (a function's workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd") == str(directory):
                    found.append(int(entry))
            except OSError:
                pass
    return found


def _dead(pid: int) -> bool:
    """Gone, or a zombie its new parent (not us) has yet to reap."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.split()[1:2] == ["Z"] for line in status if line.startswith("State"))
    except OSError:
        return True


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_forked_worker_has_its_function_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ZYG", "leaked")  # in the gateway's env: must not reach the worker
    runtime = Runtime(_app(tmp_path))
    try:
        inv = await runtime.invoke("A", {})
        assert inv.ok, inv.error
        out = inv.payload
        assert out["ppid"] == runtime._zygote.proc.pid  # forked, not a fresh interpreter
        assert out["only_here"] == "A" and out["zygote_only"] is None
        assert out["cwd"] == str(tmp_path / "code") and out["path0"] == str(tmp_path / "code")
        assert out["tz"] == "UTC"
        assert out["preloaded"] is True
    finally:
        await runtime.aclose()


async def test_random_is_reseeded_in_every_worker(tmp_path):
    runtime = Runtime(_app(tmp_path, functions=("A", "B")))
    try:
        a, b = await asyncio.gather(runtime.invoke("A", {}), runtime.invoke("B", {}))
        assert a.payload["pid"] != b.payload["pid"]
        assert a.payload["random"] != b.payload["random"]
    finally:
        await runtime.aclose()


async def test_a_function_shipping_a_preloaded_package_starts_fresh(tmp_path):
    runtime = Runtime(_app(tmp_path, shadow=True))
    try:
        inv = await runtime.invoke("A", {})
        assert inv.ok, inv.error
        assert inv.payload["ppid"] == os.getpid()
        assert inv.payload["preloaded"] is False
    finally:
        await runtime.aclose()


async def test_without_the_fork_server_workers_start_fresh(tmp_path):
    runtime = Runtime(_app(tmp_path), fork_server=False)
    try:
        inv = await runtime.invoke("A", {})
        assert inv.payload["ppid"] == os.getpid()
        assert runtime._zygote.proc is None
    finally:
        await runtime.aclose()


async def test_queued_cold_starts_do_not_count_against_the_init_timeout(tmp_path, monkeypatch):
    # Eight cold starts, one initialising at a time, 0.3 s each: 2.4 s in all, more than the
    # (lowered) 2 s init limit, yet each worker's own init is well within it. The invocations
    # outlast the queue, so no worker is free for another caller before all eight started.
    monkeypatch.setattr(process_module, "INIT_TIMEOUT", 2.0)
    runtime = Runtime(_app(tmp_path, init_sleep=0.3), max_initialising=1, max_concurrency=8)
    try:
        results = await asyncio.gather(
            *(runtime.invoke("A", {"seconds": 4}) for _ in range(8)))
        assert [r.error for r in results] == [None] * 8
        assert len({r.payload["pid"] for r in results}) == 8
    finally:
        await runtime.aclose()


async def test_aclose_leaves_no_process(tmp_path):
    runtime = Runtime(_app(tmp_path, functions=("A", "B")))
    results = await asyncio.gather(*(runtime.invoke(f, {}) for f in ("A", "B", "A", "B")))
    pids = {r.payload["pid"] for r in results} | {runtime._zygote.proc.pid}
    await runtime.aclose()
    assert all(_gone(pid) for pid in pids)


async def test_a_killed_fork_server_is_replaced(tmp_path):
    runtime = Runtime(_app(tmp_path, functions=("A", "B")))
    try:
        first = await runtime.invoke("A", {})
        zygote_pid = runtime._zygote.proc.pid
        os.kill(zygote_pid, signal.SIGKILL)
        await runtime._zygote.proc.wait()
        # Its workers die with it (PR_SET_PDEATHSIG): the next call gets a new worker.
        again = await runtime.invoke("A", {})
        assert again.ok, again.error
        assert again.payload["pid"] != first.payload["pid"]
        assert again.payload["ppid"] == runtime._zygote.proc.pid != zygote_pid
    finally:
        await runtime.aclose()


@pytest.mark.parametrize("preload", [["no_such_module_anywhere"]])
async def test_a_missing_preload_module_is_skipped(tmp_path, preload):
    runtime = Runtime(_app(tmp_path), preload=preload)
    try:
        inv = await runtime.invoke("A", {})
        assert inv.ok and inv.payload["ppid"] == runtime._zygote.proc.pid
    finally:
        await runtime.aclose()


async def test_a_waiting_caller_takes_the_first_free_worker(tmp_path):
    # B arrives while the only worker runs A: a worker starts for B, but A's worker is free
    # long before that one's 1 s init ends, so B runs there, and the new one waits idle.
    runtime = Runtime(_app(tmp_path, init_sleep=1.0), max_concurrency=4)
    try:
        await runtime.invoke("A", {})
        a = asyncio.create_task(runtime.invoke("A", {"seconds": 0.2}))
        await asyncio.sleep(0.05)
        b = await runtime.invoke("A", {})
        assert b.payload["pid"] == (await a).payload["pid"]
        assert runtime.worker_count("A") == 2
    finally:
        await runtime.aclose()


async def test_aclose_kills_what_the_handlers_started(tmp_path):
    runtime = Runtime(_app(tmp_path))
    try:
        inv = await runtime.invoke("A", {"daemon": "same group"})
    finally:
        await asyncio.wait_for(runtime.aclose(), 30)
    await asyncio.sleep(0.1)
    assert _gone(inv.payload["pid"]) and _dead(inv.payload["daemon"])


@pytest.mark.parametrize("fork_server", [True, False])
async def test_aclose_ends_though_a_process_left_behind_holds_the_worker_output(
        tmp_path, fork_server):
    # A daemon in its own session survives the worker and keeps its stdout open for 60 s:
    # the reap stops waiting for that output instead of waiting for the daemon.
    runtime = Runtime(_app(tmp_path), fork_server=fork_server)
    inv = None
    try:
        inv = await runtime.invoke("A", {"daemon": "own group"})
        assert inv.ok, inv.error
        await asyncio.wait_for(runtime.aclose(), 30)
        assert _gone(inv.payload["pid"])
    finally:
        if inv is not None and inv.ok:
            with contextlib.suppress(ProcessLookupError):
                os.kill(inv.payload["daemon"], signal.SIGKILL)
        await runtime.aclose()


async def test_aclose_while_workers_start_leaves_no_process(tmp_path):
    runtime = Runtime(_app(tmp_path, init_sleep=1.0), max_initialising=2)
    calls = [asyncio.create_task(runtime.invoke("A", {"seconds": 1})) for _ in range(4)]
    await asyncio.sleep(0.5)  # two forked and initialising, two queued
    assert runtime.worker_count("A") == 4
    await asyncio.wait_for(runtime.aclose(), 30)
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, RuntimeError | ConnectionError) for r in results), results
    await asyncio.sleep(0.1)
    assert _running_in(tmp_path / "code") == []


DATA_PATH_HANDLER = """
import boto3

def handler(event, context):
    client = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:9")
    resource = boto3.resource("dynamodb", endpoint_url="http://127.0.0.1:9")
    return {"custom": hasattr(client, "zygote_probe"), "table": resource.Table("t").name}
"""


async def test_workers_share_parsed_botocore_data_unless_their_data_path_differs(tmp_path):
    # The zygote parsed DynamoDB's model once; a function whose AWS_DATA_PATH holds its own
    # model (here with one more operation) must still get its own, not the shared one.
    import gzip
    import json

    import botocore

    source = Path(botocore.__file__).parent / "data" / "dynamodb" / "2012-08-10"
    model = json.loads(gzip.decompress((source / "service-2.json.gz").read_bytes()))
    model["operations"]["ZygoteProbe"] = {**model["operations"]["DescribeLimits"],
                                          "name": "ZygoteProbe"}
    custom = tmp_path / "models" / "dynamodb" / "2012-08-10"
    custom.mkdir(parents=True)
    (custom / "service-2.json").write_text(json.dumps(model))
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(DATA_PATH_HANDLER)
    (tmp_path / "template.yaml").write_text(textwrap.dedent(f"""
        Transform: AWS::Serverless-2016-10-31
        Globals:
          Function: {{CodeUri: code, Handler: app.handler, Runtime: python3.13, Timeout: 5}}
        Resources:
          Plain:
            Type: AWS::Serverless::Function
          Custom:
            Type: AWS::Serverless::Function
            Properties:
              Environment: {{Variables: {{AWS_DATA_PATH: "{tmp_path / 'models'}"}}}}
    """))
    runtime = Runtime(load_application([tmp_path / "template.yaml"]),
                      extra_env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
    try:
        plain, own = await asyncio.gather(runtime.invoke("Plain", {}),
                                          runtime.invoke("Custom", {}))
        assert plain.ok and own.ok, (plain.error, own.error)
        assert plain.payload == {"custom": False, "table": "t"}
        assert own.payload == {"custom": True, "table": "t"}
        assert runtime._zygote.proc is not None  # both forked
    finally:
        await runtime.aclose()
