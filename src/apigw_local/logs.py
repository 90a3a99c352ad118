"""Log lines as SAM users know them: Lambda's platform lines around each invocation, the
handler's own output, and one gateway line per route.

Text (what CloudWatch shows for a function, see "Working with Lambda function logs"):

    START RequestId: 8f5b… Version: $LATEST
    …the handler's own lines…
    END RequestId: 8f5b…
    REPORT RequestId: 8f5b…  Duration: 12.34 ms  Billed Duration: 13 ms  Memory Size: 128 MB
        Max Memory Used: 45 MB  Init Duration: 210.06 ms          (Init Duration: cold starts)

Each line is prefixed by the function's logical id (`Message |`), in a stable colour on a
terminal and plain when piped (NO_COLOR and FORCE_COLOR are honoured). The gateway's own line
per route: `$default  conn=abc= 200  12.3 ms  Message`.

JSON (`--log-format json`), one object per line, for machines: platform events in the shape of
the Lambda Telemetry API ("Telemetry API schema reference": `platform.start`,
`platform.report` with `record.metrics`), `function` lines, and `gateway` lines.

Billed Duration is the duration plus the init duration, rounded up to the millisecond (Lambda
bills the init phase of on-demand functions since August 2025).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from .redact import redact

__all__ = ["GatewayRecord", "LogObserver", "LogWriter", "Report", "peak_rss_mb"]

FORMATS = ("text", "json")

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_RED = "\x1b[31m"
_BOLD = "\x1b[1m"
_PALETTE = ("\x1b[36m", "\x1b[35m", "\x1b[33m", "\x1b[32m", "\x1b[34m", "\x1b[96m",
            "\x1b[95m", "\x1b[93m")


@dataclass(frozen=True)
class Report:
    """The figures of Lambda's REPORT line for one invocation."""

    request_id: str
    duration_ms: float
    memory_size_mb: int
    max_memory_used_mb: int | None = None  # None: not measurable here
    init_duration_ms: float | None = None  # set on a cold start only
    status: str = "success"  # Telemetry API: success | error | timeout | failure

    @property
    def billed_duration_ms(self) -> int:
        return math.ceil(self.duration_ms + (self.init_duration_ms or 0.0))

    def text(self) -> str:
        parts = [f"REPORT RequestId: {self.request_id}",
                 f"Duration: {self.duration_ms:.2f} ms",
                 f"Billed Duration: {self.billed_duration_ms} ms",
                 f"Memory Size: {self.memory_size_mb} MB"]
        if self.max_memory_used_mb is not None:
            parts.append(f"Max Memory Used: {self.max_memory_used_mb} MB")
        if self.init_duration_ms is not None:
            parts.append(f"Init Duration: {self.init_duration_ms:.2f} ms")
        return "\t".join(parts)

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"durationMs": round(self.duration_ms, 3),
                               "billedDurationMs": self.billed_duration_ms,
                               "memorySizeMB": self.memory_size_mb}
        if self.max_memory_used_mb is not None:
            out["maxMemoryUsedMB"] = self.max_memory_used_mb
        if self.init_duration_ms is not None:
            out["initDurationMs"] = round(self.init_duration_ms, 3)
        return out


@dataclass(frozen=True)
class GatewayRecord:
    """The gateway's own line for one route: what arrived, what it answered, how long."""

    api: str  # "websocket" | "http"
    route_key: str  # "$connect", "$default", "sendmessage", "POST /transactions"
    status: int | str  # the status the route answered (or the close code it ended with)
    duration_ms: float
    function: str | None = None
    connection_id: str | None = None
    request_id: str | None = None
    error: str | None = None  # "Type: message" of a failed integration


def start_line(request_id: str) -> str:
    return f"START RequestId: {request_id} Version: $LATEST"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def colour_wanted(stream: IO[str], environ: dict[str, str] | None = None) -> bool:
    """Colour on a terminal; never with NO_COLOR; always with FORCE_COLOR (no-color.org)."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LogWriter:
    """Renders invocation and gateway lines, in text (colour optional) or JSON, to `write`.

    `write` takes finished text (one line, or an invocation's block of lines, without the
    last newline); the default writes it to stderr. `clock` gives the JSON `time` field
    (ISO 8601, UTC). Inside `with writer.block():` lines are written together at the end: one
    write and one pass of the redaction per invocation.
    """

    def __init__(self, fmt: str = "text", *, colour: bool | None = None,
                 write: Callable[[str], None] | None = None,
                 clock: Callable[[], str] = _now) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
        self.format = fmt
        self.colour = colour_wanted(sys.stderr) if colour is None else colour
        self.colour = self.colour and fmt == "text"
        self._out = write or _stderr_line
        self._pending: list[str] | None = None
        self._clock = clock
        self._width = 8  # widest function name so far: the prefixes line up

    # -- text helpers -------------------------------------------------------------------------

    def _paint(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.colour else text

    def _prefix(self, function: str) -> str:
        self._width = max(self._width, len(function))
        label = function.ljust(self._width)
        colour = _PALETTE[zlib.crc32(function.encode()) % len(_PALETTE)]
        return f"{self._paint(colour, label)} | "

    def _write(self, line: str) -> None:
        if self._pending is not None:
            self._pending.append(line)
        else:
            self._out(redact(line))  # tokens never reach a log line

    @contextlib.contextmanager
    def block(self) -> Iterator[None]:
        self._pending = []
        try:
            yield
        finally:
            lines, self._pending = self._pending, None
            if lines:
                self._out(redact("\n".join(lines)))

    def _json(self, record: dict[str, Any]) -> None:
        self._write(json.dumps({"time": self._clock(), **record}, separators=(",", ":")))

    # -- the lines ----------------------------------------------------------------------------

    def start(self, function: str, request_id: str) -> None:
        if self.format == "json":
            self._json({"type": "platform.start", "function": function,
                        "record": {"requestId": request_id, "version": "$LATEST"}})
        else:
            self._write(self._prefix(function) + self._paint(_DIM, start_line(request_id)))

    def output(self, function: str, line: str, request_id: str | None = None) -> None:
        """One line the handler printed or logged."""
        if self.format == "json":
            record: dict[str, Any] = {"type": "function", "function": function, "record": line}
            if request_id:
                record["requestId"] = request_id
            self._json(record)
            return
        if self.colour and (line.startswith("[ERROR]") or line.startswith("Traceback")):
            line = self._paint(_RED, line)
        self._write(self._prefix(function) + line)

    def end(self, function: str, report: Report) -> None:
        """END and REPORT lines (JSON: one platform.report event)."""
        if self.format == "json":
            self._json({"type": "platform.report", "function": function,
                        "record": {"requestId": report.request_id, "status": report.status,
                                   "metrics": report.metrics()}})
            return
        prefix = self._prefix(function)
        self._write(prefix + self._paint(_DIM, end_line(report.request_id)))
        self._write(prefix + self._paint(_DIM, report.text()))

    def notice(self, text: str) -> None:
        """One line of the emulator's own (a reload, chaos): `apigw-local | …`."""
        if self.format == "json":
            self._json({"type": "notice", "record": text})
        else:
            self._write(self._paint(_BOLD, "apigw-local".ljust(self._width)) + " | " + text)

    def gateway(self, record: GatewayRecord) -> None:
        if self.format == "json":
            out: dict[str, Any] = {"type": "gateway", "api": record.api,
                                   "routeKey": record.route_key, "status": record.status,
                                   "durationMs": round(record.duration_ms, 3)}
            for key, value in (("function", record.function),
                               ("connectionId", record.connection_id),
                               ("requestId", record.request_id), ("error", record.error)):
                if value:
                    out[key] = value
            self._json(out)
            return
        failed = not (isinstance(record.status, int) and record.status < 400)
        if isinstance(record.status, int) and record.api == "websocket" \
                and record.route_key == "$disconnect":
            failed = False  # a close code, not an error status
        status = self._paint(_RED if failed else _BOLD, str(record.status))
        parts = [record.route_key.ljust(20)]
        if record.connection_id:
            parts.append(f"conn={record.connection_id}")
        parts += [status, f"{record.duration_ms:7.1f} ms"]
        if record.function:
            parts.append(f"→ {record.function}")
        if record.error:
            parts.append(self._paint(_RED, record.error[:300]))
        self._write(self._paint(_BOLD, "gateway".ljust(self._width)) + " | " + "  ".join(parts))


def _stderr_line(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


_peaks: dict[int, tuple[float, int | None]] = {}  # pid → (when read, MB)


def peak_rss_mb(pid: int, max_age: float = 1.0) -> int | None:
    """A process's peak resident memory in MB (Linux: VmHWM in /proc/PID/status), as Lambda's
    Max Memory Used; None where it cannot be read. Read at most once per `max_age` seconds
    per process: the gateway's loop reports every invocation, and a busy worker serves
    hundreds a second."""
    now = time.monotonic()
    cached = _peaks.get(pid)
    if cached is not None and now - cached[0] < max_age:
        return cached[1]
    if len(_peaks) > 4096:  # workers come and go: forget the stale ones
        _peaks.clear()
    value = _read_peak(pid)
    _peaks[pid] = (now, value)
    return value


def _read_peak(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return math.ceil(int(line.split()[1]) / 1024)
    except (OSError, ValueError, IndexError):
        return None
    return None


def route_status(record: Any) -> int | str:
    """What the route answered, for the gateway line: the handler's statusCode, 200 for a
    plain return, 500 for a failed integration (the HTTP API's answer; a WebSocket route
    sends its error frame and stays open)."""
    if record.status != "ok":
        return 500
    code = getattr(record, "payload_status", None)
    return code if isinstance(code, int) else 200


def report_of(record: Any) -> Report:
    """The REPORT figures of an invocation record (Duration without the init phase)."""
    init = record.init_duration_ms
    status = "success" if record.status == "ok" else (
        "timeout" if record.status == "Sandbox.Timedout" else "error")
    return Report(record.request_id, max(0.0, record.duration_ms - (init or 0.0)),
                  record.memory_size_mb, record.max_memory_mb, init, status)


def lambda_block(record: Any) -> list[str]:
    """The invocation's lines as CloudWatch keeps them: START, the handler's, END, REPORT."""
    if not record.request_id:
        return list(record.logs)
    return [start_line(record.request_id), *record.logs, end_line(record.request_id),
            report_of(record).text()]


class LogObserver:
    """The gateway's observer that prints each invocation as a Lambda log block (START, the
    handler's lines, END, REPORT) and the gateway's own line for its route."""

    def __init__(self, writer: LogWriter) -> None:
        self.writer = writer

    def invocation(self, record: Any) -> None:
        with self.writer.block():
            self._invocation(record)

    def _invocation(self, record: Any) -> None:
        w = self.writer
        if record.request_id:  # "" when the runtime itself failed: no Lambda request ran
            w.start(record.function, record.request_id)
            for line in record.logs:
                w.output(record.function, line, record.request_id)
            w.end(record.function, report_of(record))
        api = "websocket" if record.connection_id else "http"
        error = None if record.status == "ok" else record.status
        w.gateway(GatewayRecord(api, record.route_key, route_status(record), record.duration_ms,
                                record.function, record.connection_id, record.request_id,
                                error))

    def connection(self, event: str, info: Any, detail: Any) -> None:
        pass  # the $connect and $disconnect invocations already have their lines

    def line(self, function: str, text: str) -> None:
        """A line a worker printed outside any invocation (its init phase, a thread)."""
        self.writer.output(function, text)
