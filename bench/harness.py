"""What every benchmark needs: apigw-local as a separate process, clients, statistics.

The emulator runs as the user runs it (`apigw-local start`, its own process), so the load
generator in this process never competes with the gateway for the GIL.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import jwt

ROOT = Path(__file__).resolve().parent.parent


def percentile(samples: Sequence[float], q: float) -> float:
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


@contextlib.contextmanager
def emulator(templates: Sequence[Path], *, parameters: dict[str, str] | None = None,
             extra_args: Sequence[str] = ()) -> Iterator[dict[str, str]]:
    """`apigw-local start` on free ports; yields its endpoints file's content."""
    with tempfile.TemporaryDirectory(prefix="apigw-bench-") as tmp:
        endpoints_file = Path(tmp) / "endpoints.json"
        log = open(Path(tmp) / "emulator.log", "w+")  # noqa: SIM115 - closed below
        args = [sys.executable, "-m", "apigw_local.cli", "start", "--port", "0", "--ws-port", "0",
                "--no-static", "--prewarm", "--endpoints-file", str(endpoints_file)]
        for template in templates:
            args += ["--template", str(template)]
        for key, value in (parameters or {}).items():
            args += ["--parameter-overrides", f"{key}={value}"]
        args += list(extra_args)
        process = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + 90
            while not endpoints_file.exists() or not endpoints_file.stat().st_size:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"apigw-local did not start:\n{log.read()}")
                time.sleep(0.1)
            time.sleep(0.2)  # the file is written once the servers listen
            yield json.loads(endpoints_file.read_text())
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)
