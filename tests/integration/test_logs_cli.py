"""`apigw-local start` prints invocation logs as SAM users know them: START, the handler's
output, END and REPORT (Init Duration on a cold start), prefixed by function, plain when piped;
a gateway line per route; `--log-format json` for machines."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from emulator_process import EmulatorProcess
from websockets.sync.client import connect

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[1] / "fixtures" / "devloop"


def emulator(tmp_path: Path, *args: str) -> EmulatorProcess:
    """apigw-local on the devloop fixture, its output going to a file (piped, not a TTY)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    return EmulatorProcess(tmp_path, "-t", str(FIXTURE / "template.yaml"),
                           "--state-dir", str(tmp_path / "state"), *args, env=env)


def wait_for(process: EmulatorProcess, pattern: str, count: int = 1,
             timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in process.log().splitlines() if re.search(pattern, line)]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"no {pattern!r} in:\n{process.log()}"
        time.sleep(0.1)


def send_two(process: EmulatorProcess, endpoints: dict, report: str) -> None:
    """Two messages, the second once the first invocation has ended (so its worker is warm:
    the handler posts its answer before it returns)."""
    with connect(endpoints["websocket"]) as ws:
        ws.send("one")
        ws.recv(timeout=15)
        wait_for(process, report, count=1)
        ws.send("two")
        ws.recv(timeout=15)


def test_text_logs_when_piped(tmp_path):
    report = r"^EchoFunction +\| REPORT RequestId: "
    with emulator(tmp_path) as process:
        send_two(process, process.start(), report)
        reports = wait_for(process, report, count=2)
    lines = process.log().splitlines()
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
    with emulator(tmp_path, "--log-format", "json") as process:
        send_two(process, process.start(), r'"type":"platform.report"')
        wait_for(process, r'"type":"platform.report"', count=2)
    records = []
    for line in process.log().splitlines():
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
