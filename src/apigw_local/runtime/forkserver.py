"""The gateway's end of the fork server: starts `zygote.py`, asks it for workers, and tracks
the processes it forks (see zygote.py for why and for the protocol)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger("apigw_local.runtime")


class ForkedProcess:
    """A worker forked by the zygote: the subset of asyncio's Process the pool uses.

    It is the zygote's child, so the zygote reaps it and reports its exit status; signals go
    through a pidfd, which cannot hit a recycled pid.
    """

    def __init__(self, pid: int, zygote: ForkServer) -> None:
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


class ForkServer:
    """The parent's end of the fork server (see zygote.py for the protocol)."""

    def __init__(self, python: str, env: Mapping[str, str], preload: Sequence[str]) -> None:
        self.python, self.env, self.preload = python, dict(env), list(preload)
        self.proc: asyncio.subprocess.Process | None = None
        self.ctl: socket.socket | None = None
        self.modules: frozenset[str] = frozenset()
        self.usable = False
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._spawning: dict[int, asyncio.Future[int]] = {}
        self._children: dict[int, ForkedProcess] = {}
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
                   fds: list[int]) -> ForkedProcess:
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
        proc = ForkedProcess(pid, self)
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
        error = ConnectionError("the fork server was stopped")
        for future in self._spawning.values():
            if not future.done():
                future.set_exception(error)
        self._spawning.clear()
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
