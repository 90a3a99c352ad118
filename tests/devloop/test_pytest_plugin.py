"""The pytest plugin, as a user meets it: docs/testing.md's worked example run by pytester in a
fresh directory (so the page cannot go stale), and the plugin's option handling."""

import textwrap

import pytest
from docfiles import doc_files as page_files
from docfiles import write_files

from apigw_local.pytest_plugin import options_for


def doc_files() -> dict[str, str]:
    files = page_files("testing.md")
    assert {"template.yaml", "shout/app.py", "pytest.ini", "tests/test_shout.py"} <= set(files)
    return files


def write(pytester, files):
    write_files(pytester.path, files)


def test_worked_example_passes(pytester):
    write(pytester, doc_files())
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(passed=4)


def test_worked_example_catches_a_broken_handler(pytester):
    files = doc_files()
    files["shout/app.py"] = files["shout/app.py"].replace("text.upper()", "text")
    write(pytester, files)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_shout_answers_in_capitals*"])


def test_marker_options_and_a_fresh_emulator(pytester):
    files = doc_files()
    write(pytester, files)
    pytester.makepyfile(test_marker=textwrap.dedent("""
        import pytest

        seen = []

        @pytest.mark.apigw_local(fresh=True)
        def test_fresh(apigw_local):
            seen.append(apigw_local.websocket)

        def test_shared_a(apigw_local):
            seen.append(apigw_local.websocket)

        def test_shared_b(apigw_local):
            seen.append(apigw_local.websocket)
            assert seen[1] == seen[2] != seen[0]

        @pytest.mark.apigw_local(no_such_option=1)
        def test_bad_option(apigw_local):
            pass
    """))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "test_marker.py",
                                           timeout=240)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*apigw_local*no_such_option*"])


def test_missing_template_is_a_clear_error(pytester):
    pytester.makeini("[pytest]\napigw_local_template = nowhere.yaml\n")
    pytester.makepyfile("def test_it(apigw_local):\n    pass\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*template*nowhere.yaml not found; set apigw_local_template*"])
    assert result.ret != 0


class _Config:
    def __init__(self, ini, base):
        self.ini, self.inipath, self.rootpath = ini, base / "pytest.ini", base

    def getini(self, name):
        return self.ini.get(name, [] if name in ("apigw_local_template",
                                                  "apigw_local_parameter_overrides") else "")


def test_options_merge_ini_then_markers_closest_last(tmp_path, monkeypatch):
    for name in ("template.yaml", "overlay.yaml", "other.yaml"):
        (tmp_path / name).write_text("Resources: {}\n")
    monkeypatch.setenv("SHOUT_SECRET", "s3cret")
    config = _Config({"apigw_local_template": ["template.yaml", "overlay.yaml"],
                      "apigw_local_parameter_overrides": ["Secret=$SHOUT_SECRET", "A=1"],
                      "apigw_local_chaos": "gone=0.1"}, tmp_path)
    options = options_for(config, [{"parameter_overrides": {"A": "2"}, "max_concurrency": 2},
                                   {"template": "other.yaml", "chaos": "gone=0.5"}])
    assert options == {"templates": [tmp_path / "other.yaml"], "chaos": "gone=0.5",
                       "max_concurrency": 2,
                       "parameter_overrides": {"Secret": "s3cret", "A": "2"}}
    assert options_for(config, [])["templates"] == [tmp_path / "template.yaml",
                                                    tmp_path / "overlay.yaml"]
    bad = _Config({"apigw_local_parameter_overrides": ["novalue"]}, tmp_path)
    with pytest.raises(pytest.UsageError, match="expected KEY=VALUE, got 'novalue'"):
        options_for(bad, [])
