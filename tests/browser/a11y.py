"""axe-core (from npm, web/node_modules) run in a Playwright page: serious and critical
violations, each with the rule, its help text and where it failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"


def serious_violations(page: Any) -> list[str]:
    """Run axe on the page as it is now. The script is evaluated through the DevTools protocol,
    which the page's Content-Security-Policy does not govern (the page itself stays strict)."""
    if not AXE.is_file():
        raise AssertionError(f"{AXE} is missing: run `npm ci` in web/ (make deps does)")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text() + "\n;undefined")
    result = page.evaluate("""async () => {
        const r = await window.axe.run(document, {resultTypes: ["violations"]});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       targets: v.nodes.slice(0, 3).map(n => n.target)}));
    }""")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {v['targets']}"
            for v in result if v["impact"] in ("serious", "critical")]
