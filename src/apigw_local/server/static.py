"""The web client served on the HTTP port: its files, and nothing else of its directory.

A web client's directory also holds what builds it: `package.json`, a README, all of
`node_modules/`. Only the client's own files are served (an allowlist, not a denylist):

- files with a web asset's suffix (HTML, CSS, JavaScript, JSON, images, fonts, source maps)
  at the top or in any subdirectory, except npm's manifests and anything under a dot name;
- from `node_modules/`, only the files an HTML page at the top references (`src=` / `href=`,
  e.g. `node_modules/chart.js/dist/chart.umd.js`) and their source maps: the vendor files the
  page loads, not the packages they come from.

Anything else — not allowed, missing, a directory without `index.html`, a path the file
system refuses (too long, not UTF-8) — is `None`, and the caller answers 404.
"""

from __future__ import annotations

import mimetypes
import os
import re
from email.utils import formatdate
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .http11 import Response

mimetypes.add_type("application/javascript", ".js")
mimetypes.add_type("application/javascript", ".mjs")
mimetypes.add_type("text/css", ".css")
mimetypes.add_type("application/json", ".json")
mimetypes.add_type("application/json", ".map")
mimetypes.add_type("image/svg+xml", ".svg")
mimetypes.add_type("font/woff2", ".woff2")
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("application/manifest+json", ".webmanifest")

WEB_SUFFIXES = frozenset({
    ".html", ".htm", ".css", ".js", ".mjs", ".json", ".map", ".webmanifest", ".txt",
    ".svg", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".ico",
    ".woff", ".woff2", ".ttf", ".otf", ".wasm",
})
# What the deployed client gets from CloudFront's managed SecurityHeadersPolicy (template.yaml)
# that matters on a local page: no MIME sniffing, and no framing by another site's page (which
# could trick an admin into clicks on the dashboard).
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)
TOOL_FILES = frozenset({"package.json", "package-lock.json", "npm-shrinkwrap.json"})
VENDOR_DIR = "node_modules"

_REFERENCE = re.compile(r"""(?i)\b(?:src|href)\s*=\s*["']([^"'#?]+)""")


class StaticSite:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._vendor: frozenset[str] = frozenset()
        self._vendor_stamp: tuple[tuple[str, float], ...] = ()

    def get(self, raw_path: str) -> Response | None:
        try:
            return self._get(raw_path)
        except (OSError, UnicodeError, ValueError):  # ENAMETOOLONG, bad bytes, NUL…
            return None

    def allowed(self, rel: tuple[str, ...]) -> bool:
        """Whether the file at `rel` (parts below the root) belongs to the web client."""
        if not rel or any(p.startswith(".") for p in rel):
            return False
        if rel[0] == VENDOR_DIR:
            return "/".join(rel) in self._vendor_files()
        return rel[-1] not in TOOL_FILES and Path(rel[-1]).suffix.lower() in WEB_SUFFIXES

    def _get(self, raw_path: str) -> Response | None:
        rel = unquote(raw_path, errors="strict").lstrip("/")
        if "\x00" in rel:
            return None
        candidate = (self.root / rel).resolve()
        # No directory traversal: the resolved path must stay inside the static directory.
        if candidate != self.root and self.root not in candidate.parents:
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        if not candidate.is_file() or not self.allowed(candidate.relative_to(self.root).parts):
            return None
        ctype, _ = mimetypes.guess_type(candidate.name)
        ctype = ctype or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
            ctype += "; charset=utf-8"
        body = candidate.read_bytes()
        return Response(200, [("Content-Type", ctype), ("Cache-Control", "no-cache"),
                              *SECURITY_HEADERS,
                              ("Last-Modified", formatdate(os.path.getmtime(candidate),
                                                           usegmt=True))], body)

    def _vendor_files(self) -> frozenset[str]:
        """`node_modules/…` paths the top-level pages reference (re-read when a page changes)."""
        pages = sorted(p for p in self.root.glob("*.htm*") if p.is_file())
        stamp = tuple((p.name, p.stat().st_mtime) for p in pages)
        if stamp != self._vendor_stamp:
            found: set[str] = set()
            for page in pages:
                for ref in _REFERENCE.findall(page.read_text("utf-8", "replace")):
                    if urlsplit(ref).scheme or ref.startswith("//"):
                        continue
                    path = os.path.normpath(ref.lstrip("/"))
                    if path.startswith(VENDOR_DIR + "/"):
                        found.update((path, path + ".map"))
            self._vendor, self._vendor_stamp = frozenset(found), stamp
        return self._vendor
