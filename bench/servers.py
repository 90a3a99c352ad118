"""The servers under test, each in its own process: apigw-local with the app, the Django Channels
baseline (in its own virtualenv, made here on first use) and the bare `websockets` floor."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

from .harness import ROOT, Server, announced, emulator, progress

BENCH = ROOT / "bench"
VENV = BENCH / ".venv-channels"
REQUIREMENTS = BENCH / "channels_app" / "requirements.txt"
APP_TEMPLATES = [ROOT / "template.yaml", ROOT / "local" / "template.yaml"]


def baseline_python() -> Path:
    """The benchmark's own virtualenv (Channels, uvicorn, matplotlib), installed once."""
    python, stamp = VENV / "bin" / "python", VENV / ".installed"
    wanted = REQUIREMENTS.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    progress(f"installing Django Channels, uvicorn and matplotlib into {VENV.relative_to(ROOT)}")
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--progress-bar",
                             "off", "-r", str(REQUIREMENTS)], capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"error: could not install {REQUIREMENTS.name} into {VENV}:\n{result.stderr}")
    stamp.write_text(wanted)
    return python


@contextlib.contextmanager
def channels() -> Iterator[Server]:
    with announced("channels", [str(baseline_python()), "-m", "bench.channels_app.serve"]) as s:
        yield s


@contextlib.contextmanager
def floor() -> Iterator[Server]:
    with announced("floor", [sys.executable, "-m", "bench.floor"]) as server:
        yield server


@contextlib.contextmanager
def app(secret: str, extra_args: tuple[str, ...] = ()) -> Iterator[Server]:
    """apigw-local with the app's own handlers (template.yaml and its local overlay)."""
    with emulator(APP_TEMPLATES, parameters={"AuthSecret": secret}, extra_args=extra_args) as s:
        yield s


def started(name: str, secret: str) -> contextlib.AbstractContextManager[Server]:
    return {"channels": channels, "floor": floor}[name]() if name != "apigw-local" \
        else app(secret)


TARGETS = ("apigw-local", "channels", "floor")
