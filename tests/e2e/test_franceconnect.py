"""« S'identifier avec FranceConnect » in Chromium: the button on the sign-in page, the first
sign-in through the (loopback) FranceConnect-like upstream, the verified civil status on the
profile page, linking an existing account, and a cancelled sign-in — axe-core on each page."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from demo_rp import create_rp
from tests.e2e.conftest import RelyingParty
from tests.e2e.journeys import EMBEDDED_ONLY, fill_login_form, heading, open_login_page
from tests.support.franceconnect import Upstream, broker_platform, upstream_provider
from tests.support.live import free_port, serve

pytestmark = EMBEDDED_ONLY

FC_BUTTON = "S'identifier avec FranceConnect"


@pytest.fixture(scope="module")
def fc_setup(backend: Any) -> Iterator[tuple[Upstream, Any, RelyingParty]]:
    with upstream_provider() as upstream, broker_platform(backend, upstream) as broker:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        client = broker.create_client(
            name="Cantine scolaire", redirect_uris=[f"{base}/auth/callback"],
            post_logout_redirect_uris=[f"{base}/"],
            backchannel_logout_uri=f"{base}/backchannel-logout", first_party=True,
            scopes=["openid", "profile", "email"],
        )
        app = create_rp(name="Cantine scolaire", issuer=broker.url,
                        client_id=client["client_id"], client_secret=client["client_secret"],
                        base_url=base)
        with serve(app, port):
            yield upstream, broker, RelyingParty(name="Cantine scolaire", url=base,
                                                 client=client, app=app)


def _through_franceconnect(page: Page, upstream: Upstream, citizen: dict[str, Any],
                           decision: str = "Autoriser") -> None:
    page.get_by_role("button", name=FC_BUTTON).click()
    page.wait_for_url(re.compile(re.escape(upstream.issuer) + r"/connexion\?"))
    fill_login_form(page, citizen["email"], citizen["password"])
    page.wait_for_url(re.compile(re.escape(upstream.issuer) + r"/connexion/consentement"))
    page.get_by_role("button", name=decision).click()


def test_first_sign_in_with_franceconnect(fc_setup, page, axe_check) -> None:
    upstream, broker, rp = fc_setup
    citizen = upstream.citizen()
    open_login_page(page, rp, broker.url)
    button = page.get_by_role("button", name=FC_BUTTON)
    expect(button).to_be_visible()
    expect(page.get_by_role("link", name="Qu'est-ce que FranceConnect ?")).to_have_attribute(
        "target", "_blank")
    axe_check(page)
    _through_franceconnect(page, upstream, citizen)
    page.wait_for_url(rp.url + "/")
    expect(heading(page)).to_have_text("Bonjour Angela Claire Louise Lagier")

    page.goto(broker.url + "/compte/profil")
    expect(page.get_by_role("heading", name="Identité vérifiée par FranceConnect")).to_be_visible()
    expect(page.locator("#family_name")).to_have_attribute("readonly", "")
    axe_check(page)


def test_linking_an_existing_account(fc_setup, page, axe_check) -> None:
    upstream, broker, rp = fc_setup
    email = f"compte-{secrets.token_hex(4)}@example.mq"
    local = broker.create_user(email=email, given_name="Angela", family_name="Lagier")
    citizen = upstream.citizen(email=email)
    open_login_page(page, rp, broker.url)
    _through_franceconnect(page, upstream, citizen)
    page.wait_for_url(re.compile(re.escape(broker.url) + "/connexion/franceconnect/retour"))
    expect(heading(page)).to_have_text("Relier votre identité FranceConnect")
    axe_check(page)
    page.get_by_role("link", name="Me connecter à ce compte pour le relier").click()
    fill_login_form(page, email, local["password"])
    page.wait_for_url(broker.url + "/connexion/franceconnect/relier")
    expect(page.locator("main")).to_contain_text(citizen["birthdate"])
    axe_check(page)
    page.get_by_role("button", name="Relier mon compte à FranceConnect").click()
    page.wait_for_url(rp.url + "/")
    expect(heading(page)).to_have_text("Bonjour Angela Claire Louise Lagier")


def test_cancelled_at_franceconnect(fc_setup, page, axe_check) -> None:
    upstream, broker, rp = fc_setup
    open_login_page(page, rp, broker.url)
    _through_franceconnect(page, upstream, upstream.citizen(), decision="Refuser")
    page.wait_for_url(re.compile(re.escape(broker.url) + "/connexion/franceconnect/retour"))
    expect(heading(page)).to_have_text("Connexion avec FranceConnect annulée")
    axe_check(page)
    page.get_by_role("link", name="Revenir à la page de connexion").click()
    expect(heading(page)).to_have_text("Se connecter")
    expect(page.locator("main")).to_contain_text("pour accéder à Cantine scolaire")
