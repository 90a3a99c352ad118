"""Lambda-like worker processes: `pool.py` (`Runtime`, the pools), `process.py` (one worker
seen from the gateway), `forkserver.py` and `zygote.py` (the fork server's two ends),
`environment.py`, `channel.py` (the Management API channel's two ends). The worker itself
(`worker.py`) imports only `context.py`, `wire.py` and `channel.py`, so this package stays
light to import; nothing here imports `server/`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pool import Runtime

__all__ = ["Runtime"]


def __getattr__(name: str) -> Any:
    if name == "Runtime":
        from .pool import Runtime

        return Runtime
    raise AttributeError(name)
