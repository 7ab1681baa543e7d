"""Strong authentication in Chromium: sign in → add an authenticator app (codes computed with
pyotp from the key shown on the page) → step-up for a service asking ``eidas2`` → sign out →
sign in with the TOTP code using the keyboard alone → add a passkey and sign in without a
password, with Chromium's virtual WebAuthn authenticator (CDP). axe-core runs on every page.

WebAuthn refuses IP addresses, so this journey's provider answers on ``http://localhost``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from jose import jwt as jose_jwt
from playwright.sync_api import Page, expect

from tests.conftest import Platform, make_settings
from tests.e2e.conftest import RelyingParty
from tests.e2e.journeys import EMBEDDED_ONLY, SIGN_IN_LINK, expect_signed_in, heading
from tests.e2e.test_keyboard_login import tab, tab_to_field, tab_until
from tests.support.factors import MovableClock
from tests.support.live import free_port, serve

pytestmark = EMBEDDED_ONLY


@pytest.fixture
def localhost_platform(backend: Any) -> Iterator[Platform]:
    from martinique_connect.app import create_app

    data_dir = Path(tempfile.mkdtemp(prefix="mc-webauthn-"))
    port = free_port()
    settings = make_settings(backend, data_dir, port, issuer=f"http://localhost:{port}")
    with serve(create_app(settings), port) as live:
        live.url = settings.issuer
        yield Platform(live=live, settings=settings)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def services(localhost_platform: Platform) -> Iterator[Callable[..., RelyingParty]]:
    """Demo applications registered at the localhost provider (``default_acr`` optional)."""
    from demo_rp import create_rp

    with ExitStack() as stack:

        def start(name: str, default_acr: str | None = None) -> RelyingParty:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            client = localhost_platform.create_client(
                name=name, redirect_uris=[f"{base}/auth/callback"],
                post_logout_redirect_uris=[f"{base}/"],
                backchannel_logout_uri=f"{base}/backchannel-logout", first_party=True,
                scopes=["openid", "profile", "email"], default_acr=default_acr,
            )
            app = create_rp(name=name, issuer=localhost_platform.url,
                            client_id=client["client_id"], client_secret=client["client_secret"],
                            base_url=base)
            stack.enter_context(serve(app, port))
            return RelyingParty(name=name, url=base, client=client, app=app)

        yield start


def _claims(rp: RelyingParty) -> dict[str, Any]:
    """What the application's ID token says (the application verified it already)."""
    (session,) = rp.local_sessions.values()
    return dict(jose_jwt.get_unverified_claims(session["id_token"]))


def _sign_out(page: Page, rp: RelyingParty) -> None:
    page.goto(rp.url + "/")
    page.get_by_role("button", name="Se déconnecter").click()
    page.wait_for_url(re.compile(re.escape(rp.url) + r"/\?state="))
    expect(page.get_by_role("link", name=SIGN_IN_LINK)).to_be_visible()


def test_totp_step_up_and_passkeys(localhost_platform, services, page, axe_check) -> None:
    platform = localhost_platform
    url = platform.url
    clock = MovableClock()
    platform.provider.factors.totp.clock = clock
    user = platform.create_user(given_name="Marie", family_name="Dupont")
    canteen = services("Cantine scolaire")
    fines = services("Paiement des amendes", default_acr="eidas2")

    # 1. Sign in to the canteen with the password (the account has no second factor yet).
    page.goto(canteen.url + "/")
    page.get_by_role("link", name=SIGN_IN_LINK).click()
    page.wait_for_url(re.compile(re.escape(url) + r"/connexion\?interaction="))
    expect(page.get_by_role("button", name="Se connecter avec une clé d'accès")).to_be_visible()
    axe_check(page)
    page.get_by_label("Adresse électronique").fill(user["email"])
    page.get_by_label("Mot de passe").fill(user["password"])
    page.get_by_role("button", name="Se connecter", exact=True).click()
    expect_signed_in(page, canteen)
    assert _claims(canteen)["acr"] == "eidas1"

    # 2. Add an authenticator app from the account's security page.
    page.goto(url + "/compte/securite")
    expect(heading(page)).to_have_text("Sécurité de votre compte")
    axe_check(page)
    page.get_by_role("link", name="Ajouter une application d'authentification").click()
    expect(heading(page)).to_have_text("Ajouter une application d'authentification")
    expect(page.get_by_role("img", name=re.compile("Code QR"))).to_be_visible()
    axe_check(page)
    secret = page.locator("#cle-totp").inner_text().replace(" ", "")
    page.get_by_label("Code à 6 chiffres").fill(clock.code(secret))
    page.get_by_label("Nom de cette application (facultatif)").fill("Téléphone de Marie")
    page.get_by_role("button", name="Activer").click()
    expect(heading(page)).to_have_text("Vos codes de secours")
    expect(page.locator("#codes-secours li")).to_have_count(10)
    axe_check(page)
    page.get_by_role("link", name="J'ai noté mes codes, continuer").click()
    expect(page.get_by_role("status")).to_contain_text(
        "L'application d'authentification est ajoutée.")
    expect(page.locator("main")).to_contain_text("Téléphone de Marie")
    axe_check(page)

    # 3. A service asking for eidas2: only the second factor is asked (step-up).
    clock.next_step()
    page.goto(fines.url + "/")
    page.get_by_role("link", name=SIGN_IN_LINK).click()
    page.wait_for_url(re.compile(re.escape(url) + r"/connexion/facteur\?interaction="))
    expect(heading(page)).to_have_text("Confirmer votre identité")
    expect(page.locator("main")).to_contain_text("connexion renforcée")
    expect(page.get_by_label("Mot de passe")).to_have_count(0)
    axe_check(page)
    page.get_by_label("Code à 6 chiffres").fill(clock.code(secret))
    page.get_by_role("button", name="Valider le code").click()
    expect_signed_in(page, fines)
    claims = _claims(fines)
    assert claims["acr"] == "eidas2" and claims["amr"] == ["pwd", "otp", "mfa"]

    # 4. Sign out (every application of the session is signed out).
    _sign_out(page, canteen)

    # 5. Sign in with the TOTP code, with the keyboard alone.
    clock.next_step()
    page.goto(canteen.url + "/")
    tab_until(page, lambda f: f["tag"] == "a" and f["text"].strip() == SIGN_IN_LINK)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(url) + r"/connexion\?interaction="))
    tab_to_field(page, "email")
    page.keyboard.type(user["email"])
    tab_to_field(page, "password")
    page.keyboard.type(user["password"])
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(url) + r"/connexion/facteur\?interaction="))
    axe_check(page)
    first = tab(page)
    assert first["text"].strip() == "Aller au contenu", first
    tab_to_field(page, "code")
    page.keyboard.type(clock.code(secret))
    page.keyboard.press("Enter")
    expect_signed_in(page, canteen)
    assert _claims(canteen)["acr"] == "eidas2"

    # 6. Add a passkey (Chromium's virtual authenticator: user verification by "PIN").
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
    }})["authenticatorId"]
    page.goto(url + "/compte/securite")
    page.get_by_role("link", name="Ajouter une clé d'accès").click()
    expect(heading(page)).to_have_text("Ajouter une clé d'accès")
    axe_check(page)
    # Past the account's navigation, to the name field and the button.
    tab_until(page, lambda f: f["tag"] == "input" and f["id"] == "nom", limit=20)
    page.keyboard.type("Ordinateur de Marie")
    tab_until(page, lambda f: f["tag"] == "button" and "Créer la clé" in f["text"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text("La clé d'accès est ajoutée.")
    expect(page.locator("main")).to_contain_text("Ordinateur de Marie")
    axe_check(page)
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    (credential,) = credentials["credentials"]
    assert credential["isResidentCredential"], "a discoverable credential (passkey)"

    # 7. Sign out, then sign in without a password, with the button: as in a browser without
    # passkey autofill (conditional mediation), which Chromium's virtual authenticator would
    # otherwise answer at once (tests/e2e/test_passkey_autofill.py covers the autofill).
    page.add_init_script(
        "PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);")
    _sign_out(page, canteen)
    page.get_by_role("link", name=SIGN_IN_LINK).click()
    page.wait_for_url(re.compile(re.escape(url) + r"/connexion\?interaction="))
    tab_until(page, lambda f: f["tag"] == "button" and "clé d'accès" in f["text"], limit=12)
    page.keyboard.press("Enter")
    expect_signed_in(page, canteen)
    claims = _claims(canteen)
    assert claims["acr"] == "eidas2" and claims["amr"] == ["hwk", "mfa"]
