"""`apigw-local start` prints invocation logs as SAM users know them: START, the handler's
output, END and REPORT (Init Duration on a cold start), prefixed by function, plain when piped;
a gateway line per route; `--log-format json` for machines."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[1] / "fixtures" / "devloop"


class Emulator:
    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.endpoints_file = tmp_path / "endpoints.json"
        env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "apigw_local.cli", "start", "-t",
             str(FIXTURE / "template.yaml"), "--port", "0", "--ws-port", "0", "--no-static",
             "--state-dir", str(tmp_path / "state"), "--endpoints-file",
             str(self.endpoints_file), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def endpoints(self) -> dict:
        deadline = time.monotonic() + 60
        while not self.endpoints_file.exists():
            assert self.proc.poll() is None, "\n".join(self.lines)
            assert time.monotonic() < deadline, "\n".join(self.lines)
            time.sleep(0.1)
        return json.loads(self.endpoints_file.read_text())

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 20) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.lines if re.search(pattern, line)]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n" + "\n".join(self.lines)
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)


def send_two(emulator: Emulator, report: str) -> None:
    """Two messages, the second once the first invocation has ended (so its worker is warm:
    the handler posts its answer before it returns)."""
    with connect(emulator.endpoints()["websocket"]) as ws:
        ws.send("one")
        ws.recv(timeout=15)
        emulator.wait_for(report, count=1)
        ws.send("two")
        ws.recv(timeout=15)


def test_text_logs_when_piped(tmp_path):
    emulator = Emulator(tmp_path)
    try:
        report = r"^EchoFunction +\| REPORT RequestId: "
        send_two(emulator, report)
        reports = emulator.wait_for(report, count=2)
    finally:
        emulator.stop()
    lines = emulator.lines
    assert not any("\x1b[" in line for line in lines)  # piped: no colour
    rid = re.search(r"RequestId: (\S+)", reports[0]).group(1)
    block = [line.split("| ", 1)[1] for line in lines
             if line.startswith("EchoFunction ") and "| " in line]
    start = block.index(f"START RequestId: {rid} Version: $LATEST")
    assert block[start + 1] == "echo v1 got 'one'"
    assert block[start + 2] == f"END RequestId: {rid}"
    first, second = reports
    fields = r"Duration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\t" \
             r"Max Memory Used: \d+ MB"
    assert re.search(fields + r"\tInit Duration: [\d.]+ ms$", first), first  # cold start
    assert re.search(fields + "$", second), second  # warm: no Init Duration
    gateway = [line for line in lines if line.startswith("gateway")]
    assert any(re.search(r"\| \$default +conn=\S+ +200 +[\d.]+ ms +→ EchoFunction", line)
               for line in gateway), gateway


def test_json_logs(tmp_path):
    emulator = Emulator(tmp_path, "--log-format", "json")
    try:
        send_two(emulator, r'"type":"platform.report"')
        emulator.wait_for(r'"type":"platform.report"', count=2)
    finally:
        emulator.stop()
    records = []
    for line in emulator.lines:
        if line.startswith("{"):
            records.append(json.loads(line))
    kinds = [r["type"] for r in records
             if r.get("function") == "EchoFunction" and r["type"] != "gateway"]
    assert kinds[:4] == ["platform.start", "function", "platform.report", "platform.start"]
    report = next(r for r in records if r["type"] == "platform.report")
    assert set(report["record"]["metrics"]) >= {"durationMs", "billedDurationMs",
                                                "memorySizeMB", "maxMemoryUsedMB",
                                                "initDurationMs"}
    assert any(r["type"] == "gateway" and r["routeKey"] == "$default" for r in records)
