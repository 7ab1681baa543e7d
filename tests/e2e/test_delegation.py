"""Acting for someone else, in Chromium: a parent pays the canteen for a child; a mediator at
a France Services desk receives a mandate that the person confirms with a code read from
their mail; the person sees it in their activity and withdraws it — axe-core on each page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from demo_rp import create_rp
from idp.services.mandates import MandateTerms
from plateforme.clock import utcnow
from tests.e2e.conftest import RelyingParty
from tests.e2e.journeys import EMBEDDED_ONLY, fill_login_form, heading, open_login_page
from tests.support.live import free_port, serve

pytestmark = EMBEDDED_ONLY


@pytest.fixture
def canteen(platform: Any) -> Iterator[RelyingParty]:
    """The canteen demo application, which accepts delegation and takes payments."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client = platform.create_client(
        name="Cantine scolaire", redirect_uris=[f"{base}/auth/callback"],
        post_logout_redirect_uris=[f"{base}/"],
        backchannel_logout_uri=f"{base}/backchannel-logout", first_party=True,
        scopes=["openid", "profile", "email"], delegation_allowed=True,
    )
    app = create_rp(name="Cantine scolaire", issuer=platform.url,
                    client_id=client["client_id"], client_secret=client["client_secret"],
                    base_url=base, payment="Payer la cantine du mois")
    with serve(app, port):
        yield RelyingParty(name="Cantine scolaire", url=base, client=client, app=app)


def _sign_in_to_console(page: Page, platform: Any, path: str, user: dict[str, Any]) -> None:
    page.goto(platform.url + "/connexion?retour=" + path)
    fill_login_form(page, user["email"], user["password"])
    page.wait_for_url(platform.url + path)


def test_a_parent_pays_the_canteen_for_a_child(platform, canteen, page, axe_check) -> None:
    parent = platform.create_user(given_name="Marie", family_name="Dupont")
    child = platform.provider.mandates.create_minor(
        given_name="Léo", family_name="Dupont", birthdate="2016-04-02", actor="operateur")
    platform.provider.mandates.record_relationship(
        child.id, parent["id"], "parent", MandateTerms(
            clients=(canteen.client["client_id"],), scopes=("openid", "profile"),
            ends_at=utcnow() + timedelta(days=200)),
        actor="operateur", reason="livret de famille")

    open_login_page(page, canteen, platform.url)
    fill_login_form(page, parent["email"], parent["password"])
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion/pour-qui\?"))
    expect(heading(page)).to_have_text("Pour qui agissez-vous ?")
    expect(page.get_by_label("Pour moi (Marie Dupont)")).to_be_checked()
    axe_check(page)
    page.get_by_label("Pour Léo Dupont").check()
    page.get_by_role("button", name="Continuer").click()

    page.wait_for_url(canteen.url + "/")
    expect(heading(page)).to_have_text("Bonjour Léo Dupont")
    expect(page.locator("main")).to_contain_text("vous agissez pour le compte de Léo Dupont")
    page.get_by_role("button", name="Payer la cantine du mois").click()
    expect(heading(page)).to_have_text("Paiement enregistré")
    expect(page.locator("main")).to_contain_text("Paiement enregistré pour Léo Dupont "
                                                 "(par procuration)")

    page.goto(platform.url + "/compte/activite")
    expect(page.locator("main")).to_contain_text("Connexion pour le compte d'une autre personne")
    page.goto(platform.url + "/compte/procurations")
    expect(page.get_by_role("table", name="Procurations que vous avez reçues")).to_contain_text(
        "Léo Dupont")
    axe_check(page)


def test_a_mediator_helps_then_the_person_revokes(platform, page, axe_check, mailbox,
                                                  chromium) -> None:
    person = platform.create_user(given_name="Séraphine", family_name="Lubin")
    mediator = platform.create_user(given_name="Nadia", family_name="Médiatrice")
    platform.provider.organisations.grant(mediator["id"], "ctm", "mediator", actor="test",
                                          reason="France Services")

    _sign_in_to_console(page, platform, "/compte/procurations/mediation", mediator)
    expect(heading(page)).to_have_text("Procuration au guichet")
    axe_check(page)
    page.get_by_label("Adresse électronique du compte de la personne aidée").fill(
        person["email"])
    page.get_by_label("Jusqu'au").fill((utcnow() + timedelta(days=30)).date().isoformat())
    page.get_by_role("button", name="Envoyer le code à la personne").click()
    expect(page.locator("main")).to_contain_text("Un code à 6 chiffres vient d'être envoyé à "
                                                 "Séraphine Lubin")
    axe_check(page)
    message = mailbox.wait_for(person["email"], subject="procuration")
    code = re.search(r"\b(\d{6})\b", message.text)
    assert code is not None
    page.get_by_label("Code reçu par la personne").fill(code.group(1))
    page.get_by_role("button", name="Confirmer la procuration").click()
    expect(page.get_by_role("status")).to_contain_text("La procuration est confirmée")
    expect(page.get_by_role("table", name="Procurations que vous avez reçues")).to_contain_text(
        "Séraphine Lubin")

    context = chromium.new_context(locale="fr-FR", bypass_csp=True)
    try:
        own = context.new_page()
        _sign_in_to_console(own, platform, "/compte/procurations", person)
        given = own.get_by_role("table", name="Procurations que vous avez données")
        expect(given).to_contain_text("Nadia Médiatrice")
        expect(given).to_contain_text("au guichet, avec un médiateur numérique")
        axe_check(own)
        own.goto(platform.url + "/compte/activite")
        expect(own.locator("main")).to_contain_text("Procuration confirmée par code")
        axe_check(own)
        own.goto(platform.url + "/compte/procurations")
        own.get_by_role("button", name="Retirer la procuration donnée à Nadia Médiatrice").click()
        expect(own.get_by_role("status")).to_contain_text("La procuration est retirée")
        expect(own.get_by_role("table", name="Procurations que vous avez données")
               ).to_contain_text("retirée")
        own.goto(platform.url + "/compte/activite")
        expect(own.locator("main")).to_contain_text("Procuration retirée")
    finally:
        context.close()
    assert platform.provider.mandates.received(mediator["id"])[0].status == "revoked"
