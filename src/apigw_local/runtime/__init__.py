"""Lambda-like worker processes. `Runtime` lives in `pool.py`; the worker imports only
`context.py` and `wire.py`, so this package stays light to import."""

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
