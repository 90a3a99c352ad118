"""Extension modules built for another machine stop the start with a message that says so."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from apigw_local.architecture import check_native_code, elf_machine
from apigw_local.model import Application, Function
from apigw_local.template import TemplateError

FUNCTION_DIR = Path(__file__).parent.parent / "fixtures" / "functions" / "echo"
ARM64, X86_64 = 0xB7, 0x3E


def elf(path: Path, machine: int) -> Path:
    """The first 20 bytes of a little-endian 64-bit ELF shared object for `machine`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + (3).to_bytes(2, "little")
    path.write_bytes(header + machine.to_bytes(2, "little") + bytes(44))
    return path


def test_elf_machine_reads_the_header(tmp_path):
    assert elf_machine(elf(tmp_path / "a.so", ARM64)) == "arm64"
    assert elf_machine(elf(tmp_path / "b.so", X86_64)) == "x86_64"
    assert elf_machine(elf(tmp_path / "c.so", 40)) == "e_machine 40"
    (tmp_path / "d.so").write_text("not ELF")
    assert elf_machine(tmp_path / "d.so") is None


def app_with_layer(tmp_path: Path, machine: int) -> Application:
    """An application whose one function has a layer holding an extension module."""
    layer = tmp_path / "layer"
    elf(layer / "python" / "native" / "_speedups.cpython-313-linux-gnu.so", machine)
    fn = Function(logical_id="Fn", name="Fn", code_uri=FUNCTION_DIR, handler="app.handler",
                  runtime="python3.13", layers=(layer / "python", layer))
    return Application(functions={"Fn": fn}, websocket_apis=(), http_routes=(), tables={},
                       parameters={})


@pytest.mark.parametrize(("host", "machine"), [("x86_64", ARM64), ("aarch64", X86_64)])
def test_a_foreign_extension_module_is_refused_by_name(tmp_path, host, machine):
    app = app_with_layer(tmp_path, machine)
    with pytest.raises(TemplateError) as error:
        check_native_code(app, host=host)
    message = str(error.value)
    assert "_speedups.cpython-313-linux-gnu.so is built for" in message
    assert "function Fn cannot run here" in message and "template.yaml" in message


def test_extension_modules_for_this_machine_pass(tmp_path):
    native = {"x86_64": X86_64, "amd64": X86_64, "aarch64": ARM64, "arm64": ARM64}
    machine = native.get(platform.machine().lower())
    if machine is None:
        pytest.skip(f"Lambda runs no {platform.machine()} code")
    check_native_code(app_with_layer(tmp_path, machine))
