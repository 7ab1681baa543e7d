"""The sign-in page in English and in kréyòl, in Chromium: axe-core finds no serious or
critical violation, ``<html lang>`` names the language, and the language switcher works with
the keyboard alone."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.journeys import EMBEDDED_ONLY, heading
from tests.e2e.test_keyboard_login import tab_until

pytestmark = EMBEDDED_ONLY


def test_english_and_kreyol_sign_in_pages_are_accessible(platform, page, axe_check) -> None:
    page.goto(platform.url + "/connexion?ui_locales=en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(heading(page)).to_have_text("Sign in")
    expect(page.get_by_label("Email address")).to_be_visible()
    expect(page).to_have_title("Sign in — Martinique Connect")
    axe_check(page)
    page.goto(platform.url + "/inscription?ui_locales=gcf")
    expect(page.locator("html")).to_have_attribute("lang", "gcf")
    expect(heading(page)).to_have_text("Kréyé kont ou")
    axe_check(page)


def test_switch_language_with_the_keyboard(platform, page, axe_check) -> None:
    user = platform.create_user(given_name="Marie", family_name="Dupont")
    page.goto(platform.url + "/connexion?retour=/compte/")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    # The switcher comes right after the skip link, each language named in its own language.
    tab_until(page, lambda f: f["tag"] == "a" and f["text"].strip() == "English", limit=4)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion\?retour="))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("link", name="English")).to_have_attribute("aria-current", "true")
    axe_check(page)
    # And the sign-in goes on in English, to the account page.
    tab_until(page, lambda f: f["tag"] == "input" and f["id"] == "email", limit=10)
    page.keyboard.type(user["email"])
    tab_until(page, lambda f: f["tag"] == "input" and f["id"] == "password")
    page.keyboard.type(user["password"])
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/compte/$"))
    expect(heading(page)).to_have_text("My account")
    axe_check(page)
