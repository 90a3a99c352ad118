"""`apigw-local start` as its own process, as `make run` starts it: what a hostile client does to
its memory, what its logs hold, and how secrets reach it without its argv."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from http_support import http

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[1] / "fixtures" / "gateway"
MB = 1 << 20
TOKEN = "tok-4f1d9c2e8b7a"
AUTHZ = "Bearer authz-9e8d7c6b5a41"


class Emulator:
    """An `apigw-local start` process on free ports; its stdout/stderr are kept."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.endpoints_file = tmp / "endpoints.json"
        self.log_path = tmp / "emulator.log"
        self.args = [sys.executable, "-m", "apigw_local.cli", "start",
                     "--template", str(FIXTURE / "template.yaml"), "--port", "0",
                     "--ws-port", "0", "--state-dir", str(tmp / "state"),
                     "--static", str(FIXTURE / "web"),
                     "--endpoints-file", str(self.endpoints_file), "-v", *args]
        self.env = {**os.environ, **(env or {})}

    def __enter__(self) -> "Emulator":
        self.endpoints_file.unlink(missing_ok=True)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self.endpoints_file.exists() or not self.endpoints_file.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"apigw-local did not start:\n{self.logs()}")
            time.sleep(0.1)
        self.http = json.loads(self.endpoints_file.read_text())["http"]
        self.port = int(self.http.rsplit(":", 1)[1])
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def logs(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def status(self, field: str) -> int:
        """A `/proc/<pid>/status` figure in kB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.proc.pid}/status")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    status, _, body = http("GET", url, headers=headers)
    return status, body


def post_400_mb(port: int, chunked: bool) -> int:
    """POST 400 MB; return the status the gateway answered (read while still sending)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % (400 * MB)
    sock.sendall(b"POST /items/1/notify HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n" % framing)
    answer = bytearray()

    def read() -> None:
        while chunk := sock.recv(65536):
            answer.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    block = b"x" * MB
    piece = b"%x\r\n%s\r\n" % (MB, block) if chunked else block
    try:
        for _ in range(400):
            sock.sendall(piece)
    except OSError:  # the gateway closed after its answer (lingering close over)
        pass
    reader.join(30)
    sock.close()
    return int(bytes(answer).split(b" ", 2)[1]) if answer else 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_400_mb_post_does_not_grow_the_gateway(tmp_path):
    with Emulator(tmp_path) as emu:
        assert get(emu.http + "/")[0] == 200  # warm: the paths a request takes are loaded
        start = emu.status("VmRSS")
        # Reset the peak (VmHWM) to the current RSS, so the peak below is this test's alone.
        Path(f"/proc/{emu.proc.pid}/clear_refs").write_text("5")
        assert post_400_mb(emu.port, chunked=False) == 413
        assert post_400_mb(emu.port, chunked=True) == 413
        peak = emu.status("VmHWM")
        assert get(emu.http + "/")[0] == 200  # still serving
    # The chunked body is read up to the 10 MB quota before the 413: allow that, and no more.
    assert peak - start < 40 * 1024, f"gateway RSS {start} kB → peak {peak} kB"


def test_logs_hold_no_token_and_no_authorization(tmp_path):
    with Emulator(tmp_path) as emu:
        headers = {"Authorization": AUTHZ}
        # A handler that logs its event and fails quoting it; a crash; a static miss; a 413.
        assert get(f"{emu.http}/items/leak?token={TOKEN}&x=1", headers)[0] == 500
        assert get(f"{emu.http}/items/crash?token={TOKEN}", headers)[0] == 500
        assert get(f"{emu.http}/nothing?token={TOKEN}", headers)[0] == 404
        assert get(f"{emu.http}/items/1?access_token={TOKEN}", headers)[0] == 200
        time.sleep(0.5)  # the worker's output is forwarded asynchronously
    logs = emu.logs()
    assert "could not handle" in logs and "boom" in logs, logs  # the failures were logged
    assert '"rawQueryString"' in logs, logs  # and the careless handler's event too
    assert TOKEN not in logs and "authz-9e8d7c6b5a41" not in logs, logs


def test_secret_parameters_without_argv(tmp_path):
    params = tmp_path / "params.env"
    params.write_text("# local secrets\nSecret=from-the-file\nLogDir=/tmp\n")
    with Emulator(tmp_path, "--parameter-overrides-file", str(params)) as emu:
        assert json.loads(get(emu.http + "/items/secret")[1]) == {"secret": "from-the-file"}
        cmdline = Path(f"/proc/{emu.proc.pid}/cmdline").read_bytes()
        assert b"from-the-file" not in cmdline
    env = {"APIGW_LOCAL_PARAMETER_Secret": "from-the-environment"}
    with Emulator(tmp_path, "--parameter-overrides-file", str(params), env=env) as emu:
        # The environment overrides the file; workers do not inherit the variable.
        assert json.loads(get(emu.http + "/items/secret")[1]) == {
            "secret": "from-the-environment"}
        _, body = get(emu.http + "/items/1")
        assert "from-the-environment" not in emu.logs()
        assert b"APIGW_LOCAL_PARAMETER" not in body


def test_bad_parameters_file_is_a_clear_error_that_does_not_echo_values(tmp_path):
    params = tmp_path / "params.env"
    params.write_text("s3cr3t-without-a-key\n")
    proc = subprocess.run(
        [sys.executable, "-m", "apigw_local.cli", "start", "--template",
         str(FIXTURE / "template.yaml"), "--parameter-overrides-file", str(params)],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--parameter-overrides-file" in proc.stderr and "KEY=VALUE" in proc.stderr
    assert "s3cr3t" not in proc.stderr
