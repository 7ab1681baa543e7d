"""Console fixtures: people holding given roles, signed in to ``/admin/`` through the real
OIDC flow over HTTP (the console is a relying party of the provider).

The console requires two factors (``eidas2``): every persona has an authenticator app,
enrolled through the factors service, and signs in with the password then a TOTP code (the
provider's TOTP clock is moved one step for each code: see ``tests.support.factors``)."""

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
from tests.support.factors import add_totp, fresh_code, provider_clock, submit_factor

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


def with_second_factor(platform: Platform, user: dict[str, Any]) -> dict[str, Any]:
    """Give ``user`` an authenticator app (through the factors service); its key is kept in
    ``user["totp_secret"]`` for :func:`sign_in`."""
    user["totp_secret"] = add_totp(platform.provider, user["id"])
    return user


def give_factor(platform: Platform, browser: Browser, page: httpx.Response,
                user: dict[str, Any]) -> httpx.Response:
    """The provider's second-factor page: a fresh TOTP code from ``user``'s app."""
    assert "/connexion/facteur?interaction=" in str(page.url), (page.status_code, page.url)
    code = fresh_code(provider_clock(platform.provider), user["totp_secret"])
    return submit_factor(browser, page, "totp", code=code)


def sign_in(platform: Platform, user: dict[str, Any], browser: Browser | None = None,
            start: str = "/admin/") -> tuple[Browser, httpx.Response]:
    """Open ``start`` in the console: to the provider's sign-in page, fill it, give the TOTP
    code the provider then asks for (``user`` needs :func:`with_second_factor`), follow the
    redirects back to the console."""
    browser = browser or Browser()
    page = browser.get(platform.url + start)
    assert "/connexion?interaction=" in str(page.url), (page.status_code, page.url)
    page = browser.login(page, user["email"], user["password"])
    page = give_factor(platform, browser, page, user)
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
    with_second_factor(platform, user)
    # another application built in this session over the same database (a second instance,
    # a restore) registers the console's client under its own issuer: this platform's first
    from admin_ui import console_client

    platform.provider.clients.ensure(*console_client(platform.settings), actor="test")
    browser, _ = sign_in(platform, user)
    return Console(platform=platform, browser=browser, user=user)
