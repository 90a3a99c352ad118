"""pytest plugin: the `apigw_local` and `ws_client` fixtures for SAM projects.

Installed with apigw-local (entry point `pytest11`), so a project's tests need no conftest:

    async def test_echo(ws_client):
        async with ws_client(query={"token": "t"}) as ws:
            await ws.send_json({"action": "echo", "text": "hi"})
            assert await ws.receive_json() == {"text": "hi"}

`apigw_local` yields the running emulator's `Endpoints` (websocket, http, connections,
dynamodb, tables). It starts on the project's template with options from the ini file
(`apigw_local_template`, `apigw_local_parameter_overrides`, …) and from the
`@pytest.mark.apigw_local(...)` marker (closest wins), on free ports. Tests asking for the same
options share one emulator for the session, as tests share a deployed stage; `fresh=True` gives
a test an emulator of its own. `ws_client` opens WebSocket clients to it (see
`apigw_local.testing.connect`). Full guide: docs/testing.md.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .testing import Endpoints, connect, serve

_INI = {
    "apigw_local_template": ("linelist", "SAM template(s) the apigw_local fixture serves; later "
                             "lines are overlays (default: template.yaml next to the ini file)"),
    "apigw_local_parameter_overrides": ("linelist", "KEY=VALUE template parameters, one a line; "
                                        "$VARIABLES are expanded from the environment"),
    "apigw_local_env_vars": ("string", "JSON file of environment overrides, as for sam local"),
    "apigw_local_seed": ("string", "JSON file of items put in the tables at start"),
    "apigw_local_chaos": ("string", "chaos spec, e.g. gone=0.2,seed=7 (docs/chaos.md)"),
}
_MARKER = ("apigw_local(**options): options of the apigw_local fixture for this test: template, "
           "parameter_overrides, env_vars, seed, chaos, max_concurrency, idle_timeout, prewarm, "
           "… (apigw_local.testing.serve's keywords); fresh=True: an emulator of its own")


def pytest_addoption(parser: pytest.Parser) -> None:
    for name, (kind, help_text) in _INI.items():
        parser.addini(name, help_text, type=kind)  # type: ignore[arg-type]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER)


def _base_dir(config: pytest.Config) -> Path:
    return Path(config.inipath).parent if config.inipath else Path(config.rootpath)


def _resolve(base: Path, value: str | os.PathLike[str]) -> Path:
    path = Path(os.path.expandvars(os.fspath(value))).expanduser()
    return path if path.is_absolute() else base / path


def _overrides(lines: Sequence[str] | Mapping[str, Any]) -> dict[str, str]:
    if isinstance(lines, Mapping):
        return {str(k): os.path.expandvars(str(v)) for k, v in lines.items()}
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise pytest.UsageError(f"apigw_local_parameter_overrides: expected KEY=VALUE, "
                                    f"got {line!r}")
        out[key.strip()] = os.path.expandvars(value.strip())
    return out


def options_for(config: pytest.Config, markers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`serve` keywords from the ini file, then each marker's (farthest first)."""
    base = _base_dir(config)
    options: dict[str, Any] = {}
    templates = config.getini("apigw_local_template") or ["template.yaml"]
    options["templates"] = [_resolve(base, t) for t in templates]
    overrides = _overrides(config.getini("apigw_local_parameter_overrides"))
    for name, key in (("apigw_local_env_vars", "env_vars"), ("apigw_local_seed", "seed")):
        if value := config.getini(name):
            options[key] = _resolve(base, value)
    if chaos := config.getini("apigw_local_chaos"):
        options["chaos"] = chaos
    for marker in markers:
        for key, value in marker.items():
            if key == "template":
                values = [value] if isinstance(value, str | os.PathLike) else list(value)
                options["templates"] = [_resolve(base, v) for v in values]
            elif key == "parameter_overrides":
                overrides.update(_overrides(value))
            elif key in ("env_vars", "seed", "static_dir") and isinstance(value, str | Path):
                options[key] = _resolve(base, value)
            else:
                options[key] = value
    if overrides:
        options["parameter_overrides"] = overrides
    missing = [str(t) for t in options["templates"] if not Path(t).is_file()]
    if missing:
        raise pytest.UsageError(
            f"apigw_local: template {missing[0]} not found; set apigw_local_template in the "
            f"ini file or @pytest.mark.apigw_local(template=...)")
    return options


def _key(options: Mapping[str, Any]) -> str:
    return repr(sorted((k, repr(v)) for k, v in options.items()))


class _Emulators:
    """One running emulator per distinct set of options, for the whole session."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._running: dict[str, Endpoints] = {}

    def get(self, options: dict[str, Any]) -> Endpoints:
        key = _key(options)
        if key not in self._running:
            self._running[key] = self._stack.enter_context(_serve(options))
        return self._running[key]

    def close(self) -> None:
        self._stack.close()


def _serve(options: dict[str, Any]) -> contextlib.AbstractContextManager[Endpoints]:
    options = dict(options)
    options.pop("fresh", None)
    templates = options.pop("templates")
    try:
        return serve(templates, **options)
    except TypeError as err:  # an unknown marker keyword
        raise pytest.UsageError(f"@pytest.mark.apigw_local: {err}") from None


@pytest.fixture(scope="session")
def apigw_local_emulators() -> Iterator[_Emulators]:
    emulators = _Emulators()
    try:
        yield emulators
    finally:
        emulators.close()


@pytest.fixture
def apigw_local(request: pytest.FixtureRequest,
                apigw_local_emulators: _Emulators) -> Iterator[Endpoints]:
    """The running emulator's endpoints (see the module doc for its options)."""
    markers = [m.kwargs for m in reversed(list(request.node.iter_markers("apigw_local")))]
    options = options_for(request.config, markers)
    if options.get("fresh"):
        with _serve(options) as endpoints:
            yield endpoints
    else:
        yield apigw_local_emulators.get(options)


@pytest.fixture
def ws_client(apigw_local: Endpoints) -> Any:
    """Opens WebSocket clients to the emulator: `async with ws_client(query=...) as ws`.

    Keywords are `apigw_local.testing.connect`'s (query, headers, subprotocols); `api=` picks
    another WebSocket API of the template by logical id, `url=` any URL.
    """

    def open_client(*, api: str | None = None, url: str | None = None, **kwargs: Any) -> Any:
        if url is None:
            url = apigw_local.websockets[api] if api else apigw_local.websocket
        return connect(url, **kwargs)

    return open_client
