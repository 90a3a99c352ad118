"""moto's instance tracking, made weak: memory that follows the data stored, not the requests.

moto's `BaseModel.__new__` appends every model object it ever creates to a class-level list,
`instances_tracked`, that only its dashboard (`/moto-api/data.json`) and its reset read. In
DynamoDB that includes the deep copy of every item each `GetItem`, `Query` and `Scan` returns,
so a long-lived server keeps every item it ever answered: under `make soak` (every message
fanned out through a Query of the room's members) that was about 52 KiB per message sent.

`track_weakly()` gives the models the same registry, but by weak reference: an object is
listed while something else (a table, a backend) holds it, and freed when nothing does.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

__all__ = ["WeakInstances", "track_weakly"]


class WeakInstances:
    """What `instances_tracked` is used as (`append`, iteration, `len`), holding weak
    references. Keyed by `id` (moto's models define `__eq__` without `__hash__`): an object's
    entry leaves in its weakref's callback, before its id can be reused."""

    def __init__(self) -> None:
        self._refs: dict[int, _Ref] = {}
        self._forget = self._drop  # one callback object shared by every reference

    def append(self, instance: Any) -> None:
        try:
            ref = _Ref(instance, self._forget)
        except TypeError:  # a class with __slots__ and no __weakref__: not listed
            return
        ref.key = id(instance)
        self._refs[ref.key] = ref

    def _drop(self, ref: _Ref) -> None:
        self._refs.pop(ref.key, None)

    def __iter__(self) -> Iterator[Any]:
        for ref in list(self._refs.values()):
            instance = ref()
            if instance is not None:
                yield instance

    def __len__(self) -> int:
        return len(self._refs)


class _Ref(weakref.ref):  # type: ignore[type-arg]
    __slots__ = ("key",)


def track_weakly() -> None:
    """Make every moto model (loaded now or later) track its instances weakly. Idempotent."""
    from moto.core.common_models import BaseModel

    if getattr(BaseModel.__new__, "_weak", False):
        return

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        instance = super(BaseModel, cls).__new__(cls)  # type: ignore[misc]
        tracked = cls.__dict__.get("instances_tracked")
        if not isinstance(tracked, WeakInstances):  # the class's first, or moto's reset
            tracked = WeakInstances()
            cls.instances_tracked = tracked  # type: ignore[attr-defined]
        tracked.append(instance)
        return instance

    __new__._weak = True  # type: ignore[attr-defined]
    BaseModel.__new__ = staticmethod(__new__)  # type: ignore[assignment,method-assign]
