"""The whole local stack, assembled: template → DynamoDB → TLS → the gateway core → workers →
both ports.

`Emulator.start()` binds both ports first (so port 0 works: the actual WebSocket port is known
before the template is read and its `execute-api` hosts are rewritten to `localhost:{port}`),
then loads the application, brings up DynamoDB (embedded moto or a given endpoint), creates
and seeds the tables and makes the local TLS material. Then it builds, in the order the data
flows back: the connection registry and the Management API core (`gateway/`), the runtime
whose workers post to that core in one hop, the integrations, and the two ports around them.
Nothing is built before what it needs, so nothing is bound late.
`Emulator.stop()` undoes it in reverse: clients are closed with 1001 and their `$disconnect`s
run (best effort, as in AWS), then sockets, workers and DynamoDB stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .architecture import check_native_code
from .chaos import Chaos
from .devloop import DevLoop
from .gateway.connections import ConnectionRegistry
from .gateway.management import FaultPolicy, Management
from .gateway.observer import Observer, Observers
from .gateway.quotas import Quotas
from .gateway.stage import Stage
from .gateway.throttle import RouteBuckets
from .model import Application
from .peers import OwnerCheck
from .runtime import channel
from .server.http11 import HttpConnection, make_factory
from .server.httpapi import HttpApiGateway
from .server.invoke import Integrations
from .server.listener import Listener
from .server.websocket import WebSocketPort
from .tls import TlsMaterial, ensure_tls

log = logging.getLogger("apigw_local")

@dataclass
class Config:
    templates: list[Path]
    host: str = "127.0.0.1"
    port: int = 3000  # HTTP API and web client; 0 = any free port
    ws_port: int = 3001  # WebSocket API and @connections (plain and TLS); 0 = any free port
    stage: str | None = None  # default: each WebSocket API's own stage
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    env_vars: dict[str, dict[str, str]] = field(default_factory=dict)  # like sam --env-vars
    # The backend (see backend.py): an embedded moto server unless one of these says otherwise.
    dynamodb_endpoint: str | None = None
    localstack: bool = False
    dynamodb_port: int = 0  # the embedded server's port; 0 = any free port
    persist: Path | None = None  # the embedded DynamoDB's state survives restarts there
    seed: Path | None = None  # put only into tables that were just created
    edge_port: int | None = None  # a LocalStack-style edge (edge.py); 0 = any free port
    static_dir: Path | None = None  # None: `web/` next to the first template, if it exists
    serve_static: bool = True
    endpoints_file: Path | None = None
    idle_timeout: float | None = None
    max_connection_duration: float | None = None
    max_concurrency: int | None = None  # workers per function; None: the runtime's default
    # Seconds an idle worker is kept warm before it is reclaimed, as Lambda reclaims idle
    # execution environments (it does not say when; minutes in practice).
    worker_idle_timeout: float = 300.0
    state_dir: Path | None = None  # TLS material; None: `.local/apigw-local` or a temp dir
    region: str = "us-east-1"
    account_id: str = "123456789012"
    stack_name: str = "apigw-local"
    prewarm: bool = False
    python: str | None = None  # interpreter for the workers
    # How workers' botocore reaches @connections on this emulator: "direct" (over a socket to
    # the gateway, see runtime/channel.py) or "http" (botocore's own HTTP/TLS request).
    management_transport: str = field(
        default_factory=lambda: os.environ.get("APIGW_LOCAL_MANAGEMENT_TRANSPORT", "direct"))
    # The developer loop (devloop.py): log format, hot reload, chaos, the inspector.
    log_format: str = "text"
    log_colour: bool | None = None  # None: on a terminal
    reload: bool = False
    chaos: Chaos | None = None
    inspector: bool = True


@dataclass(frozen=True)
class Endpoints:
    websocket: str  # ws:// stage URL of the first WebSocket API
    http: str  # HTTP API base URL
    connections: str  # Management API endpoint_url for boto3
    web: str | None  # the web client's URL (when a static directory is served)
    dynamodb: str | None  # DynamoDB endpoint URL (None: the template has no tables)
    tables: dict[str, str]  # logical id → table name
    websockets: dict[str, str] = field(default_factory=dict)  # API logical id → ws:// URL
    wss: str = ""  # the same stage over TLS
    ca_bundle: str = ""  # the local CA bundle (for https:// and wss:// clients)
    inspector: str | None = None  # the inspector page (loopback only)

    def as_json(self) -> dict[str, Any]:
        return {"websocket": self.websocket, "http": self.http,
                "connections": self.connections, "web": self.web,
                "inspector": self.inspector}


class Emulator:
    """`observers` see every invocation and connection (`gateway/observer.py`); `fault_policy`
    may answer Management API calls in place of the registry (`gateway/management.py`)."""

    def __init__(self, config: Config, *, observers: list[Observer] | None = None,
                 fault_policy: FaultPolicy | None = None) -> None:
        self.config = config
        self.devloop = DevLoop(log_format=config.log_format, colour=config.log_colour,
                               chaos=config.chaos, reload=config.reload,
                               inspector=config.inspector)
        self.observers = Observers([*self.devloop.observers(self), *(observers or [])])
        self.fault_policy = fault_policy or self.devloop.fault_policy()
        self.integrations: Integrations | None = None
        self.app: Application | None = None
        self.endpoints: Endpoints | None = None
        self.runtime: Any = None
        self.tls: TlsMaterial | None = None
        self.registry: ConnectionRegistry | None = None
        self.management: Management | None = None
        self.ws_port: WebSocketPort | None = None
        self.http_gateway: HttpApiGateway | None = None
        self.backend: Any = None  # backend.Backend
        self.edge_url: str | None = None  # the LocalStack-style edge, with --edge-port
        self._sockets: list[socket.socket] = []  # bound, not yet listening
        self._listeners: list[Listener] = []
        self._http_conns: set[HttpConnection] = set()
        self._ws_conns: set[HttpConnection] = set()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def quotas(self) -> Quotas:
        c = self.config
        kwargs: dict[str, float] = {}
        if c.idle_timeout is not None:
            kwargs["idle_timeout"] = c.idle_timeout
        if c.max_connection_duration is not None:
            kwargs["max_duration"] = c.max_connection_duration
        return Quotas(**kwargs)  # type: ignore[arg-type]

    async def start(self) -> Endpoints:
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> Endpoints:

        c = self.config
        http_sock, ws_sock = Listener.bind(c.host, c.port), None
        self._sockets.append(http_sock)
        ws_sock = Listener.bind(c.host, c.ws_port)
        self._sockets.append(ws_sock)
        http_port, ws_port = http_sock.getsockname()[1], ws_sock.getsockname()[1]

        self._domains = {"websocket_domain": f"localhost:{ws_port}",
                         "http_domain": f"localhost:{http_port}"}
        app = self._load()
        self.app = app
        check_native_code(app)
        # Where the functions' AWS calls go (embedded moto, an endpoint, LocalStack), and the
        # template's tables and secrets there: see backend.py.
        from .backend import Backend

        self.backend = Backend(app, endpoint=c.dynamodb_endpoint, localstack=c.localstack,
                               persist=c.persist, port=c.dynamodb_port, seed=c.seed)
        await self.backend.start()
        extra_env: dict[str, str] = {"AWS_REGION": app.region, "AWS_DEFAULT_REGION": app.region,
                                     **self.backend.worker_env}
        dynamodb_url = self.backend.endpoint_url or ""

        # TLS for https://{domainName}/{stage}: a local CA the workers trust via AWS_CA_BUNDLE.
        state_dir = c.state_dir or self._default_state_dir()
        self.tls = await _in_thread(ensure_tls, state_dir)
        extra_env["AWS_CA_BUNDLE"] = str(self.tls.ca_bundle)

        # The gateway core first: the stages, the registry and the Management API.
        now = time.monotonic()
        stages: list[Stage] = []
        for api in app.websocket_apis:
            name = c.stage or api.stage
            if any(s.name == name for s in stages):
                log.warning("WebSocket API %s: stage /%s is already served by another API; "
                            "skipped", api.logical_id, name)
                continue
            stages.append(Stage(api, name, now))
        quotas = self.quotas()
        self.registry = ConnectionRegistry(quotas)
        self.management = Management(self.registry, {s.name: s.api.api_id for s in stages},
                                     fault_policy=self.fault_policy)

        # Then the runtime, whose workers post to that core over their channel.
        from .runtime.pool import Runtime

        runtime_kwargs: dict[str, Any] = {
            "extra_env": extra_env, "env_overrides": c.env_vars,
            "max_concurrency": c.max_concurrency, "idle_timeout": c.worker_idle_timeout,
        }
        if c.python:
            runtime_kwargs["python"] = c.python
        if c.management_transport.lower() != "http":
            hosts = {f"localhost:{ws_port}", f"127.0.0.1:{ws_port}", f"{c.host}:{ws_port}"}
            extra_env[channel.HOSTS_ENV] = ",".join(sorted(hosts))
            plugins = os.environ.get(channel.PLUGINS_ENV)
            extra_env[channel.PLUGINS_ENV] = (f"{plugins},{channel.PLUGIN}" if plugins
                                              else channel.PLUGIN)
            runtime_kwargs["management"] = self.devloop.management(
                _direct_answer(self.management))
        extra_env.update(self.devloop.worker_env(channel.PLUGINS_ENV,
                                                 extra_env.get(channel.PLUGINS_ENV)))
        runtime_kwargs["on_log"] = self.devloop.logs.line
        self.runtime = Runtime(app, **runtime_kwargs)
        await self.runtime.start(prewarm=c.prewarm)

        # Last, the ports around them.
        integrations = Integrations(self.devloop.invoker(self.runtime), app.functions,
                                    observers=self.observers)
        self.integrations = integrations
        self.ws_port = WebSocketPort(
            stages, integrations, self.registry, self.management,
            domain_name=f"localhost:{ws_port}", region=app.region, account_id=app.account_id,
            quotas=quotas, observers=self.observers,
        )
        static_dir = self._static_dir()
        shown = "127.0.0.1" if c.host in ("0.0.0.0", "::", "") else c.host
        base_ws = f"ws://{shown}:{ws_port}"
        first_stage = stages[0].name if stages else (c.stage or "dev")
        endpoints = Endpoints(
            websocket=f"{base_ws}/{first_stage}",
            http=f"http://{shown}:{http_port}",
            connections=f"http://{shown}:{ws_port}/{first_stage}",
            web=f"http://{shown}:{http_port}/" if static_dir else None,
            dynamodb=dynamodb_url or None,
            tables={lid: t.name for lid, t in app.tables.items()},
            websockets={s.api.logical_id: f"{base_ws}/{s.name}" for s in stages},
            wss=f"wss://localhost:{ws_port}/{first_stage}",
            ca_bundle=str(self.tls.ca_bundle),
            inspector=self.devloop.inspector_url(f"http://{shown}:{http_port}"),
        )
        self.endpoints = endpoints
        endpoints_json = json.dumps(endpoints.as_json(), indent=2).encode()
        self.http_gateway = HttpApiGateway(
            app.http_routes, integrations, domain_name=f"localhost:{http_port}",
            account_id=app.account_id, static_dir=static_dir, endpoints_json=endpoints_json,
            cors_configurations=app.http_cors, throttling=app.http_throttling,
            web_origins=_web_origins(c.host, http_port) if static_dir else (),
        )
        self._sockets.clear()
        # Other local users are refused on the HTTP port (the dev sign-in, the inspector) and
        # on @connections; WebSocket clients are not (docs/security.md).
        self.owners = OwnerCheck()
        self._listeners = [
            Listener(http_sock, make_factory(self.http_gateway, self._http_conns,
                                             owners=self.owners),
                     self.tls.server_context),
            Listener(ws_sock, make_factory(self.ws_port, self._ws_conns, owners=self.owners,
                                           owners_on_upgrades=False),
                     self.tls.server_context),
        ]
        if c.edge_port is not None:
            self._listeners.append(self._edge(c.host, c.edge_port))
        self.devloop.start(self, http_port)
        for listener in self._listeners:
            listener.start()
        if c.endpoints_file is not None:
            c.endpoints_file.parent.mkdir(parents=True, exist_ok=True)
            # The file also names the backend's DynamoDB (the web client has no use for it).
            every = {**endpoints.as_json(), "dynamodb": endpoints.dynamodb,
                     **({"edge": self.edge_url} if self.edge_url else {})}
            # Whole or not at all: a script polling for the file never reads it half-written.
            partial = c.endpoints_file.with_name(c.endpoints_file.name + ".tmp")
            partial.write_text(json.dumps(every, indent=2) + "\n")
            os.replace(partial, c.endpoints_file)
        return endpoints

    def _edge(self, host: str, port: int) -> Listener:
        """The LocalStack-style edge port, before the backend (see edge.py)."""
        from .edge import LocalStackEdge

        services = ["dynamodb", "secretsmanager", "ssm", "sts"] if self.backend.embedded \
            else ["dynamodb"]
        edge = LocalStackEdge(lambda: self.management, self.backend.endpoint_url, services)
        listener = Listener(Listener.bind(host, port),
                            make_factory(edge, self._http_conns, owners=self.owners))
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        self.edge_url = f"http://{shown}:{listener.port}"
        return listener

    def _load(self) -> Application:
        from .template import load_application

        c = self.config
        return load_application(c.templates, parameter_overrides=c.parameter_overrides,
                                region=c.region, account_id=c.account_id,
                                stack_name=c.stack_name, **self._domains)

    async def reload_application(self) -> str | None:
        """Read the templates again (hot reload) and serve what changed from the next request
        on: routes, functions (their workers start afresh), new tables. Open connections stay.
        Returns what changed in one line (None: nothing served changed); a template that does
        not read raises, and the running application stays as it was."""
        from .gateway.routing import HttpRouter
        from .reload import describe_application_change

        old, new = self.app, await _in_thread(self._load)
        assert old is not None and self.runtime is not None and self.endpoints is not None
        what = describe_application_change(old, new)
        if self.backend is not None:
            await self.backend.provision(new)  # the tables a template adds
        self.runtime.replace_application(new)
        assert self.ws_port is not None and self.http_gateway is not None
        for api in new.websocket_apis:
            stage = self.ws_port.stages.get(self.config.stage or api.stage)
            if stage is not None and stage.api.logical_id == api.logical_id:
                stage.reload(api)
        self.http_gateway.router = HttpRouter(new.http_routes)
        if new.http_throttling != old.http_throttling:  # changed limits start full buckets
            self.http_gateway.throttles = {api: RouteBuckets(t)
                                           for api, t in new.http_throttling.items()}
        if self.integrations is not None:
            self.integrations.functions = new.functions
        self.app = new
        self.endpoints = replace(self.endpoints,
                                 tables={lid: t.name for lid, t in new.tables.items()})
        self.devloop.application_changed(self)
        return what

    def _default_state_dir(self) -> Path:
        candidate = Path.cwd() / ".local" / "apigw-local"
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            if os.access(candidate, os.W_OK):
                return candidate
        except OSError:
            pass
        self._tmp = tempfile.TemporaryDirectory(prefix="apigw-local-")
        return Path(self._tmp.name)

    def _static_dir(self) -> Path | None:
        c = self.config
        if not c.serve_static:
            return None
        if c.static_dir is not None:
            return c.static_dir
        web = Path(c.templates[0]).resolve().parent / "web"
        return web if web.is_dir() else None

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.devloop.stop()
        if self.ws_port is not None:
            with contextlib.suppress(Exception):
                await self.ws_port.shutdown()
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        for conn in list(self._http_conns) + list(self._ws_conns):
            conn.close()
        if self.runtime is not None:
            with contextlib.suppress(Exception):
                await self.runtime.aclose()
            self.runtime = None
        if self.backend is not None:
            await self.backend.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _direct_answer(management: Management) -> Any:
    """The workers' channel answered by the Management API core, in one hop. The headers are
    those the HTTP route puts on the wire (Content-Length and Connection included), so
    botocore parses the same response either way."""

    def answer(method: str, path: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        result = management.handle(method, path.partition("?")[0], (), body, signed=True)
        headers = list(result.headers)
        if result.status not in (204, 304):
            headers.append(("Content-Length", str(len(result.body))))
        headers.append(("Connection", "keep-alive"))
        return result.status, headers, b"" if result.status in (204, 304) else result.body

    return answer


def _web_origins(host: str, port: int) -> tuple[str, ...]:
    """The origins the served web client can be opened at (the loopback host's names)."""
    hosts = ["localhost", "127.0.0.1", "[::1]"]
    if host not in ("0.0.0.0", "::", "", *hosts, "::1"):
        hosts.append(f"[{host}]" if ":" in host else host)
    return tuple(f"{scheme}://{h}:{port}" for h in hosts for scheme in ("http", "https"))


async def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def load_env_vars(path: Path) -> dict[str, dict[str, str]]:
    """Read a `sam local --env-vars` JSON file: {"Parameters": {...}, "<Function>": {...}}."""
    data = json.loads(path.read_text())
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a JSON object of sections")
    out: dict[str, dict[str, str]] = {}
    for section, values in data.items():
        if not isinstance(values, Mapping):
            raise ValueError(f"{path}: section {section!r} must be an object")
        out[str(section)] = {str(k): "" if v is None else str(v) for k, v in values.items()}
    return out
