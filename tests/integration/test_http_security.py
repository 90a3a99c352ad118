"""`apigw-local start` as its own process, as `make run` starts it: what a hostile client does to
its memory, what its logs hold, and how secrets reach it without its argv."""

import os
import socket
import threading
from pathlib import Path

import pytest
from emulator_process import EmulatorProcess
from http_support import http

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[1] / "fixtures" / "gateway"
MB = 1 << 20
TOKEN = "tok-4f1d9c2e8b7a"
AUTHZ = "Bearer authz-9e8d7c6b5a41"


def emulator(tmp: Path, *args: str, env: dict[str, str] | None = None) -> EmulatorProcess:
    """`apigw-local start -v` on the fixture template, free ports, its output kept."""
    return EmulatorProcess(tmp, "--template", str(FIXTURE / "template.yaml"),
                           "--state-dir", str(tmp / "state"), "-v", *args,
                           env={**os.environ, **(env or {})})


def proc_status(em: EmulatorProcess, field: str) -> int:
    """A `/proc/<pid>/status` figure of the emulator's process, in kB (VmRSS, VmHWM)."""
    assert em.process is not None
    for line in Path(f"/proc/{em.process.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{em.process.pid}/status")


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
    with emulator(tmp_path) as em:
        base = em.start()["http"]
        port = int(base.rsplit(":", 1)[1])
        assert get(base + "/items/1")[0] == 200  # warm: the paths a request takes are loaded
        start = proc_status(em, "VmRSS")
        # Reset the peak (VmHWM) to the current RSS, so the peak below is this test's alone.
        Path(f"/proc/{em.process.pid}/clear_refs").write_text("5")
        assert post_400_mb(port, chunked=False) == 413
        assert post_400_mb(port, chunked=True) == 413
        peak = proc_status(em, "VmHWM")
        assert get(base + "/items/1")[0] == 200  # still serving
    # The chunked body is read up to the 10 MB quota before the 413: allow that, and no more.
    assert peak - start < 40 * 1024, f"gateway RSS {start} kB → peak {peak} kB"


def test_logs_hold_no_token_and_no_authorization(tmp_path):
    with emulator(tmp_path) as em:
        base = em.start()["http"]
        headers = {"Authorization": AUTHZ}
        # A handler that logs its event and fails quoting it; a crash; a miss; a plain call.
        assert get(f"{base}/items/leak?token={TOKEN}&x=1", headers)[0] == 500
        assert get(f"{base}/items/crash?token={TOKEN}", headers)[0] == 500
        assert get(f"{base}/nothing?token={TOKEN}", headers)[0] == 404
        assert get(f"{base}/items/1?access_token={TOKEN}", headers)[0] == 200
        em.wait_for_log("could not handle")  # the worker's output is forwarded asynchronously
        em.wait_for_log("boom")
    logs = em.log()
    assert "could not handle" in logs and "boom" in logs, logs  # the failures were logged
    assert '"rawQueryString"' in logs, logs  # and the careless handler's event too
    assert TOKEN not in logs and "authz-9e8d7c6b5a41" not in logs, logs


def test_secret_parameters_without_argv(tmp_path):
    params = tmp_path / "params.env"
    params.write_text("# local secrets\nSecret=from-the-file\nLogDir=/tmp\n")
    with emulator(tmp_path, "--parameter-overrides-file", str(params)) as em:
        base = em.start()["http"]
        answer = get(base + "/items/secret")
        assert answer == (200, b'{"secret": "from-the-file"}'), (answer, em.log()[-3000:])
        assert b"from-the-file" not in Path(f"/proc/{em.process.pid}/cmdline").read_bytes()
    env = {"APIGW_LOCAL_PARAMETER_Secret": "from-the-environment"}
    with emulator(tmp_path, "--parameter-overrides-file", str(params), env=env) as em:
        base = em.start()["http"]
        # The environment overrides the file; workers do not inherit the variable.
        answer = get(base + "/items/secret")
        assert answer == (200, b'{"secret": "from-the-environment"}'), (answer, em.log()[-3000:])
        _, body = get(base + "/items/1")
        assert "from-the-environment" not in em.log()
        assert b"APIGW_LOCAL_PARAMETER" not in body


def test_bad_parameters_file_is_a_clear_error_that_does_not_echo_values(tmp_path):
    params = tmp_path / "params.env"
    params.write_text("s3cr3t-without-a-key\n")
    proc = emulator(tmp_path, "--parameter-overrides-file", str(params)).run_to_exit()
    assert proc.returncode == 2
    assert "--parameter-overrides-file" in proc.stderr and "KEY=VALUE" in proc.stderr
    assert "s3cr3t" not in proc.stderr
