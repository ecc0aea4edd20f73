"""axe-core (vendored from the npm registry into static/vendor) run in the page under test:
WCAG 2.0/2.1 A and AA rules only. Loaded from our own origin, so the CSP allows it."""

from __future__ import annotations

from typing import Any

AXE = "/static/vendor/axe-core-4.14.1.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
RUN = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
  return result.violations.map(v => `${v.id} (${v.impact}): ${v.help} -> ` +
    v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
}"""


def violations(page: Any) -> list[str]:
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=AXE)
    return page.evaluate(RUN, TAGS)


def assert_accessible(page: Any, where: str = "") -> None:
    found = violations(page)
    assert found == [], f"axe found WCAG 2.1 A/AA violations on {where or page.url}:\n" + \
        "\n".join(found)
