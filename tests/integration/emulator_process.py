"""`apigw-local start` as a real process, for tests that kill it, restart it or change its
environment: free ports, the endpoints file, its log, its children."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class EmulatorProcess:
    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None,
                 name: str = "emulator") -> None:
        self.workdir = workdir
        self.endpoints_file = workdir / f"{name}-endpoints.json"
        self.log_path = workdir / f"{name}.log"
        self.args = ["-p", "0", "--ws-port", "0", "--no-static",
                     "--endpoints-file", str(self.endpoints_file), *args]
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 240.0) -> dict[str, str]:
        self.endpoints_file.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "apigw_local.cli", "start", *self.args],
                cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.endpoints_file.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"apigw-local exited {self.process.returncode}:\n"
                                     f"{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"apigw-local did not start in {timeout} s:\n{self.log()}")
            time.sleep(0.1)
        return json.loads(self.endpoints_file.read_text())

    def run_to_exit(self, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
        """Run it expecting it to exit by itself (a refused start)."""
        return subprocess.run([sys.executable, "-m", "apigw_local.cli", "start", *self.args],
                              cwd=self.workdir, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in (log := self.log()):
                return log
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} in the log within {timeout} s:\n{self.log()}")

    def children(self) -> list[int]:
        assert self.process is not None
        children: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():  # any thread's children
            with contextlib.suppress(OSError):  # the thread ended
                children += [int(pid) for pid in (task / "children").read_text().split()]
        return children

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the emulator."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C, and wait for the clean stop."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment_without_aws(home: Path) -> dict[str, str]:
    """This environment minus every AWS variable, with an empty HOME (no ~/.aws)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(home)
    return env
