"""The archive pages in Chromium, with the keyboard: an archivist of Le Lamentin signs in
(password and code), searches the archives, opens a unit and its logbook, proposes the
elimination of a unit whose DUA has expired; the archival authority visas it and finds the
certificate. axe-core checks every page visited."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from archivage import Actor
from tests.e2e.journeys import EMBEDDED_ONLY, heading
from tests.e2e.test_admin_console import fill_login_form, give_totp_code
from tests.functional.archivage.conftest import client_token
from tests.functional.archivage.test_rules import REFERENTIEL
from tests.support.factors import add_totp, fresh_code, provider_clock

pytestmark = EMBEDDED_ONLY


def _sign_in(page: Page, platform: Any, person: dict[str, Any], secret: str) -> None:
    page.goto(platform.url + "/admin/archives")
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion\?interaction="))
    fill_login_form(page, person["email"], person["password"])
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion/facteur\?interaction="))
    give_totp_code(page, fresh_code(provider_clock(platform.provider), secret))
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/admin/archives"))


def test_archivist_and_authority_journey(platform, chromium, axe_check) -> None:
    archives = platform.live.app.state.archives

    archives.rules.import_csv(REFERENTIEL, actor=Actor("test", "lamentin",
                                                       frozenset({"archivist"})))
    tag = secrets.token_hex(3)
    token = client_token(platform, "lamentin", ["archives:write", "archives:read"])
    response = httpx.post(
        f"{platform.url}/api/archives/deposits", headers={"Authorization": f"Bearer {token}"},
        files=[("metadata", (None, json.dumps({
            "title": f"Titres de recettes {tag}",
            "rules": [{"rule_id": "APP-6M", "start_date": "2020-01-01",
                       "final_action": "détruire"}]}))),
               ("file", ("titres.txt", b"titres de recettes"))])
    assert response.status_code == 201, response.text

    archivist = platform.create_user()
    platform.provider.organisations.grant(archivist["id"], "lamentin", "archivist")
    secret = add_totp(platform.provider, archivist["id"])
    context = chromium.new_context(locale="fr-FR", bypass_csp=True)
    page = context.new_page()
    _sign_in(page, platform, archivist, secret)
    expect(heading(page)).to_have_text("Archives")
    axe_check(page)
    search = page.get_by_label(re.compile("^Rechercher"))
    search.focus()
    page.keyboard.type(tag)
    page.keyboard.press("Enter")
    link = page.get_by_role("link", name=f"Titres de recettes {tag}")
    expect(link).to_be_visible()
    axe_check(page)
    link.focus()
    page.keyboard.press("Enter")
    expect(heading(page)).to_have_text(f"Titres de recettes {tag}")
    expect(page.get_by_role("table", name="Journal du cycle de vie")).to_be_visible()
    axe_check(page)

    page.goto(platform.url + "/admin/archives")
    page.get_by_role("link", name="Verser des documents").click()
    expect(heading(page)).to_have_text("Verser des documents")
    axe_check(page)
    page.get_by_label("Fichiers").set_input_files(
        [{"name": "note.txt", "mimeType": "text/plain", "buffer": b"note de service"}])
    page.get_by_label("Intitulé").fill(f"Note de service {tag}")
    page.get_by_role("button", name="Verser").press("Enter")
    expect(heading(page)).to_have_text(f"Note de service {tag}")
    expect(page.get_by_role("status")).to_contain_text("Versement accepté")
    axe_check(page)

    page.goto(platform.url + "/admin/archives/eliminations")
    expect(heading(page)).to_have_text("Éliminations")
    axe_check(page)
    box = page.get_by_role("checkbox", name=re.compile(f"Titres de recettes {tag}"))
    box.focus()
    page.keyboard.press("Space")
    page.get_by_label("Motif de la proposition").fill("DUA échue")
    page.get_by_role("button", name="Proposer le bordereau d'élimination").press("Enter")
    expect(heading(page)).to_have_text(re.compile("^Bordereau d'élimination"))
    axe_check(page)
    bordereau_url = page.url
    context.close()

    authority = platform.create_user()
    platform.provider.organisations.grant(authority["id"], "ctm", "archival_authority")
    secret = add_totp(platform.provider, authority["id"])
    context = chromium.new_context(locale="fr-FR", bypass_csp=True)
    page = context.new_page()
    page.goto(bordereau_url)
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion\?interaction="))
    fill_login_form(page, authority["email"], authority["password"])
    give_totp_code(page, fresh_code(provider_clock(platform.provider), secret))
    page.wait_for_url(bordereau_url)
    axe_check(page)
    page.get_by_role("radio", name="accorder").first.check()
    page.get_by_role("button", name="Enregistrer le visa").press("Enter")
    expect(page.get_by_role("link", name=re.compile("certificat de destruction"))).to_be_visible()
    axe_check(page)
    page.goto(platform.url + "/admin/archives/audits")
    expect(heading(page)).to_have_text("Audits d'intégrité")
    axe_check(page)
    context.close()


def test_archivist_manages_sharing_rules_contract_and_sees_progress(platform, chromium,
                                                                     axe_check) -> None:
    """The management pages with the keyboard, axe-clean; the deposit's progress bar with
    JavaScript, and the same deposit form without it."""
    tag = secrets.token_hex(3)
    token = client_token(platform, "lamentin", ["archives:write", "archives:read"])
    response = httpx.post(
        f"{platform.url}/api/archives/deposits", headers={"Authorization": f"Bearer {token}"},
        files=[("metadata", (None, json.dumps({"title": f"Registre {tag}"}))),
               ("file", ("registre.txt", b"registre"))])
    assert response.status_code == 201, response.text
    unit_id = response.json()["units"][0]["id"]
    archivist = platform.create_user()
    platform.provider.organisations.grant(archivist["id"], "lamentin", "archivist")
    secret = add_totp(platform.provider, archivist["id"])
    context = chromium.new_context(locale="fr-FR", bypass_csp=True)
    page = context.new_page()
    _sign_in(page, platform, archivist, secret)

    page.get_by_role("link", name="Référentiel des règles de gestion").click()
    expect(heading(page)).to_have_text("Référentiel des règles de gestion")
    axe_check(page)
    page.get_by_label("Fichier CSV").set_input_files([{
        "name": "regles.csv", "mimeType": "text/csv",
        "buffer": (REFERENTIEL + "BAD-1,Inconnue,X,,5,year\n").encode()}])
    page.get_by_role("button", name="Importer").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("référentiel refusé (1 erreur(s)")
    expect(page.locator("#regles-fichier-erreur")).to_contain_text("RuleType « Inconnue » inconnu")
    axe_check(page)
    page.get_by_label("Fichier CSV").set_input_files([{
        "name": "regles.csv", "mimeType": "text/csv", "buffer": REFERENTIEL.encode()}])
    page.get_by_role("button", name="Importer").press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Référentiel importé")
    expect(page.get_by_role("cell", name="ACC-25")).to_be_visible()

    page.goto(f"{platform.url}/admin/archives/unites/{unit_id}")
    expect(heading(page)).to_have_text(f"Registre {tag}")
    axe_check(page)
    page.get_by_label("Organisation destinataire").select_option("schoelcher")
    page.get_by_label(re.compile("^Fin du partage")).fill("2030-06-30")
    page.get_by_role("button", name="Partager", exact=True).press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Unité partagée")
    expect(page.get_by_role("button", name="Révoquer le partage avec schoelcher")).to_be_visible()
    axe_check(page)
    page.get_by_label("Règle").first.select_option("APP-10")
    page.get_by_label("Sort final").select_option("détruire")
    motif = page.get_by_label(re.compile("^Motif du changement"))
    motif.fill("révision")
    motif.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Règles de l'unité modifiées")
    page.get_by_role("button", name="Révoquer le partage avec schoelcher").press("Enter")
    expect(page.get_by_role("status")).to_contain_text("révoqué")

    page.goto(f"{platform.url}/admin/archives/contrat")
    expect(heading(page)).to_have_text("Contrat d'entrée")
    axe_check(page)
    page.get_by_label(re.compile("^Nombre maximal")).fill("beaucoup")
    page.get_by_label(re.compile("^Motif du changement")).fill("contrat")
    page.get_by_role("button", name="Enregistrer le contrat").press("Enter")
    expect(page.locator("#contrat-fichiers_max-erreur")).to_contain_text("entier positif")
    axe_check(page)
    page.get_by_label(re.compile("^Nombre maximal")).fill("50")
    page.get_by_role("button", name="Enregistrer le contrat").press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Contrat d'entrée enregistré")

    page.goto(f"{platform.url}/admin/archives/versement")
    page.evaluate("""() => {
        const bar = document.getElementById('versement-barre');
        new MutationObserver(() => {
            if (bar.hasAttribute('value')) sessionStorage.setItem('vu', bar.getAttribute('value'));
        }).observe(bar, {attributes: true});
    }""")
    page.get_by_label("Fichiers").set_input_files(
        [{"name": "gros.bin", "mimeType": "application/octet-stream",
          "buffer": b"\x01" * (4 * 1024 * 1024)}])
    page.get_by_label("Intitulé").fill(f"Gros fichier {tag}")
    with page.expect_request(lambda r: r.method == "POST"
                             and r.headers.get("x-progression") == "xhr"):
        page.get_by_role("button", name="Verser").press("Enter")
    expect(heading(page)).to_have_text(f"Gros fichier {tag}")
    expect(page.get_by_role("status")).to_contain_text("Versement accepté")
    assert int(page.evaluate("() => sessionStorage.getItem('vu')") or 0) > 0
    context.close()

    no_js = chromium.new_context(locale="fr-FR", bypass_csp=True, java_script_enabled=False)
    page = no_js.new_page()
    _sign_in(page, platform, archivist, secret)
    page.goto(f"{platform.url}/admin/archives/versement")
    expect(page.locator("#versement-progression")).to_be_hidden()
    page.get_by_label("Fichiers").set_input_files(
        [{"name": "sans-js.txt", "mimeType": "text/plain", "buffer": b"sans script"}])
    page.get_by_label("Intitulé").fill(f"Sans script {tag}")
    page.get_by_role("button", name="Verser").press("Enter")
    expect(heading(page)).to_have_text(f"Sans script {tag}")
    expect(page.get_by_role("status")).to_contain_text("Versement accepté")
    no_js.close()
