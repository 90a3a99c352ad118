"""What the hostile-input suites share: the app served once per module with an observer that
keeps every invocation and a copy of the log the emulator prints, the tables read back whole
(to prove an error changed nothing), and a count of the inputs tried per strategy, printed at
the end of the module."""

from __future__ import annotations

import collections
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import jwt
from botocore.config import Config
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from apigw_local import logs
from apigw_local.gateway.observer import InvocationRecord
from apigw_local.testing import Endpoints, serve

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = [ROOT / "template.yaml", ROOT / "local" / "template.yaml"]

# CI is reproducible: the same examples every run (derandomize) and no example database
# carried from one run to the next. Counts are kept small: every example is a real round trip,
# and a failing example is reported as found (shrinking it would cost minutes of timeouts).
# HOSTILE_EXAMPLES=N explores further: N random examples per strategy, new ones each run.
_EXPLORE = os.environ.get("HOSTILE_EXAMPLES")
HOSTILE = settings(max_examples=int(_EXPLORE or 40), deadline=None,
                   derandomize=not _EXPLORE, database=None,
                   phases=[Phase.explicit, Phase.generate],
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow, HealthCheck.data_too_large])


def seed_file(directory: Path) -> Path:
    seed = directory / "seed.json"
    seed.write_text(subprocess.run([sys.executable, str(ROOT / "local" / "seed.py")],
                                   check=True, capture_output=True, text=True).stdout)
    return seed


class Recorder:
    """An observer that keeps every invocation, and a log handler that keeps every gateway
    record at WARNING or above (a traceback there is a bug as much as a 500)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[InvocationRecord] = []
        self.gateway_logs: list[logging.LogRecord] = []
        self.printed: list[str] = []  # the emulator's log, as the developer reads it
        self.handler = _Keep(self)

    def print_line(self, line: str) -> None:
        with self.lock:
            self.printed.append(line)
        sys.stderr.write(line + "\n")

    def invocation(self, record: InvocationRecord) -> None:
        with self.lock:
            self.records.append(record)

    def connection(self, event: str, info: Any, detail: Mapping[str, Any]) -> None:
        pass

    def mark(self) -> tuple[int, int, int]:
        with self.lock:
            return len(self.records), len(self.gateway_logs), len(self.printed)

    def leaks(self, secrets: set[str]) -> list[str]:
        """Log lines (handlers' and the gateway's) that carry one of `secrets`."""
        with self.lock:
            lines = [line for r in self.records for line in r.logs]
            lines += [rec.getMessage() for rec in self.gateway_logs] + self.printed
        return [line[:200] for line in lines if any(s in line for s in secrets)]

    def faults_since(self, mark: tuple[int, int, int]) -> list[str]:
        """What went wrong since `mark`: a failed invocation, a handler's 5xx, a traceback in a
        handler's log, a gateway log record with an exception."""
        with self.lock:
            records = self.records[mark[0]:]
            logs = self.gateway_logs[mark[1]:]
            printed = self.printed[mark[2]:]
        faults = []
        for r in records:
            if r.status != "ok":
                faults.append(f"{r.function} {r.route_key}: {r.status} {r.error_message}")
            if r.payload_status is not None and r.payload_status >= 500:
                faults.append(f"{r.function} {r.route_key}: statusCode {r.payload_status}")
            faults += [f"{r.function}: {line[:300]}" for line in r.logs
                       if "Traceback" in line or '"level":"ERROR"' in line]
        faults += [f"gateway: {rec.getMessage()[:300]}" for rec in logs if rec.exc_info]
        faults += [f"log: {line[:300]}" for line in printed if "Traceback" in line]
        return faults


class _Keep(logging.Handler):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__(logging.WARNING)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        with self.recorder.lock:
            self.recorder.gateway_logs.append(record)


class App:
    """The served app, its secret and its tables."""

    def __init__(self, endpoints: Endpoints, secret: str, recorder: Recorder) -> None:
        self.ep = endpoints
        self.secret = secret
        self.recorder = recorder
        self.db = boto3.client("dynamodb", endpoint_url=endpoints.dynamodb,
                               region_name="us-east-1", aws_access_key_id="testing",
                               aws_secret_access_key="testing",
                               config=Config(retries={"max_attempts": 2}))
        self.tried: collections.Counter[str] = collections.Counter()
        self.issued: set[str] = set()

    def token(self, sub: str, role: str = "user") -> str:
        now = int(time.time())
        token = jwt.encode({"sub": sub, "role": role, "iat": now, "exp": now + 3600},
                           self.secret, algorithm="HS256")
        self.issued.add(token)
        return token

    def tables(self) -> dict[str, list[str]]:
        """Every table's items, each as canonical JSON, sorted."""
        contents = {}
        for table in self.ep.tables.values():
            items = [json.dumps(item, sort_keys=True)
                     for page in self.db.get_paginator("scan").paginate(TableName=table)
                     for item in page["Items"]]
            contents[table] = sorted(items)
        return contents


@contextmanager
def hostile_app(directory: Path, name: str, **options: Any) -> Iterator[App]:
    """The project's app (template + local overlay, seeded) on free ports."""
    recorder = Recorder()
    gateway_log = logging.getLogger("apigw_local")
    gateway_log.addHandler(recorder.handler)
    secret = secrets.token_urlsafe(32)
    printer, logs._stderr_line = logs._stderr_line, recorder.print_line
    try:
        with serve(TEMPLATES, parameter_overrides={"AuthSecret": secret},
                   seed=seed_file(directory), observers=[recorder], **options) as endpoints:
            app = App(endpoints, secret, recorder)
            yield app
            # Tokens travel in query strings and Authorization headers: never in a log.
            if app.recorder.records:  # an invocation prints lines
                assert app.recorder.printed, "the emulator's log was not captured"
            assert app.recorder.leaks(app.issued | {secret}) == []
            if app.tried:
                print(f"\n{name}: inputs tried per strategy: "
                      + ", ".join(f"{k} {v}" for k, v in sorted(app.tried.items()))
                      + f" (total {sum(app.tried.values())})")
    finally:
        logs._stderr_line = printer
        gateway_log.removeHandler(recorder.handler)


# Any JSON value, a few levels deep: what a hostile client puts where the API wants fields.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=25,
)
