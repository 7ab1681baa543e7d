"""Passkey autofill (WebAuthn conditional mediation) on the sign-in page, in Chromium with the
virtual authenticator (CDP): the e-mail field asks the browser for passkeys
(``autocomplete="username webauthn"``), the page starts a conditional request when the browser
supports it, and the passkey chosen there signs the person in without a password."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.journeys import EMBEDDED_ONLY, heading
from tests.e2e.test_strong_auth import localhost_platform  # noqa: F401 - the fixture

pytestmark = EMBEDDED_ONLY


def _virtual_authenticator(page):  # type: ignore[no-untyped-def]
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }})["authenticatorId"]
    return cdp, authenticator


def test_passkey_autofill_signs_in_without_a_password(
        localhost_platform, page, axe_check) -> None:  # noqa: F811 - the fixture
    url = localhost_platform.url
    user = localhost_platform.create_user(given_name="Marie", family_name="Dupont")
    cdp, authenticator = _virtual_authenticator(page)

    # The sign-in page asks the browser for passkeys through the e-mail field.
    page.goto(url + "/connexion?retour=/compte/securite/cles")
    expect(page.get_by_label("Adresse électronique")).to_have_attribute(
        "autocomplete", "username webauthn")
    assert page.evaluate("PublicKeyCredential.isConditionalMediationAvailable()") is True
    axe_check(page)
    # A passkey, added from the security page after a password sign-in.
    page.get_by_label("Adresse électronique").fill(user["email"])
    page.get_by_label("Mot de passe").fill(user["password"])
    # While the person types, the waiting autofill request must not get in the way.
    page.get_by_role("button", name="Se connecter", exact=True).click()
    expect(heading(page)).to_have_text("Ajouter une clé d'accès")
    page.get_by_role("button", name="Créer la clé d'accès").click()
    expect(heading(page)).to_have_text("Vos codes de secours")  # the first second factor
    page.get_by_role("link", name="J'ai noté mes codes, continuer").click()
    expect(page.get_by_role("status").first).to_contain_text("La clé d'accès est ajoutée.")
    (credential,) = cdp.send("WebAuthn.getCredentials",
                             {"authenticatorId": authenticator})["credentials"]
    assert credential["isResidentCredential"]

    # Signed out, the sign-in page offers it through the e-mail field. Chromium's virtual
    # authenticator answers the waiting conditional request as a person choosing the
    # suggested passkey would: no e-mail, no password typed, no button pressed.
    page.goto(url + "/logout")
    page.get_by_role("button", name="Se déconnecter").click()
    expect(heading(page)).to_have_text("Vous êtes déconnecté")
    page.goto(url + "/connexion?retour=/compte/")
    page.wait_for_url(re.compile(re.escape(url) + r"/compte/$"))
    expect(heading(page)).to_have_text("Mon compte")
    signed = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert signed["credentials"][0]["signCount"] > credential["signCount"]
    (session,) = localhost_platform.provider.sessions.for_user(user["id"])
    assert session.amr == ["hwk", "mfa"] and session.acr == "eidas2"


def test_the_passkey_button_still_works_while_autofill_waits(
        localhost_platform, page) -> None:  # noqa: F811 - the fixture
    """No passkey on the authenticator yet: the conditional request waits; pressing the
    button cancels it and makes its own request (which fails here: nothing to offer)."""
    url = localhost_platform.url
    _virtual_authenticator(page)
    page.goto(url + "/connexion")
    button = page.get_by_role("button", name="Se connecter avec une clé d'accès")
    expect(button).to_be_visible()
    button.click()
    expect(page.locator("#message-cle")).to_contain_text(re.compile(
        "Opération annulée|n'a pas pu être utilisée"))
    expect(button).to_be_enabled()
    assert "/connexion" in page.url
