"""The operators' mandate pages in Chromium: a support agent (two factors) records a parent
for a minor child without an account on a verified document (an error first), finds it in
the list and revokes it with a reason; a CTM administrator opts a client in to delegation on
its edit page. axe-core checks every page visited."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.journeys import EMBEDDED_ONLY, heading
from tests.e2e.test_admin_console import fill_login_form, give_totp_code
from tests.support.factors import add_totp, fresh_code, provider_clock

pytestmark = EMBEDDED_ONLY


def _sign_in(platform: Any, page: Page, role: str, check: Callable[[Any], Any]) -> None:
    agent = platform.create_user(given_name="Agent", family_name=role)
    platform.provider.organisations.grant(agent["id"], "ctm", role)
    secret = add_totp(platform.provider, agent["id"], name="Téléphone")
    page.goto(platform.url + "/admin/")
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion\?interaction="))
    fill_login_form(page, agent["email"], agent["password"])
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion/facteur\?interaction="))
    give_totp_code(page, fresh_code(provider_clock(platform.provider), secret))
    page.wait_for_url(platform.url + "/admin/")
    check(page)


def test_support_records_and_revokes_a_parent_mandate(platform, page, chromium, axe_check
                                                       ) -> None:
    check: Callable[[Any], Any] = axe_check
    parent = platform.create_user(given_name="Marie", family_name="Dupont")
    platform.create_client(name="Cantine de Sainte-Luce", delegation_allowed=True)
    _sign_in(platform, page, "support", check)

    page.get_by_role("navigation", name="Console d'administration").get_by_role(
        "link", name="Procurations", exact=True).click()
    expect(heading(page)).to_have_text("Procurations")
    check(page)
    page.get_by_role("link", name="Enregistrer une procuration").click()
    expect(heading(page)).to_have_text("Enregistrer une procuration")
    check(page)
    parent_field = page.get_by_label("Adresse du compte du parent ou du tuteur")
    parent_field.fill("personne@inconnu.mq")  # no such account: an error, tied to its field
    page.get_by_label(re.compile("^Prénom de l'enfant")).fill("Léo")
    page.get_by_label("Nom de l'enfant", exact=True).fill("Dupont")
    page.get_by_label("Cantine de Sainte-Luce").check()
    page.get_by_label(re.compile("^Fin de la procuration")).fill(
        (date.today() + timedelta(days=120)).isoformat())
    page.get_by_label("Référence de la pièce vérifiée").fill("Livret de famille 972-0042")
    page.get_by_label(re.compile("^Motif")).fill("pièce vue au guichet")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.locator("#mandataire-erreur")).to_be_visible()
    expect(parent_field).to_have_attribute("aria-invalid", "true")
    check(page)
    parent_field.fill(parent["email"])
    page.get_by_role("button", name="Enregistrer").click()
    expect(heading(page)).to_have_text("Procurations")
    expect(page.locator("main")).to_contain_text("La procuration est enregistrée")
    # the platform outlives this test (session scope): another run of it may have recorded
    # a Léo Dupont too, so the row is the one naming this parent's address
    row = page.get_by_role("row").filter(has_text="Léo Dupont").filter(has_text=parent["email"])
    expect(row).to_contain_text("Marie Dupont")
    expect(row).to_contain_text("active")
    check(page)
    row.get_by_label(re.compile("^Motif")).fill("jugement de retrait")
    row.get_by_role("button", name="Retirer").click()
    expect(page.locator("main")).to_contain_text("La procuration est retirée")
    expect(row).to_contain_text("retirée")
    check(page)


def test_admin_opts_a_client_in_to_delegation(platform, page, chromium, axe_check) -> None:
    check: Callable[[Any], Any] = axe_check
    client = platform.create_client(name="Portail des familles")
    _sign_in(platform, page, "ctm_admin", check)
    page.goto(f"{platform.url}/admin/clients/{client['client_id']}/modifier")
    check(page)
    page.get_by_label("Accepter les connexions par procuration").check()
    page.get_by_label(re.compile("^Motif")).fill("procurations des parents")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.locator("main")).to_contain_text("acceptées")
    check(page)
    assert platform.provider.clients.get(client["client_id"]).delegation_allowed
