"""The fork server ("zygote"): `python -m apigw_local.runtime.zygote FD PARENT_PID PRELOAD_JSON`.

Why: a cold worker spends most of its init importing the same libraries as every other
worker (botocore's model code, boto3, ssl, urllib3, pydantic: ~0.7 s of CPU here). Ten cold
workers started at once on two cores each took over 10 s and hit Lambda's init limit. The
zygote imports those function-independent modules ONCE, then forks a worker per request in a
few milliseconds; the child applies the function's own environment, working directory and
`sys.path`, and only then imports the handler (its init phase proper).

What keeps a forked worker equivalent to a freshly executed one:

- only modules that read no environment at import time are preloaded (the defaults below;
  `aws_xray_sdk`, for one, reads `LAMBDA_TASK_ROOT` and friends at import, so it is NOT a
  good candidate). A preloaded module is shared by every function, so `pool.Runtime` never
  forks a worker whose code or layers ship their own copy of a preloaded package (a vendored
  `boto3` from `sam build`): that function's workers are started with a fresh interpreter;
- botocore's data files (the service models, endpoints, partitions) are read and parsed once,
  here, for the services the emulator serves (`SHARED_SERVICES`): every worker's botocore
  `Loader` whose search paths are the default ones starts from that cache, shared by all
  workers (copy-on-write) instead of parsed again by each, which was most of a cold worker's
  first `boto3.client()`/`boto3.resource()` (60–130 ms each here). Nothing in it depends on
  the environment: the data files only; a worker whose `AWS_DATA_PATH` adds search paths
  reads its own;
- what preloading made is moved out of the garbage collector's reach (`gc.freeze()`), so a
  collection in a worker does not write to, and thereby copy, every page the zygote holds;
- no thread may exist at fork time: the zygote reports its thread count after preloading and
  the runtime falls back to fresh interpreters if it is not 1;
- the child clears and rebuilds `os.environ` before anything else, calls `time.tzset()`,
  re-seeds `random` (CPython also does it at fork), resets the signal handlers the zygote
  installed, closes the zygote's descriptors and invalidates the import caches;
- every child sets PR_SET_PDEATHSIG against the zygote, which sets it against the gateway: a
  killed gateway takes the zygote and every worker with it. When the gateway closes the control
  socket, the zygote kills and reaps all its children before exiting. SIGINT is ignored
  throughout: Ctrl-C reaches the gateway, which decides when workers end.

Protocol over a SOCK_SEQPACKET socketpair (one message per datagram, JSON):
parent → zygote: `{"token", "env", "cwd", "argv"}` with descriptors attached (SCM_RIGHTS):
the worker's socket, its stdout and stderr pipes, and optionally its Management API channel;
`argv` is the worker's `main()` argument list, whose descriptor numbers refer to the attached
descriptors by position. zygote → parent: once `{"ready": true, "modules": [...], "threads": n}`,
then `{"token", "pid"}` (or `{"token", "error"}`) per fork and `{"exit": pid, "code": c}` when a
child ends (c is the returncode as `subprocess` reports it: negative for a signal).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading

# Heavy and function-independent; none reads the environment at import time.
DEFAULT_PRELOAD = (
    "json",
    "ssl",
    "urllib3",
    "botocore.session",
    "botocore.client",
    "botocore.handlers",
    "botocore.parsers",
    "boto3",
    "boto3.session",
    "pydantic.main",
)
# The services whose botocore data the zygote parses once (see the module doc): the two the
# emulator serves, as the handlers' clients and resources reach them.
SHARED_SERVICES = ("apigatewaymanagementapi", "dynamodb")
MAX_MESSAGE = 1 << 20


def _send(ctl: socket.socket, message: dict[str, object]) -> None:
    ctl.sendall(json.dumps(message).encode())


def _child(ctl: socket.socket, wake: tuple[int, int], message: dict, fds: list[int]) -> None:
    """In the forked child: become the worker. Never returns."""
    code = 0
    try:
        # Its own process group (killed whole when the worker goes), in the zygote's session:
        # a session of its own would also be a scheduler autogroup of its own.
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in wake:
            os.close(fd)
        zygote_pid = os.getppid()
        ctl.close()
        os.dup2(fds[1], 1)
        os.dup2(fds[2], 2)
        os.close(fds[1])
        os.close(fds[2])
        os.environ.clear()
        os.environ.update(message["env"])
        import time

        time.tzset()
        import random

        random.seed()
        importlib.invalidate_caches()
        os.chdir(message["cwd"])
        argv = [str(fds[int(a[3:])]) if isinstance(a, str) and a.startswith("fd:") else a
                for a in message["argv"]]
        argv[1] = str(zygote_pid)  # PDEATHSIG is set against the zygote, our real parent
        sys.argv = ["-m", *argv]
        from apigw_local.runtime import worker

        worker.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def share_botocore_data(services: tuple[str, ...] = SHARED_SERVICES) -> bool:
    """Parse botocore's data for `services` once and let every later default `Loader` start
    from that cache (see the module doc); False when botocore is not there or differs."""
    try:
        import boto3.session
        import botocore.loaders
    except ImportError:
        return False
    loader_class = botocore.loaders.Loader
    defaults = list(loader_class().search_paths)
    # Explicit region and dummy keys: nothing is read from the environment or sent anywhere.
    session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="zygote",
                                    aws_secret_access_key="zygote")
    warm = session._session.get_component("data_loader")
    shared = getattr(warm, "_cache", None)
    if not isinstance(shared, dict):
        return False
    for service in services:
        session.client(service, endpoint_url="http://127.0.0.1:9")
        if service in session.get_available_resources():
            session.resource(service, endpoint_url="http://127.0.0.1:9")
    create = loader_class.__init__

    def __init__(self: botocore.loaders.Loader, *args: object, **kwargs: object) -> None:
        create(self, *args, **kwargs)
        if self.search_paths == defaults:  # boto3 adds its own path after this, as for `warm`
            self._cache = shared

    loader_class.__init__ = __init__  # type: ignore[method-assign]
    return True


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ctl = socket.socket(fileno=int(argv[0]))
    parent_pid, preload = int(argv[1]), json.loads(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from apigw_local.runtime import worker

    worker.watch_parent(parent_pid)
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a missing optional package is not an error
            print(f"apigw-local zygote: not preloaded {name}: {exc}", file=sys.stderr)
    try:
        share_botocore_data()
    except Exception as exc:  # workers then parse their own, as without the zygote
        print(f"apigw-local zygote: botocore data not shared: {exc}", file=sys.stderr)
    gc.collect()
    gc.freeze()
    stdlib = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    modules = sorted({m.partition(".")[0] for m in sys.modules} - stdlib - {"apigw_local"})
    _send(ctl, {"ready": True, "modules": modules, "threads": threading.active_count()})

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    children: set[int] = set()

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)
            _send(ctl, {"exit": pid, "code": os.waitstatus_to_exitcode(status)})

    try:
        while True:
            try:
                readable, _, _ = select.select([ctl, wake_r], [], [])
            except InterruptedError:
                continue
            if wake_r in readable:
                try:
                    while os.read(wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                reap()
            if ctl in readable:
                data, fds, _flags, _addr = socket.recv_fds(ctl, MAX_MESSAGE, 8)
                if not data:
                    break  # the gateway is gone or closing: take the children with us
                message = json.loads(data)
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    pid = os.fork()
                except OSError as exc:
                    _send(ctl, {"token": message["token"], "error": str(exc)})
                    pid = -1
                if pid == 0:
                    _child(ctl, (wake_r, wake_w), message, fds)
                for fd in fds:
                    os.close(fd)
                if pid > 0:
                    children.add(pid)
                    _send(ctl, {"token": message["token"], "pid": pid})
                reap()  # a child may have exited before it was registered
    except (BrokenPipeError, ConnectionError):
        pass
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
