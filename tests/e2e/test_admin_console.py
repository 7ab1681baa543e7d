"""The administration console in Chromium: a CTM administrator signs in through Martinique
Connect with two factors (password, then a code from an authenticator app), registers a
commune's application whose credentials then work in a real code flow, locks an account (its
sign-in is refused), rotates the signing keys (old and new keys both published), finds it
all in the audit journal, then helps a person in difficulty (a new confirmation link, their
second factors reset). A commune agent without a second factor is shown how to add one,
adds an authenticator app, then reaches the console. axe-core checks every page visited.

TOTP codes come from the provider's clock, moved one step per code (one code, one use)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from demo_rp import create_rp
from tests.e2e.journeys import EMBEDDED_ONLY, expect_signed_in, heading
from tests.support.factors import add_totp, fresh_code, provider_clock
from tests.support.live import free_port, serve

pytestmark = EMBEDDED_ONLY


def fill_login_form(page: Page, email: str, password: str) -> None:
    """The provider's password sign-in form (by field name: the page offers other ways)."""
    page.locator('form[action="/connexion"] input[name="email"]').fill(email)
    page.locator('form[action="/connexion"] input[name="password"]').fill(password)
    page.get_by_role("button", name="Se connecter", exact=True).click()


def give_totp_code(page: Page, code: str) -> None:
    page.get_by_label("Code à 6 chiffres").fill(code)
    page.get_by_role("button", name="Valider le code").click()


def _nav(page: Page, label: str) -> None:
    page.get_by_role("navigation", name="Console d'administration").get_by_role(
        "link", name=label, exact=True).click()


def test_admin_console_journey(platform, page, chromium, axe_check) -> None:
    check: Callable[[Any], Any] = axe_check
    admin = platform.create_user(given_name="Alice", family_name="Administratrice")
    platform.provider.organisations.grant(admin["id"], "ctm", "ctm_admin")
    secret = add_totp(platform.provider, admin["id"], name="Téléphone d'Alice")
    clock = provider_clock(platform.provider)
    citizen = platform.create_user(given_name="Marie", family_name="Dupont")
    rp_port = free_port()
    rp_url = f"http://127.0.0.1:{rp_port}"

    # 1. Sign in to the console through the provider's sign-in page: password, then code.
    page.goto(platform.url + "/admin/")
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion\?interaction="))
    check(page)
    fill_login_form(page, admin["email"], admin["password"])
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion/facteur\?interaction="))
    expect(heading(page)).to_have_text("Confirmer votre identité")
    expect(page.locator("main")).to_contain_text("pour accéder à Console d'administration")
    check(page)
    give_totp_code(page, fresh_code(clock, secret))
    page.wait_for_url(platform.url + "/admin/")
    expect(heading(page)).to_have_text("Tableau de bord")
    check(page)

    # 2. Register an application for Le Lamentin with the guided form (an error first).
    _nav(page, "Applications")
    expect(heading(page)).to_have_text("Applications clientes")
    check(page)
    page.get_by_role("link", name="Enregistrer une application").click()
    expect(heading(page)).to_have_text("Enregistrer une application")
    check(page)
    page.get_by_role("combobox", name=re.compile("^Organisation")).select_option(
        label="Le Lamentin")
    page.get_by_label("Nom affiché aux usagers").fill("Portail des familles")
    redirects = page.get_by_role("textbox", name=re.compile("^Adresses de redirection"))
    redirects.fill("http://portail.exemple.mq/auth/callback")  # http:// off the loopback
    page.get_by_role("button", name="Enregistrer l'application").click()
    expect(page).to_have_title(re.compile("^Erreur : "))
    expect(page.get_by_role("alert")).to_contain_text("erreur")
    expect(page.locator("#redirections")).to_have_attribute("aria-invalid", "true")
    check(page)
    redirects = page.get_by_role("textbox", name=re.compile("^Adresses de redirection"))
    redirects.fill(f"{rp_url}/auth/callback")
    page.get_by_role("textbox", name=re.compile("^Adresses de retour")).fill(f"{rp_url}/")
    page.get_by_role("textbox", name=re.compile("^Adresse de déconnexion")).fill(
        f"{rp_url}/backchannel-logout")
    page.get_by_role("button", name="Enregistrer l'application").click()
    expect(heading(page)).to_have_text("Application enregistrée")
    check(page)
    client_id = page.locator("#client-id").inner_text()
    secret = page.locator("#client-secret").inner_text()
    assert platform.provider.clients.show(client_id).organisation == "lamentin"
    page.get_by_role("link", name="Fiche d'intégration").click()
    expect(page.locator("main")).to_contain_text(
        f"{platform.url}/.well-known/openid-configuration")
    check(page)
    page.get_by_role("link", name="Revenir à l'application").click()
    expect(heading(page)).to_have_text("Portail des familles")
    check(page)
    page.get_by_role("link", name="Modifier le nom et les adresses").click()
    check(page)

    # 3. Its credentials in a real code flow: the citizen signs in to the application.
    rp_app = create_rp(name="Portail des familles", issuer=platform.url, client_id=client_id,
                       client_secret=secret, base_url=rp_url)
    citizen_context = chromium.new_context(locale="fr-FR")
    citizen_page = citizen_context.new_page()
    with serve(rp_app, rp_port):
        rp = type("RP", (), {"url": rp_url, "name": "Portail des familles"})
        citizen_page.goto(rp_url + "/login")
        fill_login_form(citizen_page, citizen["email"], citizen["password"])
        citizen_page.wait_for_url(re.compile(re.escape(platform.url)
                                             + r"/connexion/consentement\?"))
        citizen_page.get_by_role("button", name="Autoriser").click()
        expect_signed_in(citizen_page, rp)

        # 4. Lock the citizen's account: the application's session ends, sign-in is refused.
        _nav(page, "Personnes")
        expect(heading(page)).to_have_text("Personnes")
        page.get_by_label("Rechercher par adresse électronique").fill(citizen["email"])
        page.get_by_role("button", name="Rechercher").click()
        check(page)
        page.get_by_role("link", name=citizen["email"]).click()
        expect(heading(page)).to_have_text(citizen["email"])
        check(page)
        page.locator("#motif-verrou").fill("usurpation signalée au guichet")
        page.get_by_role("button", name="Verrouiller", exact=True).click()
        expect(page.get_by_role("status")).to_contain_text("Le compte est verrouillé")
        check(page)
        page.get_by_role("link", name="Gérer les consentements").click()
        expect(page.locator("main")).to_contain_text("Portail des familles")
        check(page)

        citizen_page.goto(rp_url + "/login")
        citizen_page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion\?"))
        fill_login_form(citizen_page, citizen["email"], citizen["password"])
        expect(citizen_page.get_by_role("alert")).to_contain_text(
            "Adresse électronique ou mot de passe incorrect.")
    citizen_context.close()

    # 5. Rotate the signing keys: the new active key and the old one are both published.
    before = {k["kid"] for k in httpx.get(platform.url + "/jwks.json").json()["keys"]}
    _nav(page, "Clés de signature")
    expect(heading(page)).to_have_text("Clés de signature")
    check(page)
    active_before = {k.kid for k in platform.provider.keys.list_keys() if k.status == "active"}
    page.get_by_label("Algorithme").select_option(label="Tous (ES256 et RS256)")
    page.locator("#rotation-motif").fill("rotation semestrielle")
    page.get_by_role("button", name="Renouveler").click()
    expect(page.get_by_role("status")).to_contain_text("Nouvelle clé active")
    check(page)
    keys = platform.provider.keys.list_keys()
    active_after = {k.kid for k in keys if k.status == "active"}
    assert active_after and active_after.isdisjoint(active_before)
    assert {k.kid for k in keys if k.status == "retiring"} >= active_before
    published = {k["kid"] for k in httpx.get(platform.url + "/jwks.json").json()["keys"]}
    assert active_before <= published, "the old keys stay published"
    assert active_after <= published and active_after <= before, "published before signing"

    # 6. Organisations, then the journal shows every action.
    _nav(page, "Organisations")
    check(page)
    page.get_by_role("link", name="Le Lamentin").click()
    expect(heading(page)).to_have_text("Le Lamentin")
    check(page)
    _nav(page, "Journal d'audit")
    expect(page.locator("#chaine")).to_contain_text("Chaîne d'empreintes intègre")
    check(page)
    page.get_by_role("textbox", name=re.compile("^Acteur")).fill(admin["email"])
    page.get_by_role("button", name="Filtrer").click()
    journal = page.locator("table.journal")
    for action in ("client.create", "user.lock", "key.rotate"):
        expect(journal).to_contain_text(action)
    check(page)

    # 7. A person in difficulty: a new confirmation link, then their second factors reset.
    stuck = platform.create_user(given_name="Paul", email_verified=False)
    add_totp(platform.provider, stuck["id"], name="Téléphone perdu")
    page.goto(f"{platform.url}/admin/personnes/{stuck['id']}")
    expect(page.locator("main")).to_contain_text("Téléphone perdu")
    check(page)
    for field in ("#motif-verification", "#motif-facteurs"):
        expect(page.locator(field)).to_have_attribute("required", "")
    page.locator("#motif-verification").fill("courriel jamais reçu")
    page.get_by_role("button", name="Renvoyer le courriel").click()
    expect(page.get_by_role("status")).to_contain_text("Un nouveau lien de confirmation")
    page.locator("#motif-facteurs").fill("téléphone perdu, identité vérifiée")
    page.get_by_role("button", name="Réinitialiser les seconds facteurs").click()
    expect(page.get_by_role("status")).to_contain_text("Les seconds facteurs sont réinitialisés")
    expect(page.locator("main")).to_contain_text("aucun (mot de passe seul)")
    check(page)
    assert platform.provider.factors.summary(stuck["id"]).totp == []


def test_staff_without_a_second_factor_adds_one_then_reaches_the_console(platform, page,
                                                                          axe_check) -> None:
    check: Callable[[Any], Any] = axe_check
    agent = platform.create_user(given_name="Louis", family_name="Lamentin")
    platform.provider.organisations.grant(agent["id"], "lamentin", "org_admin")
    clock = provider_clock(platform.provider)

    # 1. The password alone does not open the console: the provider explains what to do.
    page.goto(platform.url + "/admin/")
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion\?interaction="))
    fill_login_form(page, agent["email"], agent["password"])
    expect(heading(page)).to_have_text("Connexion renforcée demandée")
    expect(page.locator("main")).to_contain_text("Console d'administration")
    assert not page.url.startswith(platform.url + "/admin/")
    check(page)
    # Going back to the console without signing in: it says the same, and opens nothing.
    page.get_by_role("button", name="Revenir au service sans me connecter").click()
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/admin/auth/callback\?error="))
    expect(heading(page)).to_have_text("Connexion renforcée demandée")
    expect(page.get_by_role("link", name="Ajouter un second facteur")).to_be_visible()
    check(page)
    page.get_by_role("link", name="Se connecter à la console").click()
    expect(heading(page)).to_have_text("Connexion renforcée demandée")  # the provider's again
    assert page.url.startswith(platform.url + "/authorize")

    # 2. Add an authenticator app from the account's security page.
    page.get_by_role("link", name="Ajouter un second facteur").click()
    expect(heading(page)).to_have_text("Sécurité de votre compte")
    expect(page.locator("main")).to_contain_text(
        "Console d'administration demande une connexion renforcée")
    check(page)
    page.get_by_role("link", name="Ajouter une application d'authentification").click()
    expect(heading(page)).to_have_text("Ajouter une application d'authentification")
    check(page)
    secret = page.locator("#cle-totp").inner_text().replace(" ", "")
    page.get_by_label("Code à 6 chiffres").fill(fresh_code(clock, secret))
    page.get_by_role("button", name="Activer").click()
    expect(heading(page)).to_have_text("Vos codes de secours")
    check(page)
    page.get_by_role("link", name="J'ai noté mes codes, continuer").click()
    expect(page.get_by_role("status")).to_contain_text(
        "L'application d'authentification est ajoutée.")
    check(page)

    # 3. Back to the console: only the missing factor is asked (step-up), then the dashboard.
    page.get_by_role("link", name="continuer vers Console d'administration").click()
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/connexion/facteur\?interaction="))
    expect(page.locator("main")).to_contain_text("connexion renforcée")
    expect(page.get_by_label("Mot de passe")).to_have_count(0)
    check(page)
    give_totp_code(page, fresh_code(clock, secret))
    page.wait_for_url(platform.url + "/admin/")
    expect(heading(page)).to_have_text("Tableau de bord")
    check(page)
