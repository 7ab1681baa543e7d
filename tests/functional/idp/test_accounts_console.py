"""The account console (``/compte/``) over real HTTP, on each backend: profile and address
change, sessions, connected applications (with back-channel logout), activity, data export
and account deletion."""

from __future__ import annotations

import json
import re

import httpx
from jose import jwt as jose_jwt
from sqlmodel import Session, select

from idp import PLATFORM_ORGANISATION
from idp.models import Consent, RecoveryCode, TotpFactor, User
from plateforme.audit import AuditEvent
from tests.conftest import CodeFlow
from tests.functional.idp.test_accounts import (
    events,
    open_link,
    refresh,
    sign_in,
    unique_email,
)
from tests.support.browser import Browser
from tests.support.receiver import backchannel_receiver


def console(platform, user) -> Browser:
    browser = Browser()
    assert sign_in(browser, platform, user["email"], user["password"]).status_code == 303
    return browser


def post_form(browser: Browser, platform, page_path: str, action: str, **values: str
              ) -> httpx.Response:
    page = browser.get(platform.url + page_path)
    assert page.status_code == 200, page.text
    fields = browser.form_fields(page.text, action)
    fields.update(values)
    return browser.post(platform.url + action, fields, follow=False)


def introspect(platform, client, token: str) -> dict:
    return httpx.post(f"{platform.url}/introspect", data={"token": token},
                      auth=(client["client_id"], client["client_secret"])).json()


def test_console_pages_need_a_session_and_come_back_after_sign_in(platform) -> None:
    browser = Browser()
    for path in ("/compte/", "/compte/profil", "/compte/sessions", "/compte/applications",
                 "/compte/activite", "/compte/donnees", "/compte/supprimer",
                 "/compte/mot-de-passe"):
        response = browser.get(platform.url + path, follow=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/connexion?retour={path}"
    assert browser.get(platform.url + "/compte", follow=False).headers["location"] == "/compte/"


def test_every_console_page_links_security_and_carries_labelled_fields(platform, user) -> None:
    browser = console(platform, user)
    for path in ("/compte/", "/compte/profil", "/compte/sessions", "/compte/applications",
                 "/compte/activite", "/compte/donnees", "/compte/supprimer",
                 "/compte/mot-de-passe"):
        page = browser.get(platform.url + path)
        assert page.status_code == 200, path
        assert '<a href="/compte/securite"' in page.text, path
        assert 'aria-current="page"' in page.text or path == "/compte/supprimer", path
        for field_id in re.findall(r'<input type="(?:text|email|password|tel|date)" id="([^"]+)"',
                                   page.text):
            assert f'<label for="{field_id}"' in page.text, (path, field_id)
    profile = browser.get(platform.url + "/compte/profil").text
    for token in ("given-name", "family-name", "bday", "tel", "street-address", "postal-code",
                  "address-level2", "email", "current-password"):
        assert f'autocomplete="{token}"' in profile, token


def test_profile_edit_and_address_change_confirmed_by_the_new_address(
        platform, user, mailbox) -> None:
    browser = console(platform, user)
    bad = post_form(browser, platform, "/compte/profil", "/compte/profil", given_name="",
                    birthdate="2999-01-01", postal_code="??")
    assert bad.status_code == 422
    assert 'id="given_name" name="given_name" value="" autocomplete="given-name" required ' \
           'aria-describedby="given_name-erreur" aria-invalid="true"' in bad.text
    saved = post_form(browser, platform, "/compte/profil", "/compte/profil",
                      given_name="Marie-Josée", family_name="Dupont", birthdate="1990-01-31",
                      phone_number="+596 696 12 34 56", street_address="12 rue Schœlcher",
                      postal_code="97200", locality="Fort-de-France", locale="en")
    assert saved.status_code == 303
    # The account now prefers English: its pages follow.
    assert "Your profile is saved." in browser.get(platform.url + saved.headers[
        "location"]).text
    stored = platform.provider.users.get(user["id"])
    assert stored.given_name == "Marie-Josée" and stored.locale == "en"
    assert stored.address_claim()["locality"] == "Fort-de-France"
    assert events(platform, user["id"], "profile.update")

    new_email = unique_email("nouvelle")
    wrong = post_form(browser, platform, "/compte/profil", "/compte/adresse",
                      new_email=new_email, email_password="pas-le-bon")
    assert wrong.status_code == 422 and "The password is incorrect." in wrong.text
    asked = post_form(browser, platform, "/compte/profil", "/compte/adresse",
                      new_email=new_email, email_password=user["password"])
    assert asked.status_code == 303
    received = mailbox.wait_for(new_email)
    assert received.subject == "Confirm your new email address"  # the account is in English
    assert platform.provider.users.get(user["id"]).email == user["email"]  # not yet
    done = open_link(Browser(), received.link("/compte/adresse/confirmer"),
                     "/compte/adresse/confirmer")
    assert done.status_code == 200 and "Adresse modifiée" in done.text
    assert platform.provider.users.get(user["id"]).email == new_email
    assert mailbox.wait_for(user["email"]).subject == "Your account's address was changed"
    assert sign_in(Browser(), platform, new_email, user["password"]).status_code == 303

    # an address that belongs to another account: same answer, its owner is told
    other = platform.create_user()
    taken = post_form(browser, platform, "/compte/profil", "/compte/adresse",
                      new_email=other["email"], email_password=user["password"])
    assert taken.status_code == 303 and taken.headers["location"] == asked.headers["location"]
    assert mailbox.wait_for(other["email"]).subject == "This address is already in use"


def test_sessions_are_listed_and_can_be_ended(platform, user) -> None:
    here = console(platform, user)
    there = Browser()
    there.http.headers["user-agent"] = ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 "
                                        "(KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36")
    assert sign_in(there, platform, user["email"], user["password"]).status_code == 303
    page = here.get(platform.url + "/compte/sessions")
    assert "Chrome sur Android" in page.text
    assert "(cette session)" in page.text
    handles = re.findall(r'name="session" value="([0-9a-f]+)"', page.text)
    assert len(handles) == 2
    sid = here.http.cookies.get("mc_session")
    assert sid and sid not in page.text  # the page never shows a session id
    other_handle = re.search(r'Chrome sur Android.*?name="session" value="([0-9a-f]+)"',
                             page.text, re.S).group(1)
    ended = post_form(here, platform, "/compte/sessions", "/compte/sessions/terminer",
                      session=other_handle)
    assert ended.status_code == 303
    assert there.get(platform.url + "/compte/", follow=False).status_code == 303
    assert here.get(platform.url + "/compte/").status_code == 200

    third = console(platform, user)
    assert post_form(here, platform, "/compte/sessions", "/compte/sessions/terminer-autres"
                     ).status_code == 303
    assert third.get(platform.url + "/compte/", follow=False).status_code == 303
    assert here.get(platform.url + "/compte/").status_code == 200
    assert events(platform, user["id"], "session.end_others")


def _client_with_receiver(platform, live) -> dict:
    return platform.create_client(
        name="Cantine scolaire", backchannel_logout_uri=f"{live.url}/bcl",
        grant_types=["authorization_code", "refresh_token"],
        scopes=["openid", "profile", "email", "address"])


def test_revoking_an_application_revokes_its_tokens_and_logs_it_out(platform, user) -> None:
    with backchannel_receiver() as (receiver, live):
        client = _client_with_receiver(platform, live)
        browser = Browser()
        flow = CodeFlow(platform=platform, client=client, browser=browser)
        tokens = flow.token(flow.get_code(user, scope="openid profile email")["code"]).json()
        page = browser.get(platform.url + "/compte/applications")
        assert "Cantine scolaire" in page.text
        assert "connaître votre adresse électronique" in page.text
        revoked = post_form(browser, platform, "/compte/applications",
                            "/compte/applications/retirer", client_id=client["client_id"])
        assert revoked.status_code == 303
        assert receiver.event.wait(5), "no back-channel logout received"
        claims = jose_jwt.get_unverified_claims(receiver.tokens[0])
        id_claims = jose_jwt.get_unverified_claims(tokens["id_token"])
        assert claims["sub"] == id_claims["sub"] and claims["aud"] == client["client_id"]
        assert introspect(platform, client, tokens["access_token"]) == {"active": False}
        assert refresh(platform, client, tokens["refresh_token"]).status_code == 400
        with Session(platform.provider.engine) as session:
            assert session.get(Consent, (user["id"], client["client_id"])) is None
        assert "Aucun service" in browser.get(platform.url + "/compte/applications").text
        assert events(platform, user["id"], "application.revoke")


def test_export_holds_everything_and_no_secret(platform, user) -> None:
    platform.provider.organisations.grant(user["id"], PLATFORM_ORGANISATION, "support",
                                          actor="test")
    browser = Browser()
    flow = CodeFlow(platform=platform, client=platform.create_client(name="Stationnement"),
                    browser=browser)
    tokens = flow.token(flow.get_code(user)["code"]).json()
    # factors added once signed in (a confirmed TOTP would ask for a code at sign-in)
    with Session(platform.provider.engine) as session:
        session.add(TotpFactor(user_id=user["id"], secret_encrypted="TOTP-SECRET-MUST-NOT-LEAK",
                               confirmed=True))
        session.add(RecoveryCode(user_id=user["id"], code_hash="RECOVERY-HASH-MUST-NOT-LEAK"))
        session.commit()
    post_form(browser, platform, "/compte/profil", "/compte/profil", given_name="Marie",
              family_name="Dupont", street_address="3 allée des Flamboyants",
              postal_code="97232", locality="Le Lamentin")
    response = post_form(browser, platform, "/compte/donnees", "/compte/donnees/export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    data = response.json()
    assert data["account"]["email"] == user["email"]
    assert data["account"]["address"]["locality"] == "Le Lamentin"
    assert [c["client_name"] for c in data["consents"]] == ["Stationnement"]
    assert data["sessions"][0]["current"] is True
    assert {"organisation": PLATFORM_ORGANISATION, "role": "support"}.items() <= \
        data["memberships"][0].items()
    assert data["factors"]["totp"][0]["confirmed"] is True
    assert data["factors"]["recovery_codes"] == {"total": 1, "unused": 1}
    assert data["authorisations"][0]["client_id"] == flow.client["client_id"]
    assert {"login.success", "profile.update"} <= {e["action"] for e in data["activity"]}
    text = response.text
    stored = platform.provider.users.get(user["id"])
    for secret in (stored.password_hash, "$argon2", "TOTP-SECRET-MUST-NOT-LEAK",
                   "RECOVERY-HASH-MUST-NOT-LEAK", browser.http.cookies.get("mc_session"),
                   browser.http.cookies.get("mc_csrf"), tokens["refresh_token"],
                   tokens["access_token"], user["password"], "password_hash", "token_hash"):
        assert secret not in text, secret
    assert events(platform, user["id"], "account.export")


def test_delete_account_after_reauthentication(platform, mailbox) -> None:
    user = platform.create_user(given_name="Jean", family_name="Louis")
    with backchannel_receiver() as (receiver, live):
        client = _client_with_receiver(platform, live)
        browser = Browser()
        flow = CodeFlow(platform=platform, client=client, browser=browser)
        tokens = flow.token(flow.get_code(user)["code"]).json()
        page = browser.get(platform.url + "/compte/supprimer")
        assert "Cantine scolaire" in page.text
        assert 'autocomplete="current-password"' in page.text

        wrong = post_form(browser, platform, "/compte/supprimer", "/compte/supprimer",
                          delete_password="pas-le-bon-mot-de-passe")
        assert wrong.status_code == 401
        assert "Le mot de passe est incorrect." in wrong.text
        assert platform.provider.users.get(user["id"]) is not None

        deleted = post_form(browser, platform, "/compte/supprimer", "/compte/supprimer",
                            delete_password=user["password"])
        assert deleted.status_code == 200
        assert "Votre compte est supprimé" in deleted.text
        assert receiver.event.wait(5), "no back-channel logout received"
        claims = jose_jwt.get_unverified_claims(receiver.tokens[0])
        assert claims["sid"] and claims["aud"] == client["client_id"]

    assert platform.provider.users.get(user["id"]) is None
    assert introspect(platform, client, tokens["access_token"]) == {"active": False}
    assert refresh(platform, client, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert sign_in(Browser(), platform, user["email"], user["password"]).status_code == 401
    assert browser.get(platform.url + "/compte/", follow=False).status_code == 303
    assert mailbox.wait_for(user["email"]).subject == "Votre compte a été supprimé"

    # the journal keeps the pseudonymous trail, without the email address or names
    with Session(platform.provider.engine) as session:
        trail = session.exec(select(AuditEvent).where(AuditEvent.actor == str(user["id"]))
                             ).all()
        assert {"login.success", "user.delete"} <= {e.action for e in trail}
        for event in trail:
            blob = json.dumps(event.model_dump(mode="json"))
            assert user["email"] not in blob and "Louis" not in blob
        assert session.exec(select(User).where(User.email == user["email"])).first() is None
