"""Single sign-on across two applications, then single logout (OIDC RP-Initiated Logout and
Back-Channel Logout), in a real browser."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.journeys import (
    EMBEDDED_ONLY,
    SIGN_IN_LINK,
    expect_signed_in,
    fill_login_form,
    heading,
    open_login_page,
    wait_signed_out,
)
from tests.support.live import free_port

pytestmark = EMBEDDED_ONLY


def _two_apps(relying_party):  # type: ignore[no-untyped-def]
    canteen_port, parking_port = free_port(), free_port()
    canteen = relying_party(
        "Cantine scolaire", port=canteen_port,
        other_app=("Stationnement", f"http://127.0.0.1:{parking_port}/login"),
    )
    parking = relying_party(
        "Stationnement", port=parking_port,
        other_app=("Cantine scolaire", f"http://127.0.0.1:{canteen_port}/login"),
    )
    return canteen, parking


def test_sso_then_single_logout(platform, relying_party, page, axe_check) -> None:
    user = platform.create_user(given_name="Marie", family_name="Dupont")
    canteen, parking = _two_apps(relying_party)
    provider_pages: list[str] = []
    page.on("response", lambda r: provider_pages.append(r.url)
            if r.url.startswith(platform.url) and r.status == 200 else None)

    # 1. Sign in to the canteen: the provider's form, then straight back (first party: no consent).
    open_login_page(page, canteen, platform.url)
    axe_check(page)
    fill_login_form(page, user["email"], user["password"])
    expect_signed_in(page, canteen)
    assert not [u for u in provider_pages if "/connexion/consentement" in u], provider_pages
    assert len(canteen.local_sessions) == 1

    # 2. The parking application: signed in without typing anything (SSO).
    provider_pages.clear()
    page.goto(parking.url + "/login")
    expect_signed_in(page, parking)
    assert provider_pages == [], f"a provider page was shown during SSO: {provider_pages}"
    assert len(parking.local_sessions) == 1
    canteen_sid = next(iter(canteen.local_sessions.values()))["sid"]
    parking_sid = next(iter(parking.local_sessions.values()))["sid"]
    assert canteen_sid, "the ID token carries the provider's session id (sid)"
    assert canteen_sid == parking_sid, "one provider session for both applications"

    # 3. Log out from the canteen: provider (id_token_hint: no question), back to its home page.
    page.goto(canteen.url + "/")
    page.get_by_role("button", name="Se déconnecter").click()
    # post_logout_redirect_uri, with the ``state`` the application sent (RP-Initiated Logout §3)
    page.wait_for_url(re.compile(re.escape(canteen.url) + r"/\?state=[\w-]+$"))
    expect(heading(page)).to_have_text(canteen.name)
    expect(page.get_by_role("link", name=SIGN_IN_LINK)).to_be_visible()
    assert canteen.local_sessions == {}

    # The provider's session is over too: its sign-in page asks for the password again.
    page.goto(platform.url + "/connexion/termine")
    page.wait_for_url(platform.url + "/connexion")
    expect(page.get_by_label("Mot de passe")).to_be_visible()
    axe_check(page)

    # 4. The parking application was told by back-channel: reloading shows it signed out.
    wait_signed_out(page, parking)
    assert parking.local_sessions == {}


def test_logout_at_the_provider_asks_then_ends_every_session(
    platform, relying_party, page, axe_check
) -> None:
    """Without ``id_token_hint`` the provider asks for confirmation (a page checked with axe),
    then shows « Vous êtes déconnecté » and the applications are told by back-channel."""
    user = platform.create_user(given_name="Marie", family_name="Dupont")
    canteen, parking = _two_apps(relying_party)
    open_login_page(page, canteen, platform.url)
    fill_login_form(page, user["email"], user["password"])
    expect_signed_in(page, canteen)
    page.goto(parking.url + "/login")
    expect_signed_in(page, parking)

    page.goto(platform.url + "/logout")
    expect(heading(page)).to_have_text("Se déconnecter")
    expect(page.locator("main")).to_contain_text("tous les services de la Collectivité")
    axe_check(page)
    page.get_by_role("button", name="Se déconnecter").click()
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/logout$"))
    expect(heading(page)).to_have_text("Vous êtes déconnecté")
    axe_check(page)

    wait_signed_out(page, canteen)
    wait_signed_out(page, parking)
    assert canteen.local_sessions == {}
    assert parking.local_sessions == {}
