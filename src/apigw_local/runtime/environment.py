"""The environment and paths a worker starts with, as Lambda builds them.

Environment of a worker, built from scratch (later entries win):
1. a clean base: PATH, HOME, TMPDIR, LD_LIBRARY_PATH and the AWS credential variables
   (`AWS_ACCESS_KEY_ID`, …, `AWS_PROFILE`, config files) of the emulator's own environment,
   plus LANG=C.UTF-8, TZ=:UTC and PYTHONUNBUFFERED=1;
2. `extra_env` (the gateway's endpoints, CA bundle, credentials, region);
3. the function's `Environment.Variables` (Globals + function, resolved);
4. `env_overrides`, as `sam local --env-vars` applies them: the "Parameters" section for
   every function, then the section named by the function's logical id (or its name);
   ONLY variables the function declares in the template are overridden, others are ignored;
5. Lambda's reserved variables (AWS_LAMBDA_FUNCTION_NAME, AWS_REGION, _HANDLER, …, and
   AWS_SAM_LOCAL=true as `sam local` sets it).

Its `sys.path` is the code directory, then the layers (`python/` subdirectory first), then the
interpreter's own.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..model import Application, Function

_PASSTHROUGH = (
    "PATH",
    "HOME",
    "TMPDIR",
    "LD_LIBRARY_PATH",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)
_SRC_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding apigw_local/


def base_env(python: str) -> dict[str, str]:
    """Step 1: what every worker (and the fork server) starts from."""
    env = {k: os.environ[k] for k in _PASSTHROUGH if k in os.environ}
    env.update(LANG="C.UTF-8", TZ=":UTC", PYTHONUNBUFFERED="1")
    if python != sys.executable:  # another interpreter: let it find the worker
        env["PYTHONPATH"] = _SRC_ROOT
    return env


def function_env(app: Application, fn: Function, python: str, extra_env: Mapping[str, str],
                 overrides: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The whole environment of a worker of `fn` (steps 1 to 5)."""
    env = base_env(python)
    env.update(extra_env)
    env.update(fn.environment)
    for section in ("Parameters", fn.logical_id, fn.name):
        for key, value in (overrides.get(section) or {}).items():
            if key in fn.environment:  # SAM: only declared variables are overridden
                env[key] = str(value)
    region = app.region
    today = time.strftime("%Y/%m/%d", time.gmtime())
    env.update(
        AWS_LAMBDA_FUNCTION_NAME=fn.name,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(fn.memory_size),
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_TIMEOUT=str(int(fn.timeout)),
        AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{fn.name}",
        AWS_LAMBDA_LOG_STREAM_NAME=f"{today}/[$LATEST]{uuid.uuid4().hex}",
        AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
        AWS_LAMBDA_RUNTIME_API="127.0.0.1:9001",
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        AWS_EXECUTION_ENV=f"AWS_Lambda_{fn.runtime}",
        LAMBDA_TASK_ROOT=str(fn.code_uri),
        LAMBDA_RUNTIME_DIR=str(Path(__file__).parent),
        _HANDLER=fn.handler,
        AWS_SAM_LOCAL="true",
        APIGW_LOCAL_FUNCTION_ARN=f"arn:aws:lambda:{region}:{app.account_id}:function:{fn.name}",
    )
    return env


def code_paths(fn: Function) -> list[str]:
    """The function's own entries of `sys.path`, in order."""
    return [str(fn.code_uri), *(str(p) for p in fn.layers)]


def startup_variables(env: Mapping[str, str], base: Mapping[str, str]) -> list[str]:
    """Interpreter start-up variables (PYTHON*) `env` sets beyond `base`: a forked worker
    could not honour them."""
    return [k for k in env if k.startswith("PYTHON") and env[k] != base.get(k)]


def shadows(paths: Sequence[str], modules: frozenset[str]) -> str | None:
    """A preloaded top-level package that one of `paths` also provides, if any."""
    for path in paths:
        try:
            names = os.listdir(path)
        except OSError:
            continue
        for name in names:
            if name.partition(".")[0] in modules:
                return name
    return None
