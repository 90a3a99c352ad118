"""Hot reload: which functions a saved file concerns, and a watcher that reports it.

Lambda runs the code a function was last deployed with; locally, "deployed" is "saved". A
change under a function's CodeUri concerns that function, a change under a layer every function
that uses the layer, and a change to a template file the whole application (routes, functions,
tables may differ: the emulator re-reads it and says what changed in one line).

`ChangeMap` (pure) maps paths to those targets; `Watcher` waits for changes with `watchfiles`
(inotify on Linux, debounced, editors' temporary files ignored) and hands each batch over as a
`Change`. What a change does (recycle workers, swap routes) is the emulator's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .model import Application, Function

log = logging.getLogger("apigw_local.reload")
# watchfiles says "N changes detected" at INFO for every batch; our own line says what it meant.
logging.getLogger("watchfiles").setLevel(logging.WARNING)

# Never code: byte-code caches, VCS and tool state, editors' swap and backup files.
_IGNORED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".mypy_cache", ".pytest_cache",
                           ".ruff_cache", "node_modules", ".aws-sam", ".venv", ".local"})
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".swx", ".swo", "~", ".tmp")


def ignored(path: Path) -> bool:
    if any(part in _IGNORED_DIRS for part in path.parts):
        return True
    name = path.name
    return name.startswith(".#") or name.endswith(_IGNORED_SUFFIXES) or name == "4913"


@dataclass(frozen=True)
class Change:
    """One batch of saved files, by what they concern."""

    functions: frozenset[str] = frozenset()  # logical ids whose code or layer changed
    template: bool = False  # a template file changed: reload the application
    paths: tuple[Path, ...] = ()

    def __bool__(self) -> bool:
        return self.template or bool(self.functions)

    def describe(self, root: Path | None = None) -> str:
        """`Message, Connect ← functions/message/app.py (+2 more)`."""
        shown = [_relative(p, root) for p in self.paths[:1]]
        more = f" (+{len(self.paths) - 1} more)" if len(self.paths) > 1 else ""
        targets = "template" if self.template else ", ".join(sorted(self.functions))
        return f"{targets} ← {', '.join(shown)}{more}"


def _relative(path: Path, root: Path | None) -> str:
    if root is not None:
        with contextlib.suppress(ValueError):
            return str(path.relative_to(root))
    return str(path)


@dataclass
class ChangeMap:
    """Paths → functions and templates, for one version of the application."""

    templates: tuple[Path, ...]
    code: dict[Path, frozenset[str]] = field(default_factory=dict)  # directory → functions

    @classmethod
    def build(cls, templates: Sequence[Path], functions: Mapping[str, Function]) -> ChangeMap:
        code: dict[Path, set[str]] = {}
        for fn in functions.values():
            for directory in (fn.code_uri, *fn.layers):
                code.setdefault(Path(directory).resolve(), set()).add(fn.logical_id)
        return cls(tuple(Path(t).resolve() for t in templates),
                   {d: frozenset(ids) for d, ids in code.items()})

    def roots(self) -> list[Path]:
        """The code directories, watched recursively, without those nested in another one."""
        roots: list[Path] = []
        for path in sorted(self.code, key=lambda p: (len(p.parts), p)):
            if not any(path.is_relative_to(r) for r in roots):
                roots.append(path)
        return roots

    def template_dirs(self) -> list[Path]:
        """The templates' directories, watched flat (a project root holds far more than code:
        virtualenvs, node_modules), for editors that save by renaming a new file in place."""
        return sorted({t.parent for t in self.templates})

    def classify(self, paths: Iterable[str | Path]) -> Change:
        functions: set[str] = set()
        template = False
        seen: list[Path] = []
        for raw in paths:
            path = Path(raw).resolve()
            if ignored(path):
                continue
            hit = False
            if path in self.templates:
                template = hit = True
            for directory, ids in self.code.items():
                if path == directory or path.is_relative_to(directory):
                    functions |= ids
                    hit = True
            if hit:
                seen.append(path)
        return Change(frozenset(functions), template, tuple(sorted(seen)))


def describe_application_change(old: Application, new: Application) -> str | None:
    """One line saying what a template change altered (None: nothing the emulator serves):
    `routes +$default/ping -sendmessage; functions ~Message +Audit; tables +Audit`."""

    def routes(app: Application) -> set[str]:
        keys = {f"{api.logical_id}:{key}→{r.function}" for api in app.websocket_apis
                for key, r in api.routes.items()}
        keys |= {f"{r.method} {r.path}→{r.function}" for r in app.http_routes}
        return keys

    def short(key: str) -> str:
        return key.split(":", 1)[-1].split("→")[0]

    parts: list[str] = []
    before, after = routes(old), routes(new)
    added = sorted({short(k) for k in after - before})
    removed = sorted({short(k) for k in before - after} - set(added))
    changed = sorted(set(added) & {short(k) for k in before - after})
    added = [k for k in added if k not in changed]
    if added or removed or changed:
        parts.append("routes " + " ".join([*(f"+{k}" for k in added),
                                           *(f"-{k}" for k in removed),
                                           *(f"~{k}" for k in changed)]))
    fn_changes = [*(f"+{k}" for k in sorted(set(new.functions) - set(old.functions))),
                  *(f"-{k}" for k in sorted(set(old.functions) - set(new.functions))),
                  *(f"~{k}" for k in sorted(set(old.functions) & set(new.functions))
                    if old.functions[k] != new.functions[k])]
    if fn_changes:
        parts.append("functions " + " ".join(fn_changes))
    table_changes = [*(f"+{k}" for k in sorted(set(new.tables) - set(old.tables))),
                     *(f"-{k}" for k in sorted(set(old.tables) - set(new.tables)))]
    if table_changes:
        parts.append("tables " + " ".join(table_changes))
    return "; ".join(parts) or None


OnChange = Callable[[Change], Awaitable[None]]


class Watcher:
    """Watches a `ChangeMap`'s roots and awaits `on_change` for each relevant batch.

    `update(change_map)` swaps the map after a template reload (the roots may move). Runs
    until `stop()`; a failing `on_change` is logged and watching goes on.
    """

    def __init__(self, change_map: ChangeMap, on_change: OnChange, *,
                 debounce_ms: int = 150) -> None:
        self.change_map = change_map
        self.on_change = on_change
        self.debounce_ms = debounce_ms
        self._stop = asyncio.Event()
        self._restart = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="reload-watcher")

    def update(self, change_map: ChangeMap) -> None:
        old = self.change_map
        if (change_map.roots(), change_map.template_dirs()) != (old.roots(), old.template_dirs()):
            self._restart.set()
        self.change_map = change_map

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._restart.clear()
            stop_or_restart = asyncio.Event()
            relay = asyncio.ensure_future(_first(self._stop, self._restart, stop_or_restart))
            code = [r for r in self.change_map.roots() if r.exists()]
            flat = [d for d in self.change_map.template_dirs() if d.exists()]
            watches = [self._watch(code, True, stop_or_restart)] if code else []
            watches.append(self._watch(flat, False, stop_or_restart))
            try:
                await asyncio.gather(*watches)
            finally:
                relay.cancel()

    async def _watch(self, roots: list[Path], recursive: bool, stop: asyncio.Event) -> None:
        from watchfiles import awatch

        async for batch in awatch(*roots, stop_event=stop, debounce=self.debounce_ms, step=50,
                                  watch_filter=lambda _c, p: not ignored(Path(p)),
                                  recursive=recursive):
            change = self.change_map.classify(p for _, p in batch)
            if not change:
                continue
            try:
                await self.on_change(change)
            except Exception:
                log.exception("reload failed")


async def _first(a: asyncio.Event, b: asyncio.Event, out: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        out.set()


class Reloader:
    """What a saved file does: the functions it concerns get fresh workers (the next
    invocation imports the new code; open WebSocket connections are untouched), and a
    template change re-reads the application. Each reload is said in one line."""

    def __init__(self, *, recycle: Callable[[str], None],
                 reload_template: Callable[[], Awaitable[str | None]],
                 say: Callable[[str], None], root: Path | None = None) -> None:
        """`reload_template` re-reads the templates and returns what changed (None: nothing
        served changed); it raises (with a message for the user) when the new template is
        broken, and the running application stays."""
        self.recycle = recycle
        self.reload_template = reload_template
        self.say = say
        self.root = root

    async def __call__(self, change: Change) -> None:
        if change.template:
            try:
                what = await self.reload_template()
            except Exception as err:
                self.say(f"template not reloaded ({err}); still serving the previous one")
                return
            self.say(f"template reloaded: {what}" if what else
                     "template reloaded: routes, functions and tables unchanged")
            return
        for function in sorted(change.functions):
            self.recycle(function)
        self.say(f"reloaded {change.describe(self.root)}")
