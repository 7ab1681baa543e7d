"""Console fixtures: people holding given roles, signed in to ``/admin/`` through the real
OIDC flow over HTTP (the console is a relying party of the provider)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any

import httpx
import pytest

from tests.conftest import Platform
from tests.support.browser import Browser

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Console:
    """A browser signed in to the console as ``user``."""

    platform: Platform
    browser: Browser
    user: dict[str, Any]

    @property
    def csrf(self) -> str:
        """This session's CSRF token, as every console page carries it."""
        page = self.browser.get(self.platform.url + "/admin/")
        match = CSRF_FIELD.search(page.text)
        assert match, page.text[:500]
        return unescape(match.group(1))

    def get(self, path: str) -> httpx.Response:
        return self.browser.request("GET", self.platform.url + path)

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: str | None = None
             ) -> httpx.Response:
        """POST a form without following the answer; the session's CSRF token is added unless
        ``csrf`` is given ("" sends none)."""
        fields = dict(data or {})
        token = self.csrf if csrf is None else csrf
        if token:
            fields["csrf_token"] = token
        return self.browser.request("POST", self.platform.url + path, data=fields)

    def close(self) -> None:
        self.browser.close()


def sign_in(platform: Platform, user: dict[str, Any], browser: Browser | None = None,
            start: str = "/admin/") -> tuple[Browser, httpx.Response]:
    """Open ``start`` in the console: to the provider's sign-in page, fill it, follow the
    redirects back to the console."""
    browser = browser or Browser()
    page = browser.get(platform.url + start)
    assert "/connexion?interaction=" in str(page.url), (page.status_code, page.url)
    page = browser.login(page, user["email"], user["password"])
    assert str(page.url).startswith(platform.url + "/admin/"), (page.status_code, page.url)
    return browser, page


@pytest.fixture
def console_as(platform: Platform) -> Iterator[Callable[..., Console]]:
    """``console_as(("ctm", "ctm_admin"), ("lamentin", "viewer"))``: a new account holding
    those roles, signed in to the console."""
    opened: list[Console] = []

    def make(*roles: tuple[str, str], email: str | None = None, **user_fields: Any) -> Console:
        console = open_console(platform, *roles, email=email, **user_fields)
        opened.append(console)
        return console

    yield make
    for console in opened:
        console.close()


def open_console(platform: Platform, *roles: tuple[str, str], email: str | None = None,
                 **user_fields: Any) -> Console:
    user = platform.create_user(email=email or f"agent-{secrets.token_hex(4)}@example.mq",
                                **user_fields)
    for org, role in roles:
        platform.provider.organisations.grant(user["id"], org, role)
    browser, _ = sign_in(platform, user)
    return Console(platform=platform, browser=browser, user=user)
