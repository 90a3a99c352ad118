"""What every benchmark needs: servers in their own processes, statistics, process accounting.

Every server under test runs as its own process (the emulator as the user runs it, `apigw-local
start`; the baselines through `bench.servers`), so the load client in this process never competes
with a server for the GIL, and each process tree's CPU seconds and memory can be read apart.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jwt

ROOT = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no samples."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def token(secret: str, user: str, role: str = "user") -> str:
    now = int(time.time())
    claims = {"sub": user, "role": role, "iat": now, "exp": now + 3600}
    return jwt.encode(claims, secret, algorithm="HS256")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


def raise_fd_limit() -> int:
    """Soft open-files limit up to the hard one (10 000 sockets need it); the new soft limit.

    Servers started afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- process trees (Linux /proc) -------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += tree.get(current, [])
    return found


def _stat(pid: int) -> tuple[float, int] | None:
    """(CPU seconds including reaped children, RSS bytes) of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / TICKS, int(fields[21]) * PAGE


def _pss(pid: int) -> int:
    """Proportional set size: shared pages (forked workers) counted once across the tree."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def open_files_limit(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError):
        pass
    return None


@dataclass
class Server:
    """A server under test, started by this process in its own session (process group)."""

    name: str
    process: subprocess.Popen[bytes]
    endpoints: dict[str, str] = field(default_factory=dict)

    def groups(self) -> dict[str, list[int]]:
        """The process tree by role: the emulator's gateway, its DynamoDB, its workers."""
        pids = descendants(self.process.pid)
        if self.name != "apigw-local":
            return {self.name: pids}
        groups: dict[str, list[int]] = {"gateway": [self.process.pid], "dynamodb": [],
                                        "workers": []}
        tree = _children()
        for child in tree.get(self.process.pid, []):
            role = "dynamodb" if "moto" in _cmdline(child) else "workers"
            groups[role] += descendants(child)
        return groups

    def usage(self) -> dict[str, dict[str, float]]:
        """CPU seconds, RSS and PSS (MiB) per group, now."""
        out = {}
        for group, pids in self.groups().items():
            cpu = rss = pss = 0.0
            for pid in pids:
                stat = _stat(pid)
                if stat is not None:
                    cpu += stat[0]
                    rss += stat[1]
                    pss += _pss(pid)
            out[group] = {"cpu_s": round(cpu, 2), "rss_mib": round(rss / 2**20, 1),
                          "pss_mib": round(pss / 2**20, 1), "processes": len(pids)}
        return out

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        # Whatever the server left behind (workers, DynamoDB) is in its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


def cpu_delta(before: dict[str, dict[str, float]],
              after: dict[str, dict[str, float]]) -> dict[str, float]:
    """CPU seconds each process group spent between two `Server.usage()` readings."""
    return {group: round(after[group]["cpu_s"] - before.get(group, {}).get("cpu_s", 0.0), 2)
            for group in after}


@contextlib.contextmanager
def emulator(templates: Sequence[Path], *, parameters: dict[str, str] | None = None,
             extra_args: Sequence[str] = (), prewarm: bool = True) -> Iterator[Server]:
    """`apigw-local start` on free ports; yields it with its endpoints file's content."""
    with tempfile.TemporaryDirectory(prefix="apigw-bench-") as tmp:
        endpoints_file = Path(tmp) / "endpoints.json"
        args = [sys.executable, "-m", "apigw_local.cli", "start", "--port", "0", "--ws-port", "0",
                "--no-static", "--endpoints-file", str(endpoints_file)]
        if prewarm:
            args.append("--prewarm")
        for template in templates:
            args += ["--template", str(template)]
        args += list(extra_args)
        # Parameters (the app's secret) travel in the environment, never in argv.
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               **{f"APIGW_LOCAL_PARAMETER_{k}": v for k, v in (parameters or {}).items()}}
        with open(Path(tmp) / "emulator.log", "w+b") as log:
            server = Server("apigw-local", subprocess.Popen(
                args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env=env))
            try:
                deadline = time.monotonic() + 90
                while not endpoints_file.exists() or not endpoints_file.stat().st_size:
                    if server.process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"apigw-local did not start:\n{log.read().decode()}")
                    time.sleep(0.1)
                time.sleep(0.2)  # the file is written once the servers listen
                server.endpoints = json.loads(endpoints_file.read_text())
                yield server
            finally:
                server.stop()


@contextlib.contextmanager
def announced(name: str, args: Sequence[str], *, cwd: Path = ROOT,
              env: dict[str, str] | None = None) -> Iterator[Server]:
    """A server that binds port 0 and prints one JSON line of its endpoints on stdout."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(list(args), cwd=cwd, stdout=subprocess.PIPE, stderr=log,
                                   start_new_session=True,
                                   env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"})
        server = Server(name, process)
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line:
                log.seek(0)
                raise RuntimeError(f"{name} did not start:\n{log.read().decode()}")
            server.endpoints = json.loads(line)
            yield server
        finally:
            server.stop(timeout=5)
