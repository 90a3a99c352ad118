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

Cold starts. Workers are forked by a fork server (`zygote.py`) that has imported the heavy,
function-independent modules once (botocore, boto3, ssl, urllib3, pydantic; add more with
`preload=` or APIGW_LOCAL_PRELOAD=mod1,mod2), so a cold worker only imports its own handler.
A function is started with a fresh interpreter instead when its code or layers ship their own
copy of a preloaded package, when its environment sets interpreter start-up variables
(PYTHON*), when the zygote could not start cleanly, or with `fork_server=False`. Forked
workers share the zygote's hash seed (PYTHONHASHSEED), unlike fresh interpreters.

At most `max_initialising` workers (default: the number of CPUs) run their init phase at once,
across all functions; the others queue. Lambda's 10 s init limit (INIT_TIMEOUT) counts from the
moment a worker starts initialising, not from when it was queued, so a burst of cold starts can
be slow but never fails for lack of CPU the way ten parallel imports on two cores did.

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
import inspect
import json
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..model import Application, Function
from . import management
from .invocation import FunctionError, Invocation
from .wire import frame, read_frame
from .zygote import DEFAULT_PRELOAD

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
# The gateway's side of the direct Management API path: (method, path, body) → (status,
# headers, body), the same answer the HTTP `@connections` route gives (see management.py).
ManagementAnswer = tuple[int, Sequence[tuple[str, str]], bytes]
ManagementHandler = Callable[[str, str, bytes], ManagementAnswer | Awaitable[ManagementAnswer]]
PRELOAD_ENV = "APIGW_LOCAL_PRELOAD"


class _ForkedProcess:
    """A worker forked by the zygote: the subset of asyncio's Process the pool uses.

    It is the zygote's child, so the zygote reaps it and reports its exit status; signals go
    through a pidfd, which cannot hit a recycled pid.
    """

    def __init__(self, pid: int, zygote: _Zygote) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._zygote = zygote
        self._exited = asyncio.get_running_loop().create_future()
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except OSError:  # already gone (reaped): its exit report is on its way
            self._pidfd = None

    def kill(self) -> None:
        if self.returncode is None and self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def exited(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
            if not self._exited.done():
                self._exited.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


class _Zygote:
    """The parent's end of the fork server (see zygote.py for the protocol)."""

    def __init__(self, python: str, env: Mapping[str, str], preload: Sequence[str]) -> None:
        self.python, self.env, self.preload = python, dict(env), list(preload)
        self.proc: asyncio.subprocess.Process | None = None
        self.ctl: socket.socket | None = None
        self.modules: frozenset[str] = frozenset()
        self.usable = False
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._spawning: dict[int, asyncio.Future[int]] = {}
        self._children: dict[int, _ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._tokens = 0

    @property
    def alive(self) -> bool:
        return self.ctl is not None and self.proc is not None and self.proc.returncode is None

    async def start(self) -> bool:
        """Start the zygote and wait for its preload; False when it cannot be used."""
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                self.python, "-m", "apigw_local.runtime.zygote",
                str(child.fileno()), str(os.getpid()), json.dumps(self.preload),
                cwd="/", env=self.env, pass_fds=(child.fileno(),),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C is the gateway's to handle
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self.ctl = parent
        self._ready = loop.create_future()
        loop.add_reader(parent.fileno(), self._readable)
        try:
            ready = await asyncio.wait_for(asyncio.shield(self._ready), 60)
        except (TimeoutError, ConnectionError):
            await self.close()
            return False
        if ready.get("threads") != 1:
            log.warning("fork server disabled: %s threads after preloading", ready.get("threads"))
            await self.close()
            return False
        self.modules = frozenset(ready.get("modules") or ())
        self.usable = True
        return True

    def _readable(self) -> None:
        assert self.ctl is not None
        while True:
            try:
                data = self.ctl.recv(1 << 16, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            message = json.loads(data)
            if "exit" in message:
                pid, code = message["exit"], message["code"]
                proc = self._children.pop(pid, None)
                if proc is not None:
                    proc.exited(code)
                else:
                    self._early_exits[pid] = code
            elif "token" in message:
                future = self._spawning.pop(message["token"], None)
                if future is not None and not future.done():
                    if "pid" in message:
                        future.set_result(message["pid"])
                    else:
                        future.set_exception(OSError(message.get("error", "fork failed")))
            elif "ready" in message and self._ready is not None and not self._ready.done():
                self._ready.set_result(message)

    def _lost(self) -> None:
        """The zygote is gone: its children die with it (PR_SET_PDEATHSIG)."""
        if self.ctl is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.ctl.fileno())
            self.ctl.close()
            self.ctl = None
        self.usable = False
        error = ConnectionError("the fork server exited")
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        for future in self._spawning.values():
            if not future.done():
                future.set_exception(error)
        self._spawning.clear()
        for proc in self._children.values():
            proc.kill()
            proc.exited(-signal.SIGKILL)
        self._children.clear()

    async def fork(self, env: Mapping[str, str], cwd: str, argv: list[str],
                   fds: list[int]) -> _ForkedProcess:
        if not self.alive:
            raise ConnectionError("the fork server is not running")
        assert self.ctl is not None
        self._tokens += 1
        token = self._tokens
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._spawning[token] = future
        message = json.dumps({"token": token, "env": dict(env), "cwd": cwd, "argv": argv})
        socket.send_fds(self.ctl, [message.encode()], fds)
        pid = await future
        proc = _ForkedProcess(pid, self)
        if pid in self._early_exits:
            proc.exited(self._early_exits.pop(pid))
        else:
            self._children[pid] = proc
        return proc

    async def close(self) -> None:
        """Stop the zygote: it kills and reaps its remaining children, then exits."""
        ctl, self.ctl = self.ctl, None
        self.usable = False
        if ctl is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(ctl.fileno())
            with contextlib.suppress(OSError):
                ctl.shutdown(socket.SHUT_RDWR)
            ctl.close()
        proc = self.proc
        if proc is None:
            return
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:  # should not happen: kill its whole session
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        for child in self._children.values():
            child.exited(-signal.SIGKILL)
        self._children.clear()


class _ManagementChannel(asyncio.Protocol):
    """The gateway's end of a worker's Management API channel (frames in management.py)."""

    def __init__(self, handler: ManagementHandler) -> None:
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        out: list[bytes] = []
        while len(buffer) >= 4:
            size = int.from_bytes(buffer[:4], "big")
            if len(buffer) < 4 + size:
                break
            payload = bytes(buffer[4:4 + size])
            del buffer[:4 + size]
            request_id, head, body = management.decode(payload)
            try:
                answer = self.handler(*management.parse_request_head(head), body)
            except Exception:
                log.exception("Management API call failed")
                answer = _INTERNAL_ERROR
            if inspect.isawaitable(answer):
                asyncio.ensure_future(self._later(request_id, answer))
            else:
                out.append(_encode_answer(request_id, answer))
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    async def _later(self, request_id: int, answer: Awaitable[ManagementAnswer]) -> None:
        try:
            result = await answer
        except Exception:
            log.exception("Management API call failed")
            result = _INTERNAL_ERROR
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_encode_answer(request_id, result))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


_INTERNAL_ERROR: ManagementAnswer = (
    500, [("Content-Type", "application/json")], b'{"message":"Internal server error"}')


def _encode_answer(request_id: int, answer: ManagementAnswer) -> bytes:
    status, headers, body = answer
    return management.encode(request_id, management.answer_head(status, headers), body)


def _shadows(paths: Sequence[str], modules: frozenset[str]) -> str | None:
    """A preloaded top-level package that one of `paths` also provides, if any."""
    for path in paths:
        try:
            names = os.listdir(path)
        except OSError:
            continue
        for name in names:
            if name.partition(".")[0] in modules:
                return name
    return None


class _Worker:
    __slots__ = ("proc", "reader", "writer", "log_tasks", "logs", "init_error", "channel")

    def __init__(self, proc: asyncio.subprocess.Process | _ForkedProcess,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.proc = proc
        self.reader = reader
        self.writer = writer
        self.channel: asyncio.BaseTransport | None = None  # the Management API channel
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
        management: ManagementHandler | None = None,
        fork_server: bool = True,
        preload: Sequence[str] | None = None,
        max_initialising: int | None = None,
    ) -> None:
        """`management`: answers the workers' Management API calls without HTTP (see
        management.py); None keeps botocore's HTTP path. `preload`: the zygote's modules
        (default: zygote.DEFAULT_PRELOAD plus APIGW_LOCAL_PRELOAD). `max_initialising`: how
        many workers may run their init phase at once (default: the number of CPUs)."""
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.app = app
        self.python = python
        self.on_log = on_log
        self.max_concurrency = max_concurrency
        self.management = management
        self._env = {lid: self._build_env(fn, extra_env, env_overrides)
                     for lid, fn in app.functions.items()}
        self._pools = {lid: _Pool(self, fn, max_concurrency)
                       for lid, fn in app.functions.items()}
        self._workers: set[_Worker] = set()
        self._reaping: set[asyncio.Task[None]] = set()
        self._closed = False
        if preload is None:
            extra = [m.strip() for m in os.environ.get(PRELOAD_ENV, "").split(",") if m.strip()]
            preload = [*DEFAULT_PRELOAD, *extra]
        self._fork_server = fork_server and hasattr(os, "fork") and hasattr(os, "pidfd_open")
        self._zygote_env = self._base_env()
        self._zygote = _Zygote(python, self._zygote_env, preload)
        self._zygote_lock = asyncio.Lock()
        self._forkable: dict[str, bool] = {}
        self._init_slots = asyncio.Semaphore(max_initialising or os.cpu_count() or 2)

    # -- environment --------------------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASSTHROUGH if k in os.environ}
        env.update(LANG="C.UTF-8", TZ=":UTC", PYTHONUNBUFFERED="1")
        if self.python != sys.executable:  # another interpreter: let it find the worker
            env["PYTHONPATH"] = _SRC_ROOT
        return env

    def _build_env(self, fn: Function, extra_env: Mapping[str, str],
                   overrides: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        env = self._base_env()
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
        async with self._zygote_lock:
            await self._zygote.close()

    async def _reap(self, worker: _Worker) -> None:
        worker.writer.close()
        if worker.channel is not None:
            worker.channel.close()
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
        # Throttle: at most `max_initialising` init phases at once. The init timeout starts
        # once the worker runs, so time spent queued here never counts against it.
        async with self._init_slots:
            if self._closed:
                raise RuntimeError("the runtime is closed")
            worker = await self._start_process(fn)
            await self._init_phase(worker)
        return worker

    async def _use_zygote(self, fn: Function, paths: list[str]) -> bool:
        if not self._fork_server:
            return False
        async with self._zygote_lock:
            if not self._zygote.alive:
                if self._closed:
                    return False
                if not await self._zygote.start():
                    self._fork_server = False
                    log.warning("fork server unavailable; workers start fresh interpreters")
                    return False
        forkable = self._forkable.get(fn.logical_id)
        if forkable is None:
            env = self._env[fn.logical_id]
            startup = [k for k in env if k.startswith("PYTHON")
                       and env[k] != self._zygote_env.get(k)]
            shadow = _shadows(paths, self._zygote.modules)
            if startup or shadow:
                log.info("%s: started without the fork server (%s)", fn.logical_id,
                         f"it sets {startup[0]}" if startup else f"its paths provide {shadow}")
            forkable = self._forkable[fn.logical_id] = not (startup or shadow)
        return forkable

    async def _start_process(self, fn: Function) -> _Worker:
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair()
        mgmt_parent = mgmt_child = None
        if self.management is not None:
            mgmt_parent, mgmt_child = socket.socketpair()
        paths = [str(fn.code_uri), *(str(p) for p in fn.layers)]
        argv = [str(child.fileno()), str(os.getpid()), json.dumps(paths)]
        if mgmt_child is not None:
            argv.append(str(mgmt_child.fileno()))
        child_fds = [child.fileno()] + ([mgmt_child.fileno()] if mgmt_child else [])
        pipes: list[int] = []
        try:
            if await self._use_zygote(fn, paths):
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                pipes = [out_r, out_w, err_r, err_w]
                fds = [child.fileno(), out_w, err_w]
                fork_argv = ["fd:0", argv[1], argv[2]]
                if mgmt_child is not None:
                    fds.append(mgmt_child.fileno())
                    fork_argv.append("fd:3")
                proc: Any = await self._zygote.fork(self._env[fn.logical_id], str(fn.code_uri),
                                                    fork_argv, fds)
                os.close(out_w)
                os.close(err_w)
                pipes = [out_r, err_r]
                stdout = await _pipe_reader(loop, out_r)
                pipes = [err_r]
                stderr = await _pipe_reader(loop, err_r)
                pipes = []
            else:
                proc = await asyncio.create_subprocess_exec(
                    self.python, "-m", "apigw_local.runtime.worker", *argv,
                    cwd=str(fn.code_uri),
                    env=self._env[fn.logical_id],
                    pass_fds=child_fds,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    limit=1 << 20,
                )
                assert proc.stdout is not None and proc.stderr is not None
                stdout, stderr = proc.stdout, proc.stderr
        except BaseException:
            parent.close()
            if mgmt_parent is not None:
                mgmt_parent.close()
            for fd in pipes:
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        finally:
            child.close()
            if mgmt_child is not None:
                mgmt_child.close()
        reader, writer = await asyncio.open_connection(sock=parent, limit=1 << 20)
        worker = _Worker(proc, reader, writer)
        if mgmt_parent is not None and self.management is not None:
            handler = self.management
            worker.channel, _ = await loop.create_connection(
                lambda: _ManagementChannel(handler), sock=mgmt_parent)
        self._workers.add(worker)
        worker.log_tasks = [
            asyncio.create_task(self._pump(fn.logical_id, worker, stdout)),
            asyncio.create_task(self._pump(fn.logical_id, worker, stderr)),
        ]
        return worker

    async def _init_phase(self, worker: _Worker) -> None:
        """Wait for the worker's "ready" (or its init error), at most INIT_TIMEOUT."""
        try:
            ready = json.loads(await asyncio.wait_for(read_frame(worker.reader), INIT_TIMEOUT))
        except TimeoutError:
            worker.init_error = FunctionError(
                "Sandbox.Timedout", f"Init phase timed out after {INIT_TIMEOUT:.2f} seconds")
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await worker.proc.wait()
            worker.init_error = FunctionError(
                "Runtime.ExitError", f"Runtime exited during init: {_exit_status(code)}")
        else:
            if not ready.get("ready"):
                worker.init_error = _function_error(ready["error"])

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


async def _pipe_reader(loop: asyncio.AbstractEventLoop, fd: int) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=1 << 20)
    pipe = os.fdopen(fd, "rb", 0)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    except BaseException:
        pipe.close()
        raise
    return reader


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
