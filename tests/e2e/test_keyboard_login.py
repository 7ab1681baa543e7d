"""The whole sign-in with the keyboard only: Tab, typing, Enter. Focus is always visible; a
wrong password is announced (role=alert) and tied to the fields (aria-describedby)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from idp.services.users import GENERIC_FAILURE
from tests.e2e.journeys import EMBEDDED_ONLY, SIGN_IN_LINK, expect_signed_in, heading

pytestmark = EMBEDDED_ONLY

FOCUSED = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    return {
        tag: el.tagName.toLowerCase(), id: el.id, text: el.innerText || '',
        focusVisible: el.matches(':focus-visible'),
        outlineStyle: style.outlineStyle, outlineWidth: parseFloat(style.outlineWidth) || 0,
        onScreen: box.width > 0 && box.height > 0 && box.right > 0 && box.bottom > 0
            && box.left < innerWidth && box.top < innerHeight,
    };
}"""


def tab(page: Page) -> dict[str, Any]:
    """Press Tab; return the newly focused element, after checking its focus is visible."""
    page.keyboard.press("Tab")
    focused = page.evaluate(FOCUSED)
    assert focused is not None, "Tab left the page's focus on <body>"
    assert focused["focusVisible"], f"no :focus-visible on {focused}"
    assert focused["outlineStyle"] != "none", f"no focus outline on {focused}"
    assert focused["outlineWidth"] >= 2, f"focus outline thinner than 2px on {focused}"
    assert focused["onScreen"], f"the focused element is off screen: {focused}"
    return focused


def tab_until(page: Page, predicate: Any, limit: int = 10) -> dict[str, Any]:
    seen = []
    for _ in range(limit):
        focused = tab(page)
        if predicate(focused):
            return focused
        seen.append(focused)
    raise AssertionError(f"not reached with Tab; focus went through {seen}")


def tab_to_field(page: Page, field_id: str) -> None:
    tab_until(page, lambda f: f["tag"] == "input" and f["id"] == field_id)


def test_sign_in_with_the_keyboard_only(platform, relying_party, page, axe_check) -> None:
    user = platform.create_user(given_name="Marie", family_name="Dupont")
    canteen = relying_party("Cantine scolaire")

    page.goto(canteen.url + "/")
    tab_until(page, lambda f: f["tag"] == "a" and f["text"].strip() == SIGN_IN_LINK)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion\?interaction="))

    # The first stop is the skip link, visible when focused; then the e-mail field.
    first = tab(page)
    assert first["tag"] == "a", first
    assert first["text"].strip() == "Aller au contenu", first
    tab_to_field(page, "email")
    page.keyboard.type(user["email"])
    tab_to_field(page, "password")
    page.keyboard.type("pas-le-bon-mot-de-passe")
    with page.expect_response(lambda r: r.request.method == "POST"
                              and r.url == platform.url + "/connexion") as posted:
        page.keyboard.press("Enter")
    assert posted.value.status == 401

    # The error: announced, in the title, and describing both fields.
    alert = page.get_by_role("alert")
    expect(alert).to_have_count(1)
    expect(alert).to_have_text(GENERIC_FAILURE)
    expect(page).to_have_title(re.compile(r"^Erreur"))
    email = page.get_by_label("Adresse électronique")
    password = page.get_by_label("Mot de passe")
    for field in (email, password):
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(field).to_have_accessible_description(re.compile(re.escape(GENERIC_FAILURE)))
    expect(email).to_have_value(user["email"])
    expect(password).to_have_value("")
    axe_check(page)

    # Second attempt, still with the keyboard: the e-mail is kept, only the password is typed.
    tab_to_field(page, "email")
    tab_to_field(page, "password")
    page.keyboard.type(user["password"])
    page.keyboard.press("Enter")
    expect_signed_in(page, canteen)
    expect(heading(page)).to_have_text("Bonjour Marie Dupont")
