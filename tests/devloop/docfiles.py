"""The files a documentation page shows (fenced blocks marked `file=NAME`), so a test can run
exactly what the page tells readers to write."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
_BLOCK = re.compile(r"^```\w+ file=(?P<name>\S+)\n(?P<body>.*?)^```$", re.M | re.S)


def doc_files(page: str) -> dict[str, str]:
    return {m["name"]: m["body"] for m in _BLOCK.finditer((DOCS / page).read_text())}


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
