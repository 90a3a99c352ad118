"""`sam build` makes artifacts that import: every function, with only the built layer and
the AWS SDK that Lambda's python3.13 runtime provides on sys.path.

Lambda runs the layer on arm64; this machine may not be one. The build here asks the
layer's Makefile for this machine's wheels (PLATFORM), through the very `sam build` that
`make build` runs, so the native modules (pydantic-core, wrapt) can be imported too.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SAM = ROOT / ".venv-sam" / "bin" / "sam"
FUNCTIONS = ("ConnectFunction", "MessageFunction", "DisconnectFunction", "VerifyTxFunction")
# What the python3.13 runtime itself provides (its AWS SDK and what it depends on).
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")


def lambda_python() -> str | None:
    """A python3.13, as the Makefile finds it (on PATH or under pyenv)."""
    candidates = [shutil.which("python3.13"), *sorted(Path.home().glob(
        ".pyenv/versions/3.13*/bin/python3.13"))]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [str(candidate), "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
            capture_output=True, text=True,
        )
        if probe.stdout.strip() == "True":
            return str(candidate)
    return None


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    python = lambda_python()
    if not SAM.exists() or python is None:
        pytest.skip("needs aws-sam-cli (make sam) and python3.13 (see make build)")
    out = tmp_path_factory.mktemp("sam")
    machine = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
    env = {
        **os.environ,
        "PATH": f"{Path(python).parent}:{os.environ['PATH']}",
        "PLATFORM": f"manylinux2014_{machine[platform.machine().lower()]}",
        "SAM_CLI_TELEMETRY": "0",
    }
    result = subprocess.run(
        [str(SAM), "build", "--no-cached", "--build-dir", str(out / "build"),
         "--cache-dir", str(out / "cache"), "--template", str(ROOT / "template.yaml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "build"


def pins() -> dict[str, str]:
    """The lock: normalised package name → version."""
    out = {}
    for line in (ROOT / "layers" / "shared" / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("#")[0].strip().split("==")
            out[name.lower().replace("-", "_")] = version
    return out


def test_the_local_virtualenv_runs_the_locked_versions():
    installed = {
        name: importlib.metadata.version(name) for name in pins()
    }
    assert installed == pins()


def test_the_layer_holds_the_lock_and_no_aws_sdk(built):
    layer = built / "SharedLayer" / "python"
    assert (layer / "realtime" / "auth.py").is_file()
    installed = {}
    for info in layer.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").split("-")
        installed[name.lower()] = version
    assert installed == pins()
    assert not [name for name in RUNTIME_SDK if (layer / name).exists()]


def test_every_built_function_imports_with_the_built_layer(built, tmp_path):
    # The runtime's SDK: a directory holding only the packages the runtime provides.
    sdk = tmp_path / "runtime"
    sdk.mkdir()
    site = Path(__import__("botocore").__file__).parent.parent
    for name in RUNTIME_SDK:
        (sdk / name).symlink_to(site / name)
    script = textwrap.dedent(
        """
        import json, sys
        layer, sdk, functions = sys.argv[1], sys.argv[2], sys.argv[3:]
        found = {}
        for code in functions:
            sys.path[:] = [code, layer, sdk] + [p for p in sys.path if "lib/python3" in p
                                                and "site-packages" not in p]
            import app
            found[code] = callable(app.lambda_handler)
            del sys.modules["app"]
        import botocore, pydantic_core
        found["botocore"] = botocore.__file__
        print(json.dumps(found))
        """
    )
    env = {
        "PATH": os.environ["PATH"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        **{v: "t" for v in ("CONNECTIONS_TABLE", "MEMBERSHIPS_TABLE", "MESSAGES_TABLE",
                            "TRANSACTIONS_TABLE", "WEEKLY_INCOME_TABLE")},
    }
    codes = [str(built / f) for f in FUNCTIONS]
    result = subprocess.run(
        [lambda_python(), "-I", "-S", "-c", script, str(built / "SharedLayer" / "python"),
         str(sdk), *codes],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(found[code] is True for code in codes)
    assert found["botocore"].startswith(str(sdk))

