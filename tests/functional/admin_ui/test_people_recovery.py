"""People in difficulty, from the console's person page (``people.recover``: the CTM
administrator and the support): resending the verification email of an unconfirmed account,
and resetting the second factors of a person who lost them. Each over HTTP, with the mail
read from a real SMTP server (the ``mailbox`` fixture) and the audit journal checked."""

from __future__ import annotations

import json
import uuid
from html import unescape
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from idp.models import User
from idp.services.accounts import Caller
from plateforme.audit import AuditQuery
from tests.conftest import CodeFlow
from tests.functional.admin_ui.conftest import with_second_factor
from tests.support.browser import Browser
from tests.support.factors import (
    SoftAuthenticator,
    enrol_totp,
    fresh_code,
    provider_clock,
    register_passkey,
    sign_in,
    submit_factor,
)

CALLER = Caller(address="127.0.0.1")


def _events(platform: Any, action: str, actor: object) -> list[Any]:
    return platform.provider.journal.search(AuditQuery(action=action, actor=str(actor)))


def _token_of(link: str) -> str:
    return link.split("jeton=", 1)[1]


# --- resending the verification email ------------------------------------------------------------


def test_support_resends_the_verification_email_to_an_unconfirmed_account(
        platform, console_as, mailbox) -> None:
    person = platform.create_user(given_name="Léa", email_verified=False)
    accounts = platform.provider.accounts
    accounts.resend_verification(person["email"], CALLER)  # the person's own, earlier link
    older = _token_of(mailbox.wait_for(person["email"]).link("/inscription/confirmer"))
    support = console_as(("ctm", "support"))
    path = f"/admin/personnes/{person['id']}"

    page = support.get(path)
    assert "Adresse vérifiée</dt><dd>non<" in page.text
    assert f'action="{path}/verification"' in page.text
    assert 'id="motif-verification"' in page.text

    empty = support.post(f"{path}/verification", {"motif": " "})
    assert empty.status_code == 422
    assert 'id="motif-verification-erreur"' in empty.text and 'aria-invalid="true"' in empty.text

    motif = "appel au guichet : courriel jamais reçu"
    sent = support.post(f"{path}/verification", {"motif": motif})
    assert sent.status_code == 303 and sent.headers["location"] == path
    assert "Un nouveau lien de confirmation est envoyé" in support.get(path).text

    message = mailbox.wait_for(person["email"], count=2)
    assert message.subject == "Confirmez votre adresse électronique"
    assert "Bonjour Léa," in message.text
    token = _token_of(message.link("/inscription/confirmer"))
    assert len(mailbox.to(person["email"])) == 2, "one message, not one per empty attempt"
    assert accounts.link_user(older, "verify") is None, "the older link stops working"
    assert accounts.verify_email(token, CALLER) is not None
    assert platform.provider.users.get(person["id"]).email_verified

    (event,) = _events(platform, "account.verification_resent", support.user["id"])
    assert event.target == str(person["id"]) and event.reason == motif
    assert event.outcome == "success"
    journal = support.get(f"/admin/journal?acteur={support.user['email']}")
    assert "<code>account.verification_resent</code>" in journal.text and motif in journal.text


def test_resending_is_refused_for_a_confirmed_account(platform, console_as, mailbox) -> None:
    person = platform.create_user()  # address confirmed
    support = console_as(("ctm", "support"))
    path = f"/admin/personnes/{person['id']}"
    assert f'action="{path}/verification"' not in support.get(path).text, "no form offered"

    refused = support.post(f"{path}/verification", {"motif": "demande par téléphone"})
    assert refused.status_code == 409
    assert "<h1>Action impossible</h1>" in refused.text
    assert "déjà confirmée" in refused.text
    mailbox.assert_none(person["email"])
    assert _events(platform, "account.verification_resent", support.user["id"]) == []
    (failed,) = _events(platform, "admin.failed", support.user["id"])
    assert failed.target == f"{path}/verification"


# --- resetting the second factors ----------------------------------------------------------------


def _signed_in_with_factor(platform: Any, person: dict[str, Any], secret: str) -> Browser:
    clock = provider_clock(platform.provider)
    browser = Browser()
    page = sign_in(browser, platform.url, person)
    assert "/connexion/facteur" in str(page.url), page.url
    done = submit_factor(browser, page, "totp", code=fresh_code(clock, secret))
    assert done.status_code == 200 and str(done.url).endswith("/compte/securite"), done.url
    return browser


def test_support_resets_the_second_factors_of_a_person_who_lost_them(
        platform, console_as, mailbox, flow: CodeFlow) -> None:
    clock = provider_clock(platform.provider)
    person = platform.create_user(given_name="Paul")
    uid = uuid.UUID(str(person["id"]))
    factors = platform.provider.factors
    # An authenticator app (with its recovery codes) and a passkey, added by the person...
    sign_in(flow.browser, platform.url, person)
    secret, codes = enrol_totp(flow.browser, platform.url, clock)
    assert "Vos codes de secours" in codes.text
    register_passkey(flow.browser, platform.url, SoftAuthenticator(), name="Ordinateur")
    # ... who holds tokens of an application and a second session.
    tokens = flow.token(flow.get_code(person)["code"]).json()
    assert tokens.get("refresh_token"), tokens
    other = _signed_in_with_factor(platform, person, secret)
    assert len(platform.provider.sessions.for_user(uid)) == 2

    support = console_as(("ctm", "support"))
    path = f"/admin/personnes/{person['id']}"
    page = unescape(support.get(path).text)
    assert "application d'authentification « Téléphone »" in page
    assert "clé d'accès « Ordinateur »" in page
    assert "codes de secours restants : 10" in page
    assert f'action="{path}/facteurs"' in page and 'id="motif-facteurs"' in page

    motif = "téléphone perdu, identité vérifiée au guichet"
    reset = support.post(f"{path}/facteurs", {"motif": motif})
    assert reset.status_code == 303 and reset.headers["location"] == path
    after = support.get(path).text
    assert "Les seconds facteurs sont réinitialisés" in after
    assert "aucun (mot de passe seul)" in after and f'action="{path}/facteurs"' not in after

    # Every factor gone, every session ended, every token revoked.
    summary = factors.summary(uid)
    assert summary.totp == [] and summary.passkeys == [] and summary.recovery_remaining == 0
    assert platform.provider.sessions.for_user(uid) == []
    refresh = httpx.post(platform.url + "/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(flow.client["client_id"], flow.client["client_secret"]))
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    for browser in (flow.browser, other):
        signed_out = browser.get(f"{platform.url}/compte/securite")
        assert "/connexion" in str(signed_out.url), signed_out.url
    other.close()

    # The old app's codes no longer work: the password alone signs in, then a new app.
    assert factors.totp.verify(uid, fresh_code(clock, secret)) is None
    again = Browser()
    try:
        page = sign_in(again, platform.url, person)
        assert page.status_code == 200 and str(page.url).endswith("/compte/securite"), page.url
        new_secret, codes = enrol_totp(again, platform.url, clock, name="Nouveau téléphone")
        assert codes.status_code == 200 and "Vos codes de secours" in codes.text
        assert [f.name for f in factors.totp.list(uid)] == ["Nouveau téléphone"]
        assert factors.recovery.remaining(uid) == 10
        assert new_secret != secret
    finally:
        again.close()

    (event,) = _events(platform, "user.reset_factors", support.user["id"])
    assert event.target == str(uid) and event.reason == motif and event.outcome == "success"
    assert json.loads(event.details or "{}") == {"totp": 1, "passkeys": 1, "recovery_codes": 10}
    ended = [e for e in platform.provider.journal.search(AuditQuery(actor=str(uid),
                                                                    action="logout"))
             if e.reason == "factors_reset"]
    assert len(ended) == 2

    notice = mailbox.wait_for(person["email"], subject="seconds facteurs")
    assert notice.subject == "Vos seconds facteurs ont été réinitialisés"
    assert "Bonjour Paul," in notice.text and "support" in notice.text
    assert notice.link("/compte/securite") == platform.url + "/compte/securite"
    assert "codes de secours" in notice.html


def test_the_reset_notice_is_in_the_person_s_language(platform, console_as, mailbox) -> None:
    person = with_second_factor(platform, platform.create_user(given_name="Ann"))
    with Session(platform.provider.engine) as session:
        user = session.get(User, uuid.UUID(str(person["id"])))
        assert user is not None
        user.locale = "en"
        session.add(user)
        session.commit()
    admin = console_as(("ctm", "ctm_admin"))
    reset = admin.post(f"/admin/personnes/{person['id']}/facteurs",
                       {"motif": "lost phone, identity checked"})
    assert reset.status_code == 303
    notice = mailbox.wait_for(person["email"])
    assert notice.subject == "Your second factors were reset"
    assert "Hello Ann," in notice.text and "support" in notice.text
    assert notice.link("/compte/securite")
    assert 'lang="en"' in notice.html


def test_reset_is_refused_for_an_account_without_second_factor(platform, console_as,
                                                               mailbox) -> None:
    person = platform.create_user()
    support = console_as(("ctm", "support"))
    path = f"/admin/personnes/{person['id']}"
    assert f'action="{path}/facteurs"' not in support.get(path).text
    refused = support.post(f"{path}/facteurs", {"motif": "appel d'une personne"})
    assert refused.status_code == 409 and "aucun second facteur" in refused.text
    mailbox.assert_none(person["email"])
    assert _events(platform, "user.reset_factors", support.user["id"]) == []


# --- who may -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["org_admin", "viewer"])
def test_commune_staff_can_neither_resend_nor_reset(platform, console_as, mailbox, role) -> None:
    person = with_second_factor(platform, platform.create_user(email_verified=False))
    platform.provider.organisations.grant(person["id"], "lamentin", "buyer")  # their commune
    agent = console_as(("lamentin", role))
    path = f"/admin/personnes/{person['id']}"
    assert agent.get(path).status_code == 403
    for action in ("verification", "facteurs"):
        refused = agent.post(f"{path}/{action}", {"motif": "aide à un administré"})
        assert refused.status_code == 403, action
        assert "<h1>Accès refusé</h1>" in refused.text
    uid = uuid.UUID(str(person["id"]))
    assert len(platform.provider.factors.totp.list(uid)) == 1
    assert platform.provider.factors.recovery.remaining(uid) == 10
    mailbox.assert_none(person["email"])
    refusals = _events(platform, "admin.refused", agent.user["id"])
    assert {e.target for e in refusals} >= {f"{path}/verification", f"{path}/facteurs"}
