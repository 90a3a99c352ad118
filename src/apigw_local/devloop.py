"""The developer loop around a running emulator: Lambda-style logs, the inspector, chaos and
hot reload, each plugged into a seam the emulator offers (observers, the fault policy, the
workers' channel and environment, the invoker, the HTTP port, the runtime's recycling).

The emulator builds one `DevLoop` from its config and calls it at those points; what each
piece does lives in its own module (`logs`, `inspector/`, `chaos`, `reload`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import chaos as chaos_mod
from .chaos import Chaos, ChaosPolicy
from .inspector.actions import EmulatorActions
from .inspector.model import InspectorModel
from .inspector.observer import InspectorObserver
from .inspector.service import InspectorService
from .logs import LogObserver, LogWriter
from .reload import ChangeMap, Reloader, Watcher

INSPECTOR_PATH = "/_apigw-local/"


class DevLoop:
    def __init__(self, *, log_format: str = "text", colour: bool | None = None,
                 chaos: Chaos | None = None, reload: bool = False, inspector: bool = True,
                 write: Any = None) -> None:
        self.writer = LogWriter(log_format, colour=colour, write=write)
        self.logs = LogObserver(self.writer)
        self.chaos = ChaosPolicy(chaos) if chaos is not None and chaos.active else None
        self.reload = reload
        self.model = InspectorModel() if inspector else None
        self.inspector: InspectorService | None = None
        self.watcher: Watcher | None = None
        self._emulator: Any = None

    # -- seams ---------------------------------------------------------------------------------

    def observers(self, emulator: Any) -> list[Any]:
        self._emulator = emulator
        observers: list[Any] = [self.logs]
        if self.model is not None:
            observers.append(InspectorObserver(
                self.model, api_names=self._api_name,
                connections=lambda: iter(emulator.registry or ())))
        return observers

    def _api_name(self, api_id: str) -> str:
        app = self._emulator.app if self._emulator else None
        for api in (app.websocket_apis if app else ()):
            if api.api_id == api_id:
                return api.logical_id
        return api_id

    def fault_policy(self) -> Any:
        return chaos_mod.ChaosFaults(self.chaos, self.drop) if self.chaos else None

    def drop(self, connection_id: str) -> None:
        """Drop a connection without a close frame, as a network failure does (1006)."""
        registry = self._emulator.registry if self._emulator else None
        conn = registry.get(connection_id) if registry is not None else None
        abort = getattr(getattr(conn, "transport", None), "abort", None)
        if abort is not None:
            abort()

    def worker_env(self, plugins_env: str, plugins: str | None) -> dict[str, str]:
        """The workers' environment for chaos in DynamoDB (a botocore plugin)."""
        if self.chaos is None or not self.chaos.chaos.dynamodb:
            return {}
        env = chaos_mod.dynamodb_env(self.chaos.chaos, self.chaos.seed)
        env[plugins_env] = f"{plugins},{chaos_mod.PLUGIN}" if plugins else chaos_mod.PLUGIN
        return env

    def management(self, answer: Any) -> Any:
        if self.chaos is None or not self.chaos.chaos.latency[1]:
            return answer
        return chaos_mod.delayed(self.chaos, answer)

    def invoker(self, runtime: Any) -> Any:
        c = self.chaos.chaos if self.chaos else None
        if c is None or not (c.drop or c.timeout):
            return runtime
        functions = lambda: self._emulator.app.functions  # noqa: E731 - follows reloads
        return chaos_mod.ChaosInvoker(runtime, self.chaos, self.drop,
                                      lambda f: functions()[f].timeout if f in functions()
                                      else 3.0)

    # -- around the running emulator -----------------------------------------------------------

    def start(self, emulator: Any, http_port: int) -> None:
        """Mount the inspector on the HTTP port and start watching files (after `start`)."""
        if self.model is not None:
            observer = next(o for o in emulator.observers.observers
                            if isinstance(o, InspectorObserver))
            self.inspector = InspectorService(self.model, EmulatorActions(emulator, self.model),
                                              port=http_port, poll=observer.poll)
            emulator.http_gateway.inspector = self.inspector
            self.inspector.start()
            if self.chaos is not None:
                self.model.notice(f"chaos: {self.chaos.chaos.describe()} "
                                  f"(seed {self.chaos.seed})")
        if self.reload:
            reloader = Reloader(recycle=emulator.runtime.recycle,
                                reload_template=emulator.reload_application,
                                say=self.say,
                                root=Path(emulator.config.templates[0]).resolve().parent)
            self.watcher = Watcher(self.change_map(emulator), reloader)
            self.watcher.start()

    def change_map(self, emulator: Any) -> ChangeMap:
        return ChangeMap.build(emulator.config.templates, emulator.app.functions)

    def say(self, text: str) -> None:
        """A one-line notice: in the log and on the inspector's page."""
        self.writer.notice(text)
        if self.model is not None:
            self.model.notice(text)

    def application_changed(self, emulator: Any) -> None:
        if self.watcher is not None:
            self.watcher.update(self.change_map(emulator))

    def banner(self, endpoints: Any) -> list[str]:
        lines = []
        if endpoints.inspector:
            lines.append(f"  inspector       {endpoints.inspector}  (loopback only)")
        if self.watcher is not None:
            m = self.watcher.change_map
            lines.append(f"  reload          watching {len(m.roots())} code directories and "
                         f"{len(m.templates)} template(s)")
        if self.chaos is not None:
            lines.append(f"  chaos           {self.chaos.chaos.describe()} "
                         f"(seed {self.chaos.seed}; --chaos-seed {self.chaos.seed} repeats it)")
        return lines

    def inspector_url(self, http_base: str) -> str | None:
        return http_base + INSPECTOR_PATH if self.model is not None else None

    async def stop(self) -> None:
        if self.watcher is not None:
            await self.watcher.stop()
            self.watcher = None
        if self.inspector is not None:
            await self.inspector.stop()
            self.inspector = None
        if self.chaos is not None:
            self.writer.notice(f"chaos: {self.chaos.summary()} (seed {self.chaos.seed})")
