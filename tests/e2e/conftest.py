"""Browser journeys in Debian's Chromium, driven by Playwright, checked with axe-core.

* Every test here is marked ``e2e`` (``make test-fast`` leaves them out).
* Without ``/usr/bin/chromium`` (``make browser``) the journeys are skipped, with the reason;
  under CI (``CI=true``) that is a failure instead. Same for axe-core (``npm install`` here).
* Never a downloaded browser: Playwright drives the system Chromium (``executable_path``).
* ``axe_check(page)`` fails on any WCAG 2.1 A/AA violation of impact serious or critical.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = HERE / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING_IMPACTS = ("serious", "critical")
TIMEOUT_MS = 10_000


def _missing_tools() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)"
    if not AXE_JS.exists():
        return f"{AXE_JS.relative_to(HERE.parents[1])} is missing: run `make browser` (npm install)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = _missing_tools()
    for item in items:
        if not item.path.is_relative_to(HERE):
            continue
        item.add_marker(pytest.mark.e2e)
        if missing and os.environ.get("CI") != "true":
            item.add_marker(pytest.mark.skip(reason=f"browser journeys not run: {missing}"))


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, launched once per session."""
    missing = _missing_tools()
    if missing:  # only reached under CI=true (otherwise the tests were skipped)
        pytest.fail(f"CI=true and {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies) and its page, in French.

    ``bypass_csp`` is only there so that axe-core can be injected: the provider's pages send
    ``script-src 'self'`` and use no script of their own."""
    context = chromium.new_context(locale="fr-FR", bypass_csp=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def _describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"  [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:5]:
            lines.append(f"      at {' '.join(node['target'])}: {node['html'][:160]}")
            summary = (node.get("failureSummary") or "").replace("\n", "\n         ")
            if summary:
                lines.append(f"         {summary}")
        if len(v["nodes"]) > 5:
            lines.append(f"      … and {len(v['nodes']) - 5} more")
    return "\n".join(lines)


def run_axe(page: Any) -> list[dict[str, Any]]:
    """Every WCAG 2.1 A/AA violation axe-core finds in the current page."""
    page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate(
        """async (tags) => {
            const r = await axe.run(document, {
                runOnly: {type: 'tag', values: tags}, resultTypes: ['violations'],
            });
            return r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                nodes: v.nodes.map(n => ({
                    target: n.target.map(String), html: n.html,
                    failureSummary: n.failureSummary,
                })),
            }));
        }""",
        WCAG_TAGS,
    )
    return list(result)


@pytest.fixture
def axe_check() -> Callable[[Any], list[dict[str, Any]]]:
    """``axe_check(page)``: assert no serious/critical WCAG 2.1 AA violation; print them all."""

    def check(page: Any) -> list[dict[str, Any]]:
        violations = run_axe(page)
        blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
        others = [v for v in violations if v["impact"] not in BLOCKING_IMPACTS]
        print(f"axe-core on {page.url}: {len(blocking)} serious/critical, "
              f"{len(others)} minor/moderate")
        if others:
            print(_describe(others))
        assert not blocking, (
            f"axe-core found {len(blocking)} serious/critical accessibility problem(s) on "
            f"{page.url} (title {page.title()!r}):\n{_describe(blocking)}"
        )
        return violations

    return check


@dataclass
class RelyingParty:
    """A demo application (``demo_rp.create_rp``) served on a loopback port."""

    name: str
    url: str
    client: dict[str, Any]
    app: Any

    @property
    def local_sessions(self) -> dict[str, Any]:
        return self.app.state.sessions.by_id  # type: ignore[no-any-return]


@pytest.fixture
def relying_party(platform: Any) -> Iterator[Callable[..., RelyingParty]]:
    """Factory: ``relying_party("Cantine scolaire", first_party=True, port=..., other_app=...)``
    registers the client at the provider and serves the demo application until the test ends."""
    from demo_rp import create_rp
    from tests.support.live import free_port, serve

    with ExitStack() as stack:

        def start(name: str, *, first_party: bool = True, port: int | None = None,
                  other_app: tuple[str, str] | None = None) -> RelyingParty:
            port = port or free_port()
            base = f"http://127.0.0.1:{port}"
            client = platform.create_client(
                name=name, redirect_uris=[f"{base}/auth/callback"],
                post_logout_redirect_uris=[f"{base}/"],
                backchannel_logout_uri=f"{base}/backchannel-logout",
                first_party=first_party, scopes=["openid", "profile", "email"],
            )
            app = create_rp(
                name=name, issuer=platform.url, client_id=client["client_id"],
                client_secret=client["client_secret"], base_url=base, other_app=other_app,
            )
            stack.enter_context(serve(app, port))
            return RelyingParty(name=name, url=base, client=client, app=app)

        yield start
