"""Steps shared by the browser journeys (what a person does in the demo applications)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

# The journeys run on the embedded backend only: the storage backends are covered by the
# functional tests; here the subject is what the person sees and does.
EMBEDDED_ONLY = pytest.mark.parametrize("backend", ["embedded"], indirect=True)

SIGN_IN_LINK = "Se connecter avec Martinique Connect"


def heading(page: Page) -> Any:
    return page.get_by_role("heading", level=1)


def open_login_page(page: Page, rp: Any, provider_url: str) -> None:
    """From the application's home page, follow its sign-in link to the provider."""
    page.goto(rp.url + "/")
    expect(heading(page)).to_have_text(rp.name)
    page.get_by_role("link", name=SIGN_IN_LINK).click()
    page.wait_for_url(re.compile(re.escape(provider_url) + r"/connexion\?interaction="))
    expect(heading(page)).to_have_text("Se connecter")
    expect(page.locator("main")).to_contain_text(f"pour accéder à {rp.name}")


def fill_login_form(page: Page, email: str, password: str) -> None:
    page.get_by_label("Adresse électronique").fill(email)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter", exact=True).click()


def expect_signed_in(page: Page, rp: Any, who: str = "Marie Dupont") -> None:
    page.wait_for_url(rp.url + "/")
    expect(heading(page)).to_have_text(f"Bonjour {who}")
    expect(page.locator("main")).to_contain_text(f"Vous êtes connecté à « {rp.name} »")


def wait_signed_out(page: Page, rp: Any, timeout: float = 5.0) -> float:
    """Reload the application's home page until it shows the signed-out page; the back-channel
    logout is delivered asynchronously. Returns the seconds it took."""
    start = time.monotonic()
    while True:
        page.goto(rp.url + "/")
        if heading(page).inner_text() == rp.name:
            expect(page.get_by_role("link", name=SIGN_IN_LINK)).to_be_visible()
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(
                f"{rp.name} still shows {heading(page).inner_text()!r} {timeout} s after the "
                "logout: the back-channel logout did not end its session"
            )
        time.sleep(0.2)
