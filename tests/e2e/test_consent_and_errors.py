"""Consent for a service that is not the Collectivité's own, refusal, and the error page shown
(never a redirect) when the requesting service is unknown."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from playwright.sync_api import expect

from idp.api.login import SCOPE_LABELS
from tests.e2e.journeys import EMBEDDED_ONLY, fill_login_form, heading, open_login_page
from tests.support.browser import query_of

pytestmark = EMBEDDED_ONLY


def test_consent_page_then_refusal_returns_access_denied(
    platform, relying_party, page, axe_check
) -> None:
    user = platform.create_user(given_name="Marie", family_name="Dupont")
    partner = relying_party("Médiathèque partenaire", first_party=False)

    open_login_page(page, partner, platform.url)
    fill_login_form(page, user["email"], user["password"])
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion/consentement\?"))

    expect(heading(page)).to_have_text(f"Autoriser {partner.name}")
    expect(page).to_have_title(re.compile(f"^Autoriser {partner.name}"))
    scopes = page.locator("main ul.portees > li")
    expect(scopes).to_have_text([SCOPE_LABELS[s] for s in ("openid", "profile", "email")])
    expect(page.get_by_role("button", name="Autoriser")).to_be_visible()
    axe_check(page)

    page.get_by_role("button", name="Refuser").click()
    page.wait_for_url(re.compile(re.escape(partner.url) + r"/auth/callback\?"))
    returned = query_of(page.url)
    assert returned["error"] == "access_denied", returned
    assert returned["iss"] == platform.url, returned
    assert returned.get("state"), "the client's state must come back with the error"
    assert "code" not in returned
    # The application saw the refusal: no local session, its own error page.
    expect(heading(page)).to_have_text("Connexion impossible")
    expect(page.locator("main")).to_contain_text("access_denied")
    assert partner.local_sessions == {}
    # And nothing was agreed: the next request asks again.
    page.goto(partner.url + "/login")
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion/consentement\?"))


def test_unknown_client_gets_the_french_error_page_not_a_redirect(
    platform, relying_party, page, axe_check
) -> None:
    rp = relying_party("Cantine scolaire")  # a real listener: a redirect would be visible
    redirect_uri = f"{rp.url}/auth/callback"
    elsewhere: list[str] = []
    page.on("request", lambda r: elsewhere.append(r.url)
            if not r.url.startswith(platform.url) else None)

    query = urlencode({
        "response_type": "code", "client_id": "service-inconnu", "redirect_uri": redirect_uri,
        "scope": "openid profile", "state": "etat-972",
    })
    response = page.goto(f"{platform.url}/authorize?{query}")
    assert response is not None
    assert response.status == 400
    assert page.url.startswith(platform.url + "/authorize?"), page.url
    assert elsewhere == [], f"the browser was sent away: {elsewhere}"
    assert page.evaluate("document.documentElement.lang") == "fr"
    expect(heading(page)).to_have_text("Demande de connexion invalide")
    expect(page.get_by_role("alert")).to_contain_text("n'est pas reconnu")
    expect(page.locator("main")).to_contain_text("vous n'avez pas été redirigé")
    expect(page).to_have_title(re.compile("^Demande de connexion invalide"))
    axe_check(page)
