"""Hot reload through real sockets: edit a handler, a layer and the template of a running
emulator; the next invocation runs the new code while an open WebSocket stays open; a syntax
error answers as Lambda does and the next good save recovers."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from apigw_local.testing import connect, serve

FIXTURE = Path(__file__).parents[1] / "fixtures" / "devloop"


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def inspector_state(endpoints) -> dict:
    request = urllib.request.Request(endpoints.inspector + "api/state")
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def save(path: Path, text: str) -> None:
    """Write as an editor does: a new file renamed over the old one."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    tmp.replace(path)


def wait_for(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture
def project(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "project")
    return tmp_path / "project"


def test_code_layer_and_template_changes_reach_the_next_invocation(project):
    app_py = project / "echo" / "app.py"
    layer_py = project / "shared" / "python" / "shared_version.py"
    with serve(project / "template.yaml", reload=True) as endpoints:
        version_url = endpoints.http + "/version"
        assert get(version_url) == (200, {"version": "v1", "layer": "layer-1"})

        async def scenario() -> None:
            async with connect(endpoints.websocket) as ws:
                await ws.send("a")
                assert (await ws.receive_json(timeout=15))["version"] == "v1"

                save(app_py, app_py.read_text().replace('VERSION = "v1"', 'VERSION = "v2"'))
                await asyncio.to_thread(wait_for, lambda: get(version_url)[1].get("version")
                                        == "v2")
                await ws.send("b")
                frame = await ws.receive_json(timeout=15)
                assert (frame["version"], frame["body"]) == ("v2", "b")  # same connection

                save(layer_py, 'LAYER = "layer-2"\n')
                await asyncio.to_thread(wait_for, lambda: get(version_url)[1].get("layer")
                                        == "layer-2")
                await ws.send("c")
                assert (await ws.receive_json(timeout=15))["layer"] == "layer-2"
                assert ws.close_code is None  # open across every change

        asyncio.run(scenario())


def test_syntax_error_answers_as_lambda_and_the_next_good_save_recovers(project):
    app_py = project / "echo" / "app.py"
    good = app_py.read_text()
    with serve(project / "template.yaml", reload=True) as endpoints:
        version_url = endpoints.http + "/version"
        assert get(version_url)[0] == 200
        save(app_py, good + "\ndef broken(:\n")
        status = wait_for(lambda: get(version_url)[0] == 500)
        assert status
        assert get(version_url) == (500, {"message": "Internal Server Error"})
        errors = [i for i in inspector_state(endpoints)["invocations"]
                  if i["error_type"] == "Runtime.UserCodeSyntaxError"]
        assert errors and "app" in errors[-1]["error_message"]
        save(app_py, good.replace('VERSION = "v1"', 'VERSION = "v3"'))
        assert wait_for(lambda: get(version_url) == (200, {"version": "v3", "layer": "layer-1"}))


def test_template_change_adds_a_route_and_says_so(project):
    template = project / "template.yaml"
    with serve(template, reload=True) as endpoints:
        assert get(endpoints.http + "/version2")[0] == 404
        save(template, template.read_text().replace(
            "Properties: {Path: /version, Method: GET}",
            "Properties: {Path: /version, Method: GET}\n"
            "        Again:\n"
            "          Type: HttpApi\n"
            "          Properties: {Path: /version2, Method: GET}"))
        assert wait_for(lambda: get(endpoints.http + "/version2")[0] == 200)
        notices = inspector_state(endpoints)["notices"]
        assert any("routes +GET /version2" in n for n in notices), notices
        # A broken template keeps the running application and says why.
        save(template, template.read_text() + "\n  Broken: [\n")
        assert wait_for(lambda: any("template not reloaded" in n
                                    for n in inspector_state(endpoints)["notices"]))
        assert get(endpoints.http + "/version2")[0] == 200
