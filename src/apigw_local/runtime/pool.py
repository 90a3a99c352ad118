"""The Lambda runtime: warm worker processes per function, bounded, with timeouts.

Behaviour, following the Lambda developer guide ("Lambda execution environment lifecycle",
"Lambda function scaling"):

- one invocation at a time per worker; a free warm worker is reused, the most recently
  used first (LIFO, so idle ones can be reclaimed);
- when every worker of a function is busy a new one is started, up to `max_concurrency`;
  beyond that callers wait, first come first served;
- the handler is imported once per worker (the init phase, before the first request);
- the function's `Timeout` is enforced: the worker is killed and the caller gets
  `Sandbox.Timedout` / "Task timed out after 3.00 seconds";
- a handler exception is an error answer and the worker stays warm; a worker that dies
  (os._exit, a crash, sys.exit) gives `Runtime.ExitError` and is replaced on next use;
- an init error (`Runtime.ImportModuleError`, …) is answered and the worker discarded, so
  the next invocation retries the import (after a fix, it succeeds).

Workers run `python -m apigw_local.runtime.worker` with the interpreter given as `python`
(by default the emulator's own): the functions' requirements must be installed in that
environment, as `sam build` would have put them next to the code. Their `sys.path` is the
code directory, then the layers (`python/` subdirectory first), then the interpreter's own.

Environment of a worker, built from scratch (later entries win):
1. a clean base: PATH, HOME, TMPDIR, LD_LIBRARY_PATH and the AWS credential variables
   (`AWS_ACCESS_KEY_ID`, …, `AWS_PROFILE`, config files) of the emulator's own environment,
   plus LANG=C.UTF-8, TZ=:UTC and PYTHONUNBUFFERED=1;
2. `extra_env` (the gateway's endpoints, CA bundle, credentials, region);
3. the function's `Environment.Variables` (Globals + function, resolved);
4. `env_overrides`, as `sam local --env-vars` applies them: the "Parameters" section for
   every function, then the section named by the function's logical id (or its name);
   ONLY variables the function declares in the template are overridden, others are ignored;
5. Lambda's reserved variables (AWS_LAMBDA_FUNCTION_NAME, AWS_REGION, _HANDLER, …, and
   AWS_SAM_LOCAL=true as `sam local` sets it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..model import Application, Function
from .invocation import FunctionError, Invocation
from .wire import frame, read_frame

__all__ = ["Runtime"]

log = logging.getLogger(__name__)

_PASSTHROUGH = (
    "PATH",
    "HOME",
    "TMPDIR",
    "LD_LIBRARY_PATH",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)
INIT_TIMEOUT = 10.0  # Lambda's init phase limit for on-demand functions
_SRC_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding apigw_local/

LogSink = Callable[[str, str], None]


class _Worker:
    __slots__ = ("proc", "reader", "writer", "log_tasks", "logs", "init_error")

    def __init__(self, proc: asyncio.subprocess.Process, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.proc = proc
        self.reader = reader
        self.writer = writer
        self.log_tasks: list[asyncio.Task[None]] = []
        self.logs: list[str] | None = None  # lines of the running invocation, best effort
        self.init_error: FunctionError | None = None

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self.reader.at_eof()


class _Pool:
    """The workers of one function and the callers waiting for one (FIFO)."""

    def __init__(self, runtime: Runtime, fn: Function, limit: int) -> None:
        self.runtime = runtime
        self.fn = fn
        self.limit = limit
        self.idle: list[_Worker] = []
        self.total = 0  # workers alive or starting, busy or idle
        # A waiter's future gets a worker, or None: "a slot is free, start one".
        self.waiters: deque[asyncio.Future[_Worker | None]] = deque()

    async def acquire(self) -> _Worker:
        while self.idle:
            worker = self.idle.pop()
            if worker.alive:
                return worker
            self.total -= 1  # died while idle
            self.runtime._discard(worker)
        if self.total < self.limit and not self.waiters:
            self.total += 1
            return await self._start()
        future: asyncio.Future[_Worker | None] = asyncio.get_running_loop().create_future()
        self.waiters.append(future)
        try:
            granted = await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(future.result())  # handed over just as we were cancelled
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(future)
            raise
        if granted is None:
            return await self._start()
        return granted

    async def _start(self) -> _Worker:
        """Start a worker into a slot already counted in `total`."""
        try:
            return await self.runtime._spawn(self.fn)
        except BaseException:
            self.release(None)
            raise

    def release(self, worker: _Worker | None) -> None:
        """Give back a worker after an invocation; None (or a dead one) frees its slot."""
        if worker is not None and worker.alive and worker.init_error is None:
            while self.waiters:
                future = self.waiters.popleft()
                if not future.done():
                    future.set_result(worker)
                    return
            self.idle.append(worker)
            return
        if worker is not None:
            self.runtime._discard(worker)
        self.total -= 1
        while self.waiters and self.total < self.limit:
            future = self.waiters.popleft()
            if not future.done():
                self.total += 1
                future.set_result(None)
                return


class Runtime:
    """Runs the application's functions in warm worker processes (see the module doc)."""

    def __init__(
        self,
        app: Application,
        *,
        extra_env: Mapping[str, str] = {},  # noqa: B006 - read-only
        env_overrides: Mapping[str, Mapping[str, str]] = {},  # noqa: B006 - read-only
        max_concurrency: int = 10,
        python: str = sys.executable,
        on_log: LogSink | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.app = app
        self.python = python
        self.on_log = on_log
        self.max_concurrency = max_concurrency
        self._env = {lid: self._build_env(fn, extra_env, env_overrides)
                     for lid, fn in app.functions.items()}
        self._pools = {lid: _Pool(self, fn, max_concurrency)
                       for lid, fn in app.functions.items()}
        self._workers: set[_Worker] = set()
        self._reaping: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- environment --------------------------------------------------------------------------

    def _build_env(self, fn: Function, extra_env: Mapping[str, str],
                   overrides: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASSTHROUGH if k in os.environ}
        env.update(LANG="C.UTF-8", TZ=":UTC", PYTHONUNBUFFERED="1")
        if self.python != sys.executable:  # another interpreter: let it find the worker
            env["PYTHONPATH"] = _SRC_ROOT
        env.update(extra_env)
        env.update(fn.environment)
        for section in ("Parameters", fn.logical_id, fn.name):
            for key, value in (overrides.get(section) or {}).items():
                if key in fn.environment:  # SAM: only declared variables are overridden
                    env[key] = str(value)
        region = self.app.region
        today = time.strftime("%Y/%m/%d", time.gmtime())
        env.update(
            AWS_LAMBDA_FUNCTION_NAME=fn.name,
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(fn.memory_size),
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            AWS_LAMBDA_FUNCTION_TIMEOUT=str(int(fn.timeout)),
            AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{fn.name}",
            AWS_LAMBDA_LOG_STREAM_NAME=f"{today}/[$LATEST]{uuid.uuid4().hex}",
            AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
            AWS_LAMBDA_RUNTIME_API="127.0.0.1:9001",
            AWS_REGION=region,
            AWS_DEFAULT_REGION=region,
            AWS_EXECUTION_ENV=f"AWS_Lambda_{fn.runtime}",
            LAMBDA_TASK_ROOT=str(fn.code_uri),
            LAMBDA_RUNTIME_DIR=str(Path(__file__).parent),
            _HANDLER=fn.handler,
            AWS_SAM_LOCAL="true",
            APIGW_LOCAL_FUNCTION_ARN=(
                f"arn:aws:lambda:{region}:{self.app.account_id}:function:{fn.name}"
            ),
        )
        return env

    def environment(self, function: str) -> dict[str, str]:
        """The environment a worker of `function` (logical id) starts with."""
        return dict(self._env[function])

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, prewarm: bool = False) -> None:
        """With `prewarm`, start one worker per function now (concurrently)."""
        if not prewarm:
            return

        async def warm(pool: _Pool) -> None:
            worker = await pool.acquire()
            pool.release(worker)

        await asyncio.gather(*(warm(p) for p in self._pools.values()))

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Kill every worker and wait for it (no zombies). Safe to call twice."""
        self._closed = True
        for pool in self._pools.values():
            while pool.waiters:
                future = pool.waiters.popleft()
                if not future.done():
                    future.set_exception(RuntimeError("the runtime is closed"))
            pool.idle.clear()
        workers = list(self._workers)
        self._workers.clear()
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()
        for worker in workers:
            await self._reap(worker)
        while self._reaping:
            await asyncio.gather(*self._reaping, return_exceptions=True)

    async def _reap(self, worker: _Worker) -> None:
        worker.writer.close()
        await worker.proc.wait()
        transport = getattr(worker.proc, "_transport", None)
        if transport is not None:
            transport.close()
        for task in worker.log_tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task

    def _discard(self, worker: _Worker) -> None:
        """Forget a worker; kill it and reap it in the background."""
        self._workers.discard(worker)
        if worker.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()
        task = asyncio.get_running_loop().create_task(self._reap(worker))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    async def _spawn(self, fn: Function) -> _Worker:
        if self._closed:
            raise RuntimeError("the runtime is closed")
        parent, child = socket.socketpair()
        try:
            paths = [str(fn.code_uri), *(str(p) for p in fn.layers)]
            proc = await asyncio.create_subprocess_exec(
                self.python, "-m", "apigw_local.runtime.worker",
                str(child.fileno()), str(os.getpid()), json.dumps(paths),
                cwd=str(fn.code_uri),
                env=self._env[fn.logical_id],
                pass_fds=(child.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=1 << 20,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        reader, writer = await asyncio.open_connection(sock=parent, limit=1 << 20)
        worker = _Worker(proc, reader, writer)
        self._workers.add(worker)
        assert proc.stdout is not None and proc.stderr is not None
        worker.log_tasks = [
            asyncio.create_task(self._pump(fn.logical_id, worker, proc.stdout)),
            asyncio.create_task(self._pump(fn.logical_id, worker, proc.stderr)),
        ]
        # The init phase: wait for the worker's "ready" (or its init error).
        try:
            ready = json.loads(await asyncio.wait_for(read_frame(reader), INIT_TIMEOUT))
        except TimeoutError:
            worker.init_error = FunctionError(
                "Sandbox.Timedout", f"Init phase timed out after {INIT_TIMEOUT:.2f} seconds")
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await proc.wait()
            worker.init_error = FunctionError(
                "Runtime.ExitError", f"Runtime exited during init: {_exit_status(code)}")
        else:
            if not ready.get("ready"):
                worker.init_error = _function_error(ready["error"])
        return worker

    async def _pump(self, function: str, worker: _Worker, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the limit: take what is there
                line = await stream.read(1 << 20)
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\n")
            if worker.logs is not None:
                worker.logs.append(text)
            if self.on_log is not None:
                try:
                    self.on_log(function, text)
                except Exception:
                    log.exception("on_log failed")
            else:
                log.info("[%s] %s", function, text)

    # -- invoking -----------------------------------------------------------------------------

    async def invoke(self, function: str, event: dict[str, Any], *,
                     request_id: str | None = None) -> Invocation:
        """Run `function` (logical id) with `event`; never raises for the handler's faults."""
        if self._closed:
            raise RuntimeError("the runtime is closed")
        pool = self._pools.get(function)
        if pool is None:
            raise KeyError(f"no function {function!r} in the application")
        request_id = request_id or str(uuid.uuid4())
        fn = pool.fn
        started = time.perf_counter()
        worker = await pool.acquire()
        if worker.init_error is not None:
            pool.release(worker)
            return Invocation(function, request_id, _ms(started), error=worker.init_error)
        deadline = time.time() + fn.timeout
        body = json.dumps({"id": request_id, "deadline": deadline * 1000, "event": event})
        logs: list[str] = []
        worker.logs = logs
        error: FunctionError | None = None
        payload: Any = None
        try:
            worker.writer.write(frame(body.encode()))
            answer = json.loads(await asyncio.wait_for(read_frame(worker.reader), fn.timeout))
        except TimeoutError:
            worker.proc.kill()
            error = FunctionError("Sandbox.Timedout",
                                  f"Task timed out after {fn.timeout:.2f} seconds")
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await worker.proc.wait()
            error = FunctionError("Runtime.ExitError",
                                  f"RequestId: {request_id} Error: Runtime exited with error: "
                                  f"{_exit_status(code)}")
        except BaseException:  # cancelled mid-invocation: the worker's state is unknown
            worker.proc.kill()
            worker.logs = None
            pool.release(None)
            self._discard(worker)
            raise
        else:
            if "ok" in answer:
                payload = answer["ok"]
            else:
                error = _function_error(answer["error"])
                if answer.get("fatal"):
                    worker.proc.kill()
        worker.logs = None
        if error is not None and error.type in ("Sandbox.Timedout", "Runtime.ExitError"):
            pool.release(None)
            self._discard(worker)
        else:
            pool.release(worker)
        return Invocation(function, request_id, _ms(started), payload=payload, error=error,
                          logs=tuple(logs))


def _function_error(error: Mapping[str, Any]) -> FunctionError:
    return FunctionError(
        type=str(error.get("errorType", "Runtime.Unknown")),
        message=str(error.get("errorMessage", "")),
        trace=tuple(error.get("stackTrace") or ()),
    )


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        import signal

        try:
            return f"signal: {signal.Signals(-code).name}"
        except ValueError:
            return f"signal: {-code}"
    return f"exit status {code}"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
