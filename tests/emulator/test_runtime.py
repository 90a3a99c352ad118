"""The Lambda runtime: real worker processes, real handlers from tests/fixtures/functions."""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from pathlib import Path

import pytest

from apigw_local.runtime import Runtime
from apigw_local.template import load_application

FIXTURES = Path(__file__).parent.parent / "fixtures"
TEMPLATE = FIXTURES / "templates" / "runtime.yaml"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False  # alive, or a zombie nobody reaped: both are failures


@pytest.fixture
def app():
    return load_application([TEMPLATE])


@pytest.fixture
async def runtime(app):
    lines: list[tuple[str, str]] = []
    rt = Runtime(app, on_log=lambda fn, line: lines.append((fn, line)),
                 extra_env={"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:1"},
                 env_overrides={"Parameters": {"TABLE": "overridden", "UNDECLARED": "x"},
                                "Env": {"GREETING": "hi"}})
    rt.lines = lines
    yield rt
    await rt.aclose()


async def test_echo_returns_the_event(runtime):
    inv = await runtime.invoke("Echo", {"a": [1, 2.5, "x", None, True]}, request_id="req-1")
    assert inv.ok
    assert inv.payload == {"a": [1, 2.5, "x", None, True]}
    assert inv.request_id == "req-1"
    assert inv.function == "Echo"
    assert inv.duration_ms > 0


async def test_warm_worker_is_reused(runtime):
    first = await runtime.invoke("Pid", {})
    second = await runtime.invoke("Pid", {})
    assert first.payload == second.payload


async def test_handler_exception_is_an_error_and_the_worker_stays_warm(runtime):
    before = (await runtime.invoke("Pid", {})).payload  # noqa: F841 - other function
    inv = await runtime.invoke("Boom", {"n": 7})
    assert not inv.ok
    assert inv.error.type == "ValueError"
    assert inv.error.message == "boom: 7"
    assert any("app.py" in frame and "boom" in frame for frame in inv.error.trace)
    again = await runtime.invoke("Boom", {"n": 8})
    assert again.error.message == "boom: 8"
    # Still one worker for Boom: the exception did not cost a process.
    assert runtime._pools["Boom"].total == 1
    # Lambda logs the error the way its Python runtime does, in the invocation's lines (or,
    # when the pipe is slower than the answer, on on_log).
    await asyncio.sleep(0.05)
    assert any(line.startswith("[ERROR] ValueError: boom: 7")
               for line in [*inv.logs, *(line for fn, line in runtime.lines if fn == "Boom")])


async def test_timeout_kills_the_worker_and_the_next_call_gets_a_new_one(runtime):
    started = time.perf_counter()
    inv = await runtime.invoke("Sleep", {"seconds": 30})
    elapsed = time.perf_counter() - started
    assert inv.error.type == "Sandbox.Timedout"
    assert inv.error.message == "Task timed out after 1.00 seconds"
    assert 0.9 < elapsed < 3
    ok = await runtime.invoke("Sleep", {"seconds": 0.01})
    assert ok.ok and ok.payload == {"slept": 0.01}
    assert runtime._pools["Sleep"].total == 1


async def test_exit_is_an_exit_error_and_the_next_call_succeeds(runtime):
    inv = await runtime.invoke("Exit", {"code": 3})
    assert inv.error.type == "Runtime.ExitError"
    assert "exit status 3" in inv.error.message
    assert runtime._pools["Exit"].total == 0
    echo = await runtime.invoke("Echo", {"still": "fine"})
    assert echo.payload == {"still": "fine"}
    again = await runtime.invoke("Exit", {"code": 4})
    assert "exit status 4" in again.error.message


async def test_unserialisable_result_is_a_marshal_error(runtime):
    inv = await runtime.invoke("Unserialisable", {})
    assert inv.error.type == "Runtime.MarshalError"
    assert (await runtime.invoke("Unserialisable", {})).error.type == "Runtime.MarshalError"
    assert runtime._pools["Unserialisable"].total == 1


async def test_missing_handler_and_import_error(runtime):
    missing = await runtime.invoke("Missing", {})
    assert missing.error.type == "Runtime.HandlerNotFound"
    broken = await runtime.invoke("Broken", {})
    assert broken.error.type == "Runtime.ImportModuleError"
    assert "this_module_does_not_exist" in broken.error.message


async def test_import_error_is_retried_after_a_fix(tmp_path):
    code = tmp_path / "fn"
    code.mkdir()
    (code / "app.py").write_text("import not_there\n")
    (tmp_path / "template.yaml").write_text(textwrap.dedent("""
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: fn, Handler: app.handler, Runtime: python3.12}
    """))
    async with Runtime(load_application([tmp_path / "template.yaml"])) as rt:
        assert (await rt.invoke("Fn", {})).error.type == "Runtime.ImportModuleError"
        (code / "app.py").write_text("def handler(event, context):\n    return 'fixed'\n")
        assert (await rt.invoke("Fn", {})).payload == "fixed"


async def test_context_fields(runtime):
    inv = await runtime.invoke("Info", {}, request_id="abc-123")
    info = inv.payload
    assert info["aws_request_id"] == "abc-123"
    assert info["function_name"] == "info-fn"
    assert info["function_version"] == "$LATEST"
    assert info["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:info-fn"
    assert info["memory_limit_in_mb"] == "512"
    assert info["log_group_name"] == "/aws/lambda/info-fn"
    assert "[$LATEST]" in info["log_stream_name"]
    assert info["identity"] is None and info["client_context"] is None
    assert 2500 < info["remaining_ms"] <= 3000
    assert info["layer"] == "shared-layer"
    code = str((FIXTURES / "functions" / "echo").resolve())
    layer = str((FIXTURES / "functions" / "layer").resolve())
    assert info["sys_path"][:3] == [code, layer + "/python", layer]


async def test_environment(runtime):
    env = (await runtime.invoke("Env", {})).payload
    assert env["GREETING"] == "hi"  # function section of the overrides
    assert env["TABLE"] == "overridden"  # "Parameters" section applies to every function
    assert "UNDECLARED" not in env  # SAM overrides only declared variables
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "Env"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13"
    assert env["_HANDLER"] == "app.env"
    assert env["AWS_SAM_LOCAL"] == "true"
    assert env["LAMBDA_TASK_ROOT"] == str((FIXTURES / "functions" / "echo").resolve())
    assert env["TZ"] == ":UTC"
    assert env["_X_AMZN_REQUEST_ID"]
    # Nothing leaks from the emulator's own environment beyond the documented pass-through.
    assert "PYTEST_CURRENT_TEST" not in env


async def test_handler_output_goes_to_the_invocation_or_on_log(runtime):
    """Lines printed during an invocation are its log lines (Lambda's START…END block); one
    that arrives after the answer, or outside any invocation, goes to on_log."""
    inv = await runtime.invoke("Chatty", {})
    assert inv.payload == "ok"
    wanted = {"hello from the handler", "to stderr"}
    for _ in range(50):
        seen = {*inv.logs, *(line for fn, line in runtime.lines if fn == "Chatty")}
        if wanted <= seen:
            break
        await asyncio.sleep(0.02)
    assert wanted <= seen


async def test_concurrency_is_bounded_and_callers_wait_in_order(app):
    async with Runtime(app, max_concurrency=2) as rt:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(rt.invoke("SlowPid", {"seconds": 0.3}) for _ in range(6))
        )
        elapsed = time.perf_counter() - started
        pids = {r.payload for r in results}
        assert all(r.ok for r in results)
        assert len(pids) == 2
        assert elapsed >= 0.85  # three rounds of 0.3 s on two workers
        assert rt._pools["SlowPid"].total == 2


async def test_concurrent_calls_get_separate_workers(app):
    async with Runtime(app, max_concurrency=4) as rt:
        results = await asyncio.gather(
            *(rt.invoke("SlowPid", {"seconds": 0.3}) for _ in range(4))
        )
        assert len({r.payload for r in results}) == 4


async def test_cancelled_invocation_frees_its_slot(app):
    async with Runtime(app, max_concurrency=1) as rt:
        task = asyncio.create_task(rt.invoke("SlowPid", {"seconds": 5}))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        inv = await asyncio.wait_for(rt.invoke("SlowPid", {"seconds": 0}), 5)
        assert inv.ok


async def test_prewarm_and_aclose_leave_no_process(app):
    rt = Runtime(app)
    await rt.start(prewarm=True)
    pids = [w.proc.pid for w in rt._workers]
    # One warm worker per function, except the two whose init fails (they are discarded).
    assert len(pids) == len(app.functions) - 2
    await rt.invoke("Echo", {})
    await rt.aclose()
    await rt.aclose()  # idempotent
    for pid in pids:
        assert _gone(pid), pid
    with pytest.raises(RuntimeError):
        await rt.invoke("Echo", {})


async def test_unknown_function_is_a_key_error(runtime):
    with pytest.raises(KeyError):
        await runtime.invoke("Nope", {})



async def test_idle_workers_are_reclaimed_after_the_idle_timeout(app):
    async with Runtime(app, max_concurrency=3, idle_timeout=0.5) as rt:
        results = await asyncio.gather(
            *(rt.invoke("SlowPid", {"seconds": 0.2}) for _ in range(3)))
        pids = {r.payload for r in results}
        assert len(pids) == 3 and rt.worker_count("SlowPid") == 3
        deadline = time.monotonic() + 10
        while rt.worker_count("SlowPid") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert rt.worker_count("SlowPid") == 0
        await asyncio.sleep(0.2)  # reaped in the background
        assert all(_gone(pid) for pid in pids)
        again = await rt.invoke("SlowPid", {"seconds": 0})
        assert again.ok and again.payload not in pids  # a cold start, as after Lambda's


async def test_busy_workers_are_not_reclaimed(app):
    async with Runtime(app, idle_timeout=0.3) as rt:
        inv = await rt.invoke("SlowPid", {"seconds": 1.0})
        assert inv.ok and rt.worker_count("SlowPid") == 1


async def test_recycle_replaces_the_workers_of_a_function(app):
    async with Runtime(app, max_concurrency=2) as rt:
        before = (await rt.invoke("Pid", {})).payload
        busy = asyncio.create_task(rt.invoke("SlowPid", {"seconds": 0.5}))
        await asyncio.sleep(0.2)
        rt.recycle("Pid")
        rt.recycle("SlowPid")
        slow_pid = (await busy).payload  # the busy one finishes its invocation...
        assert (await rt.invoke("Pid", {})).payload != before
        assert (await rt.invoke("SlowPid", {"seconds": 0})).payload != slow_pid  # ...then goes


@pytest.mark.parametrize(("cpus", "workers"), [(1, 2), (2, 4), (64, 10)])
def test_default_concurrency_follows_the_cpus(app, monkeypatch, cpus, workers):
    monkeypatch.setattr(os, "process_cpu_count", lambda: cpus, raising=False)
    assert Runtime(app).max_concurrency == workers
    assert Runtime(app, max_concurrency=12).max_concurrency == 12
