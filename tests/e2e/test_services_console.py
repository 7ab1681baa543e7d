"""The service catalogue in Chromium — the issue's « done when »: a commune's buyer orders
« Martinique Connect » for its canteen application and a dark-fibre link between two of its
sites, a CTM approver approves both, the buyer receives working OIDC credentials (shown
once), the fibre pairs appear in the inventory, and the month's statement shows who pays
what. axe-core checks every page visited; the keyboard reaches every control used."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.journeys import EMBEDDED_ONLY, heading
from tests.e2e.test_admin_console import _nav, fill_login_form, give_totp_code
from tests.support.factors import add_totp, fresh_code, provider_clock

pytestmark = EMBEDDED_ONLY


def _sign_in(page: Page, platform: Any, person: dict[str, Any], secret: str) -> None:
    page.goto(platform.url + "/admin/")
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion\?interaction="))
    fill_login_form(page, person["email"], person["password"])
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion/facteur\?interaction="))
    give_totp_code(page, fresh_code(provider_clock(platform.provider), secret))
    page.wait_for_url(platform.url + "/admin/")


def _person(platform: Any, org: str, role: str) -> tuple[dict[str, Any], str]:
    person = platform.create_user(given_name="Agent", family_name=role)
    platform.provider.organisations.grant(person["id"], org, role)
    return person, add_totp(platform.provider, person["id"], name="Téléphone")


def test_buyer_orders_approver_approves_statement_shows_shares(
        platform: Any, page: Page, chromium: Any, axe_check: Callable[[Any], Any]) -> None:
    platform.live.app.state.services.seed(sites=True)
    buyer, buyer_secret = _person(platform, "lamentin", "buyer")
    approver, approver_secret = _person(platform, "ctm", "approver")

    # 1. The buyer browses the catalogue and orders Martinique Connect for the canteen.
    _sign_in(page, platform, buyer, buyer_secret)
    _nav(page, "Services")
    expect(heading(page)).to_have_text("Catalogue des services")
    axe_check(page)
    page.get_by_role("link", name="Commander").and_(page.locator(
        '[href="/admin/services/commander?offre=martinique-connect"]')).click()
    expect(heading(page)).to_have_text("Commander : Martinique Connect pour une application")
    axe_check(page)
    page.get_by_label("Nom de l'application").fill("Cantine scolaire du Lamentin")
    page.get_by_label(re.compile("^Adresses de redirection")).fill(
        "http://portail.exemple.mq/callback")  # refused: http:// off the loopback
    page.get_by_role("button", name="Envoyer la commande").click()
    expect(page.get_by_role("alert")).to_contain_text("Adresse de redirection invalide")
    axe_check(page)
    page.get_by_label(re.compile("^Adresses de redirection")).fill(
        "https://cantine.lamentin.mq/auth/callback")
    page.get_by_role("button", name="Envoyer la commande").click()
    expect(page.get_by_role("status")).to_contain_text("attend la validation de la CTM")
    expect(page.locator("main")).to_contain_text("en attente de validation par la CTM")
    axe_check(page)
    canteen_order = page.url.rsplit("/", 1)[1]

    # 2. ...and a dark-fibre pair between the town hall and the Long-Pré school.
    page.goto(platform.url + "/admin/services/commander?offre=fibre-noire")
    page.get_by_role("combobox", name=re.compile("^Site A")).select_option(
        label="Hôtel de ville du Lamentin")
    page.get_by_role("combobox", name=re.compile("^Site B")).select_option(
        label="Groupe scolaire de Long-Pré (cantine)")
    page.get_by_role("button", name="Envoyer la commande").click()
    expect(page.locator("main")).to_contain_text("en attente de validation par la CTM")
    fibre_order = page.url.rsplit("/", 1)[1]

    # 3. The CTM approver finds both orders waiting and approves them with a reason.
    context = chromium.new_context(locale="fr-FR", bypass_csp=True)
    other = context.new_page()
    try:
        _sign_in(other, platform, approver, approver_secret)
        _nav(other, "Services")
        other.goto(platform.url + "/admin/services/commandes?etat=held")
        expect(heading(other)).to_have_text("Commandes de services")
        axe_check(other)
        for order_id in (canteen_order, fibre_order):
            other.goto(f"{platform.url}/admin/services/commandes/{order_id}")
            axe_check(other)
            other.locator("#motif-approbation").fill("budget 2026 voté")
            other.get_by_role("button", name="Approuver").click()
            expect(other.get_by_role("status")).to_contain_text(
                "Commande approuvée et mise en service.")
        other.goto(platform.url + "/admin/services/fibre")
        expect(heading(other)).to_have_text("Réserves de fibre optique")
        expect(other.locator("main")).to_contain_text("C-LAM-DUC")
        axe_check(other)
    finally:
        context.close()

    # 4. The buyer reveals the credentials once; they work at the token endpoint.
    page.goto(f"{platform.url}/admin/services/commandes/{canteen_order}")
    expect(page.locator("main")).to_contain_text("terminée")
    button = page.get_by_role("button", name="Afficher le secret (une seule fois)")
    button.focus()
    page.keyboard.press("Enter")
    expect(heading(page)).to_have_text("Identifiants de l'application")
    axe_check(page)
    codes = page.locator("dl.fiche code").all_inner_texts()
    client_id, client_secret = codes[1], codes[2]
    assert client_id.startswith("svc-lamentin-")
    answer = httpx.post(f"{platform.url}/token", data={
        "grant_type": "authorization_code", "code": "inconnu",
        "redirect_uri": "https://cantine.lamentin.mq/auth/callback", "code_verifier": "x" * 43},
        auth=(client_id, client_secret))
    assert answer.json()["error"] == "invalid_grant"  # authenticated: only the code is bad
    page.goto(f"{platform.url}/admin/services/commandes/{canteen_order}")
    expect(page.get_by_role("button", name="Afficher le secret (une seule fois)")).to_have_count(0)

    # 5. The inventory shows the allocated pairs; the statement, who pays what.
    _nav(page, "Services")
    page.get_by_role("link", name="Inventaire").click()
    expect(heading(page)).to_have_text("Inventaire des services")
    expect(page.locator("main")).to_contain_text("C-LAM-DUC#")
    axe_check(page)
    page.goto(platform.url + "/admin/services/releves")
    expect(heading(page)).to_have_text(re.compile("^Relevé des coûts partagés"))
    expect(page.get_by_role("img")).to_have_count(1)
    expect(page.locator("table").first).to_contain_text("Le Lamentin")
    axe_check(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger le relevé (CSV)").click()
    content = Path(download.value.path()).read_text(encoding="utf-8")
    assert "Martinique Connect pour une application" in content
    assert "Paire de fibre noire entre deux sites" in content
