"""A Lambda-like worker: `python -m apigw_local.runtime.worker FD PARENT_PID PATHS_JSON [MGMT_FD]`.

Started by `pool.Runtime` with the function's environment (`_HANDLER`, `LAMBDA_TASK_ROOT`,
…) and its working directory set to the code directory, as Lambda starts its runtime in
/var/task. It imports the handler once (Lambda's init phase), then answers one request at a
time over the socket inherited as FD (see `wire.py`). stdout and stderr are left to the
handler; the parent forwards them line by line.

With MGMT_FD (a socket to the gateway), botocore's Management API calls to the emulator's own
endpoint are answered over that socket instead of HTTPS (see `channel.py`); the channel is
installed before the handler is imported, so every botocore client the handler creates is
offered to it.
The same `main()` runs in a child forked by the zygote (`zygote.py`).

Init errors are answered once (`Runtime.ImportModuleError`, `Runtime.HandlerNotFound`, …)
and the worker then exits, so the next invocation tries the import again in a fresh process.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import socket
import sys
import time
import traceback
from typing import Any

from apigw_local.runtime.context import LambdaContext
from apigw_local.runtime.wire import frame, read_frame_sync


def _error(error_type: str, message: str, tb: Any = None) -> dict[str, Any]:
    trace = traceback.format_list(traceback.extract_tb(tb)) if tb is not None else []
    return {"errorType": error_type, "errorMessage": message, "stackTrace": trace}


def _log_error(error: dict[str, Any]) -> None:
    # Lambda's Python runtime logs an unhandled error as "[ERROR] Type: message" + trace.
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
    if error["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines.extend(line.rstrip("\n") for line in error["stackTrace"])
    print("\n".join(lines), file=sys.stderr, flush=True)


class _RequestIdFilter(logging.Filter):
    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def _setup_logging() -> _RequestIdFilter:
    """The root handler Lambda's Python runtime installs: level, time, request id, message."""
    handler = logging.StreamHandler(sys.stdout)
    request_filter = _RequestIdFilter()
    handler.addFilter(request_filter)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.getLogger().addHandler(handler)
    return request_filter


def _load_handler(spec: str) -> tuple[Any, dict[str, Any] | None]:
    module_name, _, function_name = spec.rpartition(".")
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return None, _error(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        )
    except SyntaxError as exc:
        return None, _error(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}"
        )
    except Exception as exc:  # an exception raised at import time: the init phase failed
        return None, _error(type(exc).__name__, str(exc), exc.__traceback__)
    handler = getattr(module, function_name, None)
    if not callable(handler):
        return None, _error(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module "
            f"'{module_name}'"
        )
    return handler, None


def watch_parent(parent_pid: int) -> None:
    """Die with the parent even when busy in a handler (Linux); EOF covers the idle case."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    fd, parent_pid, paths = int(argv[0]), int(argv[1]), json.loads(argv[2])
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when
    # workers end (it closes the socket or kills them), so handlers never see SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent(parent_pid)

    # sys.path as Lambda builds it: the code, then the layers, then the runtime's own paths.
    # `-m` put the working directory (the code directory) first; replace it explicitly.
    rest = [p for p in sys.path[1:] if p not in paths]
    sys.path[:] = [*paths, *rest]
    if len(argv) > 3:
        from apigw_local.runtime import channel

        channel.install(int(argv[3]))

    sock = socket.socket(fileno=fd)
    stream = sock.makefile("rb")
    request_filter = _setup_logging()

    handler, init_error = _load_handler(os.environ["_HANDLER"])
    if init_error is not None:
        _log_error(init_error)
        sock.sendall(frame(json.dumps({"ready": False, "error": init_error}).encode()))
        stream.close()
        sock.close()
        return
    sock.sendall(frame(b'{"ready":true}'))

    env = os.environ
    function_name = env["AWS_LAMBDA_FUNCTION_NAME"]
    version = env["AWS_LAMBDA_FUNCTION_VERSION"]
    arn = env["APIGW_LOCAL_FUNCTION_ARN"]
    memory = env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
    group = env["AWS_LAMBDA_LOG_GROUP_NAME"]
    stream_name = env["AWS_LAMBDA_LOG_STREAM_NAME"]
    dumps = json.dumps

    while True:
        body = read_frame_sync(stream)
        if body is None:  # the runtime closed its end: time to go
            break
        request = json.loads(body)
        request_id = request["id"]
        request_filter.request_id = request_id
        env["_X_AMZN_REQUEST_ID"] = request_id
        context = LambdaContext(
            aws_request_id=request_id,
            deadline_ms=request["deadline"],
            function_name=function_name,
            function_version=version,
            invoked_function_arn=arn,
            memory_limit_in_mb=memory,
            log_group_name=group,
            log_stream_name=stream_name,
        )
        try:
            result = handler(request["event"], context)
        except Exception as exc:
            error = _error(type(exc).__name__, str(exc), exc.__traceback__)
            _log_error(error)
            answer = dumps({"error": error, "fatal": False}).encode()
        else:
            try:
                answer = b'{"ok":' + dumps(result).encode() + b"}"
            except (TypeError, ValueError) as exc:
                error = _error("Runtime.MarshalError", f"Unable to marshal response: {exc}")
                _log_error(error)
                answer = dumps({"error": error, "fatal": False}).encode()
        sys.stdout.flush()
        sys.stderr.flush()
        sock.sendall(frame(answer))


if __name__ == "__main__":
    main()
