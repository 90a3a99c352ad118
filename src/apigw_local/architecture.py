"""Native code built for another machine, found before a worker tries to import it.

`sam build` builds a function's and its layers' dependencies for the function's
`Architectures` (Lambda's arm64 or x86_64), whatever machine runs the build. Python cannot
load an extension module built for another instruction set, and says so obscurely
("invalid ELF header", "cannot open shared object file"). Before any worker starts, the
ELF header of every extension module under the functions' code and layers is read; one
built for another machine stops the start with one line naming the file, its machine and
this one.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from pathlib import Path

from .intrinsics import TemplateError
from .model import Application

__all__ = ["check_native_code", "elf_machine"]

# ELF e_machine values (System V ABI): the machines Lambda runs, by Lambda's names.
_MACHINES = {0x3E: "x86_64", 0xB7: "arm64"}
_HOST = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def elf_machine(path: Path) -> str | None:
    """The machine an ELF file is built for ("x86_64", "arm64", "e_machine 40"), or None
    for a file that is not ELF."""
    try:
        with path.open("rb") as file:
            header = file.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    byteorder = "little" if header[5] == 1 else "big"
    machine = int.from_bytes(header[18:20], byteorder)
    return _MACHINES.get(machine, f"e_machine {machine}")


def check_native_code(app: Application, host: str | None = None) -> None:
    """Raise TemplateError if a function's code or layers hold an extension module built
    for another machine than `host` (default: this one)."""
    here = _HOST.get((host or platform.machine()).lower())
    if here is None:
        return  # a machine Lambda does not run: nothing to compare with
    checked: set[Path] = set()
    for fn in app.functions.values():
        for directory in (fn.code_uri, *fn.layers):
            if directory in checked:
                continue
            checked.add(directory)
            for module in _extension_modules(directory):
                built_for = elf_machine(module)
                if built_for is not None and built_for != here:
                    raise TemplateError(
                        f"{module} is built for {built_for} and this machine is {here}: "
                        f"function {fn.logical_id} cannot run here. These look like "
                        "`sam build` artifacts for Lambda: run apigw-local on the source "
                        "template (template.yaml) instead.")


def _extension_modules(directory: Path) -> Iterable[Path]:
    yield from directory.rglob("*.so")
