"""Hot reload's map from saved paths to what they concern, and the watcher on a real directory."""

import asyncio
from dataclasses import replace
from pathlib import Path

from apigw_local.model import Application, Function, HttpRoute, WebSocketApi, WebSocketRoute
from apigw_local.reload import Change, ChangeMap, Watcher, describe_application_change, ignored


def _fn(lid, code, layers=()):
    return Function(lid, lid, Path(code), "app.handler", "python3.13", layers=tuple(layers))


def _map(tmp_path):
    layer = tmp_path / "layers/shared"
    functions = {
        "Connect": _fn("Connect", tmp_path / "functions/connect", [layer / "python"]),
        "Message": _fn("Message", tmp_path / "functions/message", [layer / "python"]),
        "Verify": _fn("Verify", tmp_path / "functions/verify"),
    }
    return ChangeMap.build([tmp_path / "template.yaml", tmp_path / "local/overlay.yaml"],
                           functions)


def test_code_layer_and_template_changes(tmp_path):
    m = _map(tmp_path)
    assert m.classify([tmp_path / "functions/message/app.py"]).functions == {"Message"}
    layer = m.classify([str(tmp_path / "layers/shared/python/realtime/chat.py")])
    assert layer.functions == {"Connect", "Message"} and not layer.template
    both = m.classify([tmp_path / "local/overlay.yaml", tmp_path / "functions/verify/x.py"])
    assert both.template and both.functions == {"Verify"}
    assert not m.classify([tmp_path / "README.md", tmp_path / "web/app.js"])


def test_caches_and_editor_files_are_not_changes(tmp_path):
    m = _map(tmp_path)
    noise = [tmp_path / "functions/message/__pycache__/app.cpython-313.pyc",
             tmp_path / "functions/message/.app.py.swp", tmp_path / "functions/message/app.py~",
             tmp_path / "functions/message/.#app.py"]
    assert not m.classify(noise)
    assert ignored(Path("/x/node_modules/a.js")) and not ignored(Path("/x/app.py"))


def test_roots_are_code_dirs_without_nesting_and_template_dirs_flat(tmp_path):
    m = _map(tmp_path)
    assert m.roots() == [(tmp_path / d).resolve() for d in (
        "functions/connect", "functions/message", "functions/verify", "layers/shared/python")]
    nested = ChangeMap.build([], {"A": _fn("A", tmp_path / "src"),
                                  "B": _fn("B", tmp_path / "src/b")})
    assert nested.roots() == [(tmp_path / "src").resolve()]
    assert m.template_dirs() == [tmp_path.resolve(), (tmp_path / "local").resolve()]


def test_describe_change():
    change = Change(frozenset({"Message", "Connect"}), False,
                    (Path("/p/functions/message/app.py"), Path("/p/layers/x.py")))
    assert change.describe(Path("/p")) == "Connect, Message ← functions/message/app.py (+1 more)"


def _app(routes, functions, http=()):
    api = WebSocketApi("Api", "api", "abc", "$request.body.action",
                       {k: WebSocketRoute(k, f) for k, f in routes.items()}, "dev")
    return Application(functions=functions, websocket_apis=(api,), http_routes=tuple(http),
                       tables={}, parameters={})


def test_application_change_in_one_line():
    fns = {"Message": _fn("Message", "/m"), "Connect": _fn("Connect", "/c")}
    old = _app({"$connect": "Connect", "$default": "Message", "ping": "Message"}, fns)
    assert describe_application_change(old, old) is None
    more = dict(fns, Audit=_fn("Audit", "/a"))
    more["Message"] = replace(fns["Message"], timeout=10.0)
    new = _app({"$connect": "Connect", "$default": "Audit", "send": "Message"}, more,
               [HttpRoute("GET", "/audit", "Audit", "ServerlessHttpApi")])
    assert describe_application_change(old, new) == (
        "routes +GET /audit +send -ping ~$default; functions +Audit ~Message")


async def test_watcher_reports_a_saved_file(tmp_path):
    code = tmp_path / "functions/message"
    code.mkdir(parents=True)
    (code / "app.py").write_text("x = 1\n")
    template = tmp_path / "template.yaml"
    template.write_text("Resources: {}\n")
    m = ChangeMap.build([template], {"Message": _fn("Message", code)})
    seen: asyncio.Queue = asyncio.Queue()

    async def on_change(change):
        await seen.put(change)

    watcher = Watcher(m, on_change, debounce_ms=50)
    watcher.start()
    try:
        await asyncio.sleep(0.3)  # the inotify watches are in place
        (code / "app.py").write_text("x = 2\n")
        change = await asyncio.wait_for(seen.get(), 10)
        assert change.functions == {"Message"} and not change.template
        (code / "__pycache__").mkdir()
        (code / "__pycache__" / "app.cpython-313.pyc").write_bytes(b"\0")
        template.write_text("Resources: {X: 1}\n")
        change = await asyncio.wait_for(seen.get(), 10)
        assert change.template and not change.functions
    finally:
        await watcher.stop()
