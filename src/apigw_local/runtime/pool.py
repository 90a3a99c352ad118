"""The Lambda runtime: warm worker processes per function, bounded, with timeouts.

Behaviour, following the Lambda developer guide ("Lambda execution environment lifecycle",
"Lambda function scaling"):

- one invocation at a time per worker; a free warm worker is reused, the most recently
  used first (LIFO, so idle ones can be reclaimed);
- when every worker of a function is busy a new one is started, up to `max_concurrency`;
  callers wait in line, first come first served, each served by the first worker free (see
  FunctionPool);
- the handler is imported once per worker (the init phase, before the first request);
- the function's `Timeout` is enforced: the worker is killed and the caller gets
  `Sandbox.Timedout` / "Task timed out after 3.00 seconds";
- a handler exception is an error answer and the worker stays warm; a worker that dies
  (os._exit, a crash, sys.exit) gives `Runtime.ExitError` and is replaced on next use;
- an init error (`Runtime.ImportModuleError`, …) is answered and the worker discarded, so
  the next invocation retries the import (after a fix, it succeeds).

Cold starts. Workers are forked by a fork server (`zygote.py`) that has imported the heavy,
function-independent modules once (botocore, boto3, ssl, urllib3, pydantic; add more with
`preload=` or APIGW_LOCAL_PRELOAD=mod1,mod2) and parsed botocore's data for the services the
emulator serves, so a cold worker only imports its own handler. `start()` starts the zygote, so
no invocation waits for its preload.
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
environment, as `sam build` would have put them next to the code.

Idle workers are stopped after `idle_timeout` seconds (LIFO reuse keeps the busy ones warm),
as Lambda reclaims idle execution environments.

The parts: `forkserver.py` (the fork server's gateway end), `environment.py` (what a worker
starts with), `process.py` (one worker process), this module (the pools).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..gateway.invocation import Invocation
from ..logs import peak_rss_mb
from ..model import Application, Function
from .environment import base_env, code_paths, function_env, shadows, startup_variables
from .forkserver import ForkServer
from .process import LogSink, WorkerProcess
from .zygote import DEFAULT_PRELOAD

__all__ = ["Runtime"]

log = logging.getLogger(__name__)

# The gateway's side of the workers' channel: (method, path, body) → (status, headers, body),
# the answer the HTTP `@connections` route gives (see channel.py).
ManagementAnswer = tuple[int, Sequence[tuple[str, str]], bytes]
ManagementHandler = Callable[[str, str, bytes], ManagementAnswer]
PRELOAD_ENV = "APIGW_LOCAL_PRELOAD"


def default_max_concurrency() -> int:
    """Workers per function unless told: twice the CPUs this process may use, at most 10.

    Lambda runs one invocation per execution environment and scales up to the account's
    concurrency; locally every worker is a process of ~70 MB, and beyond twice the CPUs more
    workers of one function add memory and contention, not throughput, as long as what the
    handlers wait for is local (DynamoDB, the Management API). Handlers that wait on slow remote
    calls want more: `max_concurrency` (`--max-concurrency`)."""
    cpus = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    return min(10, 2 * cpus)


class FunctionPool:
    """The workers of one function and the callers waiting for one (FIFO).

    Scaling up: a caller that finds no idle worker waits in line, and a new worker is started
    only while more callers wait than workers are already starting (up to `limit`). Whichever
    worker is free first serves the head of the line: a warm one just given back, or a new
    one whose init phase has ended. So one caller never waits out a cold start that a warm
    worker would have spared it, and a short burst against a busy warm worker does not start
    a worker per caller, each held by its caller through its cold start while the warm one
    idles: that cascade started a function's whole `limit` of workers for a load one or two
    could carry. Truly concurrent invocations still each get their own worker, as in Lambda.
    """

    def __init__(self, runtime: Runtime, fn: Function, limit: int) -> None:
        self.runtime = runtime
        self.fn = fn
        self.limit = limit
        self.idle: list[WorkerProcess] = []
        self.total = 0  # workers alive or starting, busy or idle
        self.starting = 0  # of which still starting (forked, in their init phase)
        self.generation = 0  # bumped by Runtime.recycle: older workers are not reused
        self.waiters: deque[asyncio.Future[WorkerProcess]] = deque()

    async def acquire(self) -> WorkerProcess:
        while self.idle:
            worker = self.idle.pop()
            if worker.alive:
                return worker
            self.total -= 1  # died while idle
            self.runtime._discard(worker)
        future: asyncio.Future[WorkerProcess] = asyncio.get_running_loop().create_future()
        self.waiters.append(future)
        self._scale()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release(future.result())  # handed over just as we were cancelled
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(future)
            raise

    def _scale(self) -> None:
        """Start workers while more callers wait than are already starting."""
        while (len(self.waiters) > self.starting and self.total < self.limit
               and not self.runtime._closed):
            self.total += 1
            self.starting += 1
            self.runtime._track(self._start())

    async def _start(self) -> None:
        """Start a worker into a slot already counted in `total` and `starting`; it serves the
        head of the line (its init error included), or waits idle."""
        generation = self.generation
        try:
            worker = await self.runtime._spawn(self.fn)
        except asyncio.CancelledError:  # the runtime is closing
            self.starting -= 1
            self.total -= 1
            raise
        except Exception as exc:
            self.starting -= 1
            self.total -= 1
            self._hand(exc)  # the caller it was started for learns why
            self._scale()
            return
        self.starting -= 1
        worker.generation = generation
        if worker.init_error is not None:  # answered once to a caller, then discarded
            if not self._hand(worker):
                self.release(None)
                self.runtime._discard(worker)
            return
        self.release(worker)

    def _hand(self, result: WorkerProcess | BaseException) -> bool:
        """Give a worker (or a start's failure) to the first caller still waiting."""
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
                return True
        return False

    def reclaim(self, idle_before: float) -> None:
        """Stop the workers idle since before `idle_before` (monotonic time)."""
        keep = [w for w in self.idle if w.idle_since >= idle_before]
        for worker in self.idle:
            if worker.idle_since < idle_before:
                self.runtime._discard(worker)
                self.total -= 1
        self.idle = keep

    def release(self, worker: WorkerProcess | None) -> None:
        """Give back a worker after an invocation; None (or a dead one) frees its slot."""
        if (worker is not None and worker.alive and worker.init_error is None
                and worker.generation == self.generation):
            if not self._hand(worker):
                worker.idle_since = time.monotonic()
                self.idle.append(worker)
            return
        if worker is not None:
            self.runtime._discard(worker)
        self.total -= 1
        self._scale()


class Runtime:
    """Runs the application's functions in warm worker processes (see the module doc)."""

    def __init__(
        self,
        app: Application,
        *,
        extra_env: Mapping[str, str] = {},  # noqa: B006 - read-only
        env_overrides: Mapping[str, Mapping[str, str]] = {},  # noqa: B006 - read-only
        max_concurrency: int | None = None,
        python: str = sys.executable,
        on_log: LogSink | None = None,  # lines printed outside an invocation's record
        management: ManagementHandler | None = None,
        fork_server: bool = True,
        preload: Sequence[str] | None = None,
        max_initialising: int | None = None,
        idle_timeout: float = 300.0,
    ) -> None:
        """`management`: answers the workers' Management API calls without HTTP (see
        channel.py); None keeps botocore's HTTP path. `preload`: the zygote's modules
        (default: zygote.DEFAULT_PRELOAD plus APIGW_LOCAL_PRELOAD). `max_initialising`: how
        many workers may run their init phase at once (default: the number of CPUs).
        `idle_timeout`: seconds an idle worker is kept before it is stopped, as Lambda reclaims
        idle execution environments. `max_concurrency`: workers per function (default:
        `default_max_concurrency()`)."""
        if max_concurrency is None:
            max_concurrency = default_max_concurrency()
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.app = app
        self.python = python
        self.on_log = on_log
        self.max_concurrency = max_concurrency
        self.management = management
        self.idle_timeout = idle_timeout
        self._reclaimer: asyncio.Task[None] | None = None
        self._extra_env, self._env_overrides = dict(extra_env), env_overrides
        self._env = {lid: function_env(app, fn, python, extra_env, env_overrides)
                     for lid, fn in app.functions.items()}
        self._pools = {lid: FunctionPool(self, fn, max_concurrency)
                       for lid, fn in app.functions.items()}
        self._workers: set[WorkerProcess] = set()
        self._reaping: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # workers starting, the fork server's start
        self._closed = False
        if preload is None:
            extra = [m.strip() for m in os.environ.get(PRELOAD_ENV, "").split(",") if m.strip()]
            preload = [*DEFAULT_PRELOAD, *extra]
        self._fork_server = fork_server and hasattr(os, "fork") and hasattr(os, "pidfd_open")
        self._zygote_env = base_env(python)
        self._zygote = ForkServer(python, self._zygote_env, preload)
        self._zygote_lock = asyncio.Lock()
        self._forkable: dict[str, bool] = {}
        self._init_slots = asyncio.Semaphore(max_initialising or os.cpu_count() or 2)

    # -- environment ---------------------------------------------------------------------------

    def environment(self, function: str) -> dict[str, str]:
        """The environment a worker of `function` (logical id) starts with."""
        return dict(self._env[function])

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, prewarm: bool = False) -> None:
        """Start the fork server, so that no cold start waits for its preload (about half a
        second of CPU); with `prewarm`, also one worker per function (concurrently)."""
        await self._zygote_usable()
        if not prewarm:
            return

        async def warm(pool: FunctionPool) -> None:
            worker = await pool.acquire()
            pool.release(worker)

        await asyncio.gather(*(warm(p) for p in self._pools.values()))

    async def _reclaim(self) -> None:
        period = min(max(self.idle_timeout / 4, 0.05), 30.0)
        while not self._closed:
            await asyncio.sleep(period)
            idle_before = time.monotonic() - self.idle_timeout
            for pool in self._pools.values():
                pool.reclaim(idle_before)

    def recycle(self, function: str) -> None:
        """Seam for hot reload: no worker of `function` (logical id) started before this call
        runs another invocation. Idle ones stop now, busy ones when their invocation ends; the
        next invocation starts a fresh worker (which imports the handler again)."""
        pool = self._pools[function]
        pool.generation += 1
        pool.reclaim(float("inf"))

    def replace_application(self, app: Application) -> None:
        """Seam for hot reload of a template: run `app`'s functions from now on. A function
        whose definition or environment changed is recycled; a new one gets a pool; a removed
        one's workers stop (its invocations in flight finish)."""
        env = {lid: function_env(app, fn, self.python, self._extra_env, self._env_overrides)
               for lid, fn in app.functions.items()}
        for lid in list(self._pools):
            if lid not in app.functions:
                self.recycle(lid)
                del self._pools[lid]
        for lid, fn in app.functions.items():
            pool = self._pools.get(lid)
            if pool is None:
                self._pools[lid] = FunctionPool(self, fn, self.max_concurrency)
            elif pool.fn != fn or _differs(self._env.get(lid, {}), env[lid]):
                pool.fn = fn
                self._forkable.pop(lid, None)
                self.recycle(lid)
            else:
                env[lid] = self._env[lid]
        self._env = env
        self.app = app

    def worker_count(self, function: str) -> int:
        """Workers of `function` alive or starting, busy or idle."""
        return self._pools[function].total

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Kill every worker and wait for it (no zombies). Safe to call twice.

        Bounded: workers still starting are cancelled (and killed), every worker is killed
        with its process group, and a reap waits for a worker's log pipes only briefly
        (process.LOG_GRACE), since a descendant that left the group may hold them for ever.
        """
        self._closed = True
        if self._reclaimer is not None:
            self._reclaimer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reclaimer
            self._reclaimer = None
        for pool in self._pools.values():
            while pool.waiters:
                future = pool.waiters.popleft()
                if not future.done():
                    future.set_exception(RuntimeError("the runtime is closed"))
            pool.idle.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        workers = list(self._workers)
        self._workers.clear()
        for worker in workers:
            self._discard(worker)
        # Invocations that were running discard their (killed) workers as they end: each
        # round waits for reaps that are bounded, and no new worker can start.
        while self._reaping:
            await asyncio.wait(set(self._reaping))
        async with self._zygote_lock:
            await self._zygote.close()

    def _discard(self, worker: WorkerProcess) -> None:
        """Forget a worker; kill it and reap it in the background."""
        self._workers.discard(worker)
        worker.kill()
        task = asyncio.get_running_loop().create_task(worker.reap())
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    def _track(self, coro: Any) -> None:
        """Run `coro` as a task that `aclose` cancels (a worker starting, the fork server)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self, fn: Function) -> WorkerProcess:
        if self._closed:
            raise RuntimeError("the runtime is closed")
        # Throttle: at most `max_initialising` init phases at once. The init timeout starts
        # once the worker runs, so time spent queued here never counts against it.
        if self._reclaimer is None:  # idle workers are reclaimed once there are workers
            self._reclaimer = asyncio.get_running_loop().create_task(self._reclaim())
        async with self._init_slots:
            if self._closed:
                raise RuntimeError("the runtime is closed")
            paths = code_paths(fn)
            fork_server = self._zygote if await self._use_zygote(fn, paths) else None
            worker = await WorkerProcess.start(
                fn, self._env[fn.logical_id], python=self.python, fork_server=fork_server,
                management=self.management, on_line=self._log_line)
            self._workers.add(worker)
            try:
                await worker.init_phase()
            except BaseException:  # cancelled by aclose: the worker goes too
                self._discard(worker)
                raise
        return worker

    async def _zygote_usable(self) -> bool:
        """Whether workers can be forked; starts the fork server if it is not running."""
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
        return True

    async def _use_zygote(self, fn: Function, paths: list[str]) -> bool:
        if not await self._zygote_usable():
            return False
        forkable = self._forkable.get(fn.logical_id)
        if forkable is None:
            startup = startup_variables(self._env[fn.logical_id], self._zygote_env)
            shadow = shadows(paths, self._zygote.modules)
            if startup or shadow:
                log.info("%s: started without the fork server (%s)", fn.logical_id,
                         f"it sets {startup[0]}" if startup else f"its paths provide {shadow}")
            forkable = self._forkable[fn.logical_id] = not (startup or shadow)
        return forkable

    def _log_line(self, function: str, text: str) -> None:
        if self.on_log is not None:
            self.on_log(function, text)
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
        started = time.perf_counter()
        worker = await pool.acquire()
        if worker.init_error is not None:
            pool.release(worker)
            return Invocation(function, request_id, _ms(started), error=worker.init_error)
        try:
            payload, error, logs = await worker.call(request_id, event)
        except BaseException:  # cancelled mid-invocation: the worker's state is unknown
            pool.release(None)
            self._discard(worker)
            raise
        # Lambda's REPORT: Init Duration on the worker's first invocation; its peak memory.
        init_ms, worker.init_ms = worker.init_ms, None
        memory = peak_rss_mb(worker.proc.pid)
        if error is not None and error.type in ("Sandbox.Timedout", "Runtime.ExitError"):
            pool.release(None)
            self._discard(worker)
        else:
            pool.release(worker)
        return Invocation(function, request_id, _ms(started), payload=payload, error=error,
                          logs=logs, init_duration_ms=init_ms, max_memory_mb=memory)


def _differs(old: Mapping[str, str], new: Mapping[str, str]) -> bool:
    """Whether two worker environments differ beyond the log stream's name (new each time)."""
    ignore = "AWS_LAMBDA_LOG_STREAM_NAME"
    return ({k: v for k, v in old.items() if k != ignore}
            != {k: v for k, v in new.items() if k != ignore})


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
