"""One worker process, seen from the gateway: started (forked by the fork server, or a fresh
interpreter), its init phase awaited, its output forwarded line by line, one request at a time
exchanged over its socket (`wire.py`), and reaped.

Lambda's rules kept here ("Lambda execution environment lifecycle"): the init phase (the
handler's import) has 10 s (INIT_TIMEOUT); an invocation has the function's Timeout, after
which the worker is killed and the caller gets `Sandbox.Timedout` / "Task timed out after
3.00 seconds"; a worker that dies mid-invocation gives `Runtime.ExitError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..gateway.invocation import FunctionError
from ..model import Function
from . import channel
from .environment import code_paths
from .forkserver import ForkedProcess, ForkServer
from .wire import frame, read_frame

log = logging.getLogger("apigw_local.runtime")

INIT_TIMEOUT = 10.0  # Lambda's init phase limit for on-demand functions
# Seconds a reap waits, once the worker is gone, for the rest of its output: a descendant that
# left its process group (a daemon) may hold its stdout for ever.
LOG_GRACE = 1.0

# One line of a worker's output: (function logical id, line).
LogSink = Callable[[str, str], None]


class WorkerProcess:
    __slots__ = ("fn", "proc", "reader", "writer", "log_tasks", "logs", "init_error",
                 "channel", "generation", "idle_since", "init_ms", "pipes")

    def __init__(self, fn: Function, proc: asyncio.subprocess.Process | ForkedProcess,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.fn = fn
        self.proc = proc
        self.reader = reader
        self.writer = writer
        self.channel: asyncio.BaseTransport | None = None  # the Management API channel
        self.log_tasks: list[asyncio.Task[None]] = []
        self.logs: list[str] | None = None  # lines of the running invocation, best effort
        self.init_error: FunctionError | None = None
        self.generation = 0  # its pool's generation when it started (see Runtime.recycle)
        self.idle_since = 0.0  # monotonic time it was last given back
        self.init_ms: float | None = None  # its init phase, until its first invocation reports it
        self.pipes: list[asyncio.BaseTransport] = []  # its stdout and stderr, when forked

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self.reader.at_eof()

    @classmethod
    async def start(cls, fn: Function, env: Mapping[str, str], *, python: str,
                    fork_server: ForkServer | None, management: Any,
                    on_line: LogSink) -> WorkerProcess:
        """Start a worker of `fn` (forked by `fork_server` when given); `management` answers
        its Management API channel (None: no channel, botocore's HTTPS path)."""
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair()
        mgmt_parent = mgmt_child = None
        if management is not None:
            mgmt_parent, mgmt_child = socket.socketpair()
        argv = [str(child.fileno()), str(os.getpid()), json.dumps(code_paths(fn))]
        if mgmt_child is not None:
            argv.append(str(mgmt_child.fileno()))
        child_fds = [child.fileno()] + ([mgmt_child.fileno()] if mgmt_child else [])
        pipes: list[int] = []
        try:
            if fork_server is not None:
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                pipes = [out_r, out_w, err_r, err_w]
                fds = [child.fileno(), out_w, err_w]
                fork_argv = ["fd:0", argv[1], argv[2]]
                if mgmt_child is not None:
                    fds.append(mgmt_child.fileno())
                    fork_argv.append("fd:3")
                proc: Any = await fork_server.fork(env, str(fn.code_uri), fork_argv, fds)
                os.close(out_w)
                os.close(err_w)
                pipes = [out_r, err_r]
                stdout, out_t = await _pipe_reader(loop, out_r)
                pipes = [err_r]
                stderr, err_t = await _pipe_reader(loop, err_r)
                pipes = []
                transports = [out_t, err_t]
            else:
                proc = await asyncio.create_subprocess_exec(
                    python, "-m", "apigw_local.runtime.worker", *argv,
                    cwd=str(fn.code_uri),
                    env=dict(env),
                    pass_fds=child_fds,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    limit=1 << 20,
                    process_group=0,  # its own process group: see kill()
                )
                assert proc.stdout is not None and proc.stderr is not None
                stdout, stderr = proc.stdout, proc.stderr
                transports = []
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
        worker = cls(fn, proc, reader, writer)
        worker.pipes = transports
        if mgmt_parent is not None:
            worker.channel, _ = await loop.create_connection(
                lambda: channel.GatewayEnd(management),  # type: ignore[arg-type,return-value]
                sock=mgmt_parent)
        worker.log_tasks = [asyncio.create_task(worker._forward(stream, on_line))
                            for stream in (stdout, stderr)]
        return worker

    async def init_phase(self) -> None:
        """Wait for the worker's "ready" (or its init error), at most INIT_TIMEOUT."""
        started = time.perf_counter()
        try:
            ready = json.loads(await asyncio.wait_for(read_frame(self.reader), INIT_TIMEOUT))
        except TimeoutError:
            self.init_error = FunctionError(
                "Sandbox.Timedout", f"Init phase timed out after {INIT_TIMEOUT:.2f} seconds")
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await self.proc.wait()
            self.init_error = FunctionError(
                "Runtime.ExitError", f"Runtime exited during init: {_exit_status(code)}")
        else:
            if not ready.get("ready"):
                self.init_error = function_error(ready["error"])
        self.init_ms = (time.perf_counter() - started) * 1000

    async def _forward(self, stream: asyncio.StreamReader, on_line: LogSink) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the limit: take what is there
                line = await stream.read(1 << 20)
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\n")
            if self.logs is not None:  # the invocation's record carries it
                self.logs.append(text)
                continue
            try:  # a line outside any invocation (the init phase, a thread)
                on_line(self.fn.logical_id, text)
            except Exception:
                log.exception("log sink failed")

    async def call(self, request_id: str, event: dict[str, Any]
                   ) -> tuple[Any, FunctionError | None, tuple[str, ...]]:
        """One invocation: (payload, error, log lines). A timed-out worker is killed; after a
        `Sandbox.Timedout` or `Runtime.ExitError` the worker must not be reused."""
        timeout = self.fn.timeout
        body = json.dumps({"id": request_id, "deadline": (time.time() + timeout) * 1000,
                           "event": event})
        logs: list[str] = []
        self.logs = logs
        try:
            self.writer.write(frame(body.encode()))
            answer = json.loads(await asyncio.wait_for(read_frame(self.reader), timeout))
        except TimeoutError:
            self.proc.kill()
            return None, FunctionError(
                "Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds"), tuple(logs)
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await self.proc.wait()
            return None, FunctionError(
                "Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited with "
                f"error: {_exit_status(code)}"), tuple(logs)
        except BaseException:  # cancelled mid-invocation: the worker's state is unknown
            self.proc.kill()
            raise
        finally:
            self.logs = None
        if "ok" in answer:
            return answer["ok"], None, tuple(logs)
        if answer.get("fatal"):
            self.proc.kill()
        return None, function_error(answer["error"]), tuple(logs)

    def kill(self) -> None:
        """Kill the worker and its process group: what the handler started goes with it, as
        an execution environment ends whole."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    async def reap(self) -> None:
        """Wait for the (killed or exiting) process and release what it held.

        Its output ends at EOF, once the worker and every process holding its stdout and
        stderr are gone. A process it left behind outside its group (a daemon) may hold them
        for ever: after LOG_GRACE seconds the forwarding stops and the pipes are closed (an
        asyncio subprocess counts as exited only once its pipes are closed)."""
        self.writer.close()
        if self.channel is not None:
            self.channel.close()
        exited = asyncio.ensure_future(self.proc.wait())
        _, pending = await asyncio.wait([exited, *self.log_tasks], timeout=LOG_GRACE)
        if pending:
            for task in self.log_tasks:
                task.cancel()
            self._close_pipes()
        await exited
        if self.log_tasks:
            await asyncio.wait(self.log_tasks)
        for task in self.log_tasks:
            if not task.cancelled() and task.exception() is not None:
                log.debug("forwarding the output of a worker of %s failed", self.fn.logical_id,
                          exc_info=task.exception())
        self._close_pipes()
        transport = getattr(self.proc, "_transport", None)
        if transport is not None:
            transport.close()

    def _close_pipes(self) -> None:
        transport = getattr(self.proc, "_transport", None)  # an asyncio subprocess's
        pipes = [transport.get_pipe_transport(fd) for fd in (1, 2)] if transport else self.pipes
        for pipe in pipes:
            if pipe is not None:
                pipe.close()


async def _pipe_reader(loop: asyncio.AbstractEventLoop, fd: int
                       ) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    reader = asyncio.StreamReader(limit=1 << 20)
    pipe = os.fdopen(fd, "rb", 0)
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe)
    except BaseException:
        pipe.close()
        raise
    return reader, transport


def function_error(error: Mapping[str, Any]) -> FunctionError:
    return FunctionError(
        type=str(error.get("errorType", "Runtime.Unknown")),
        message=str(error.get("errorMessage", "")),
        trace=tuple(error.get("stackTrace") or ()),
    )


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal: {signal.Signals(-code).name}"
        except ValueError:
            return f"signal: {-code}"
    return f"exit status {code}"
