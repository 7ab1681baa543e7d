"""A citizen's whole account journey in Chromium: create the account, confirm the address
from the email (read on a real SMTP server), sign in, use the account console, download the
data, delete the account. axe-core checks every page visited."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.journeys import EMBEDDED_ONLY, heading

pytestmark = EMBEDDED_ONLY

PASSWORD = "Mangue-Velo-Nuage-Tambour"


def sign_in(page: Page, email: str, password: str) -> None:
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Se connecter", exact=True).click()


def test_register_confirm_sign_in_console_export_delete(
        platform, page: Page, axe_check, mailbox) -> None:
    email = f"josephine-{time.time_ns()}@example.mq"

    # Registration: a common password is refused, the meter says why (server-side).
    page.goto(platform.url + "/inscription")
    expect(heading(page)).to_have_text("Créer votre compte")
    axe_check(page)
    page.get_by_label("Prénom").fill("Joséphine")
    page.get_by_label("Nom", exact=False).and_(page.locator("#family_name")).fill("Rosette")
    page.locator("#email").fill(email)
    page.locator("#password").fill("Martinique972!")
    page.locator("#password_confirmation").fill("Martinique972!")
    page.get_by_label("Code postal").fill("97200")
    page.get_by_label("Commune").fill("Fort-de-France")
    page.get_by_role("button", name="Créer mon compte").click()
    expect(page).to_have_title(re.compile("^Erreur : "))
    expect(page.get_by_role("alert")).to_contain_text("les plus courants")
    expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#robustesse-niveau")).to_have_text("Faible")
    expect(page.locator("#given_name")).to_have_value("Joséphine")
    axe_check(page)

    # The live meter (a small script from /static) follows the typing.
    page.locator("#password").fill(PASSWORD)
    expect(page.locator("#robustesse-niveau")).to_have_text("Excellent", timeout=5000)
    page.locator("#password_confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Créer mon compte").click()
    expect(heading(page)).to_have_text("Vérifiez votre messagerie")
    axe_check(page)

    # The confirmation email, received over SMTP.
    received = mailbox.wait_for(email)
    assert received.subject == "Confirmez votre adresse électronique"
    page.goto(received.link("/inscription/confirmer"))
    expect(heading(page)).to_have_text("Confirmer votre adresse électronique")
    axe_check(page)
    page.get_by_role("button", name="Confirmer mon adresse").click()
    expect(heading(page)).to_have_text("Adresse confirmée")
    axe_check(page)

    # Sign in, and come back to the console.
    page.get_by_role("link", name="Se connecter").click()
    page.wait_for_url(re.compile(r".*/connexion\?retour="))
    axe_check(page)
    sign_in(page, email, PASSWORD)
    page.wait_for_url(platform.url + "/compte/")
    expect(heading(page)).to_have_text("Mon compte")
    expect(page.locator("main")).to_contain_text(email)
    axe_check(page)

    # The profile: change the phone number.
    page.get_by_role("navigation", name="Mon compte").get_by_role("link", name="Profil").click()
    expect(heading(page)).to_have_text("Profil")
    expect(page.get_by_label("Code postal")).to_have_value("97200")
    axe_check(page)
    page.get_by_label("Numéro de téléphone").fill("0696 12 34 56")
    page.get_by_role("button", name="Enregistrer mon profil").click()
    expect(page.get_by_role("status")).to_contain_text("Votre profil est enregistré.")
    axe_check(page)

    for link, title in (("Mot de passe", "Changer de mot de passe"), ("Sessions", "Sessions"),
                        ("Applications connectées", "Applications connectées"),
                        ("Activité", "Activité du compte"), ("Mes données", "Mes données")):
        page.get_by_role("navigation", name="Mon compte").get_by_role(
            "link", name=link, exact=True).click()
        expect(heading(page)).to_have_text(title)
        axe_check(page)
        if title == "Sessions":
            expect(page.locator("main")).to_contain_text("(cette session)")
        if title == "Activité du compte":
            expect(page.locator("tbody")).to_contain_text("Création du compte")
            expect(page.locator("tbody")).to_contain_text("Modification du profil")

    # Download my data.
    with page.expect_download() as download:
        page.get_by_role("button", name="Télécharger mes données").click()
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert data["account"]["email"] == email
    assert data["account"]["phone_number"] == "0696 12 34 56"
    assert "password_hash" not in json.dumps(data)

    # Delete the account, after giving the password again.
    page.get_by_role("link", name="Supprimer mon compte").click()
    expect(heading(page)).to_have_text("Supprimer mon compte")
    axe_check(page)
    page.locator("#delete_password").fill("pas-le-bon-mot-de-passe")
    page.get_by_role("button", name="Supprimer définitivement mon compte").click()
    expect(page.get_by_role("alert").last).to_contain_text("Le mot de passe est incorrect.")
    expect(page.locator("#delete_password")).to_have_attribute("aria-invalid", "true")
    axe_check(page)
    page.locator("#delete_password").fill(PASSWORD)
    page.get_by_role("button", name="Supprimer définitivement mon compte").click()
    expect(heading(page)).to_have_text("Votre compte est supprimé")
    axe_check(page)
    assert platform.provider.users.get_by_email(email) is None

    # The account is gone: the console asks to sign in, and the sign-in fails.
    page.goto(platform.url + "/compte/")
    page.wait_for_url(re.compile(r".*/connexion\?retour=/compte/"))
    sign_in(page, email, PASSWORD)
    expect(page.get_by_role("alert")).to_be_visible()
