"""Citizen accounts over real HTTP, on each backend: registration with an emailed confirmation
(read from a real SMTP server), password reset and change, no account enumeration."""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session, select

from idp.models import EmailToken
from idp.services.accounts import digest
from idp.services.users import GENERIC_FAILURE
from plateforme.audit import AuditEvent
from plateforme.clock import utcnow
from tests.conftest import CodeFlow
from tests.support.browser import Browser, query_of

STRONG = "Mangue-Velo-Nuage-Tambour"
OTHER_STRONG = "Piment-Lagon-Tortue-Bambou"


def unique_email(prefix: str = "citoyen") -> str:
    return f"{prefix}-{time.time_ns()}@example.mq"


def register(browser: Browser, platform, email: str, password: str = STRONG,
             **extra: str) -> httpx.Response:
    page = browser.get(f"{platform.url}/inscription")
    assert page.status_code == 200
    fields = browser.form_fields(page.text, "/inscription")
    fields.update(given_name="Marie", family_name="Dupont", email=email, password=password,
                  password_confirmation=password, locale="fr")
    fields.update(extra)
    return browser.post(f"{platform.url}/inscription", fields, follow=False)


def open_link(browser: Browser, link: str, action: str) -> httpx.Response:
    """Open an emailed link (a page with one button), then press the button."""
    page = browser.get(link)
    assert page.status_code == 200, page.text
    fields = browser.form_fields(page.text, action)
    base = link.split(action)[0]
    return browser.post(base + action, fields, follow=False)


def sign_in(browser: Browser, platform, email: str, password: str) -> httpx.Response:
    page = browser.get(f"{platform.url}/connexion")
    fields = browser.form_fields(page.text, "/connexion")
    fields.update(email=email, password=password)
    return browser.post(f"{platform.url}/connexion", fields, follow=False)


def token_of(link: str) -> str:
    return query_of(link)["jeton"]


def expire(platform, link: str) -> None:
    with Session(platform.provider.engine) as session:
        row = session.exec(select(EmailToken).where(
            EmailToken.token_hash == digest(token_of(link)))).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
        session.commit()


def refresh(platform, client, refresh_token: str) -> httpx.Response:
    return httpx.post(f"{platform.url}/token",
                      data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                      auth=(client["client_id"], client["client_secret"]))


def events(platform, actor: object, action: str) -> list[AuditEvent]:
    with Session(platform.provider.engine) as session:
        return list(session.exec(select(AuditEvent).where(
            AuditEvent.actor == str(actor), AuditEvent.action == action)).all())


# --- registration -------------------------------------------------------------------------


def test_register_confirm_by_email_then_sign_in(platform, browser, mailbox) -> None:
    login_page = browser.get(f"{platform.url}/connexion").text
    assert '<a href="/inscription">Créer un compte</a>' in login_page
    assert '<a href="/mot-de-passe/oublie">' in login_page
    email = unique_email()
    response = register(browser, platform, email, birthdate="1985-06-14",
                        phone_number="0596 12 34 56", street_address="1 rue Victor Hugo",
                        postal_code="97200", locality="Fort-de-France")
    assert response.status_code == 303
    assert response.headers["location"] == "/inscription/envoye"
    sent = browser.get(platform.url + "/inscription/envoye")
    assert "Vérifiez votre messagerie" in sent.text

    # Not confirmed yet: the sign-in answer is the generic one.
    refused = sign_in(Browser(), platform, email, STRONG)
    assert refused.status_code == 401
    assert GENERIC_FAILURE in refused.text

    received = mailbox.wait_for(email)
    assert received.subject == "Confirmez votre adresse électronique"
    assert "Bonjour Marie," in received.text
    assert 'lang="fr"' in received.html
    link = received.link("/inscription/confirmer")
    assert link.startswith(platform.url)
    assert len(token_of(link)) >= 40

    done = open_link(browser, link, "/inscription/confirmer")
    assert done.status_code == 200
    assert "Adresse confirmée" in done.text

    signed_in = sign_in(browser, platform, email, STRONG)
    assert signed_in.status_code == 303, signed_in.text
    console = browser.get(platform.url + "/compte/")
    assert console.status_code == 200
    assert email in console.text

    user = platform.provider.users.get_by_email(email)
    assert user is not None and user.email_verified
    assert user.birthdate == "1985-06-14" and user.phone_number == "0596 12 34 56"
    assert user.address_claim()["postal_code"] == "97200"
    assert events(platform, user.id, "account.register")
    assert events(platform, user.id, "account.verify_email")
    # the emailed token is stored hashed only
    with Session(platform.provider.engine) as session:
        stored = [t.token_hash for t in session.exec(
            select(EmailToken).where(EmailToken.user_id == user.id)).all()]
    assert token_of(link) not in stored and digest(token_of(link)) in stored


def test_english_account_gets_english_mail(platform, browser, mailbox) -> None:
    email = unique_email("english")
    assert register(browser, platform, email, locale="en").status_code == 303
    received = mailbox.wait_for(email)
    assert received.subject == "Confirm your email address"
    assert 'lang="en"' in received.html


def test_confirmation_link_is_single_use_and_expires(platform, browser, mailbox) -> None:
    email = unique_email()
    register(browser, platform, email)
    link = mailbox.wait_for(email).link("/inscription/confirmer")
    page = browser.get(link)
    fields = browser.form_fields(page.text, "/inscription/confirmer")
    assert browser.post(platform.url + "/inscription/confirmer", fields).status_code == 200
    reuse = browser.post(platform.url + "/inscription/confirmer", fields)
    assert reuse.status_code == 400
    assert "Lien non valable" in reuse.text
    assert browser.get(link).status_code == 400

    # an expired link is refused and the account stays unconfirmed
    email = unique_email()
    register(browser, platform, email)
    link = mailbox.wait_for(email).link("/inscription/confirmer")
    page = browser.get(link)
    fields = browser.form_fields(page.text, "/inscription/confirmer")
    expire(platform, link)
    assert browser.get(link).status_code == 400
    assert browser.post(platform.url + "/inscription/confirmer", fields).status_code == 400
    assert not platform.provider.users.get_by_email(email).email_verified
    assert sign_in(Browser(), platform, email, STRONG).status_code == 401

    # a new link can be asked for; it replaces the older one
    page = browser.get(platform.url + "/inscription/renvoyer")
    fields = browser.form_fields(page.text, "/inscription/renvoyer")
    fields["email"] = email
    assert browser.post(platform.url + "/inscription/renvoyer", fields,
                        follow=False).status_code == 303
    fresh = mailbox.wait_for(email, count=2).link("/inscription/confirmer")
    assert open_link(browser, fresh, "/inscription/confirmer").status_code == 200
    assert sign_in(Browser(), platform, email, STRONG).status_code == 303


def test_common_and_short_passwords_are_refused_with_the_meter_shown(platform, browser) -> None:
    email = unique_email()
    response = register(browser, platform, email, password="Martinique972!")
    assert response.status_code == 422
    assert "les plus courants" in response.text
    assert re.search(r'<input type="password" id="password"[^>]*aria-invalid="true"',
                     response.text)
    assert 'aria-describedby="password-aide password-erreur"' in response.text
    assert "Robustesse du mot de passe : <strong id=\"robustesse-niveau\">Faible" in response.text
    assert response.text.count("Martinique972!") == 0  # a password is never sent back
    assert 'value="Marie"' in response.text  # the other fields are kept
    assert response.text.startswith("<!doctype html>") and "<title>Erreur : " in response.text

    short = register(browser, platform, email, password="Court-123")
    assert short.status_code == 422
    assert "au moins 12 caractères" in short.text

    mismatch = register(browser, platform, email, password=STRONG,
                        password_confirmation=OTHER_STRONG)
    assert mismatch.status_code == 422
    assert "ne sont pas identiques" in mismatch.text
    assert platform.provider.users.get_by_email(email) is None

    meter = httpx.post(platform.url + "/inscription/robustesse",
                       data={"password": STRONG, "given_name": "Marie"})
    assert meter.json()["score"] == 4 and meter.json()["acceptable"] is True


def test_forms_need_their_csrf_token(platform, browser) -> None:
    browser.get(platform.url + "/inscription")
    for path in ("/inscription", "/mot-de-passe/oublie", "/inscription/renvoyer",
                 "/mot-de-passe/nouveau", "/inscription/confirmer"):
        response = browser.post(platform.url + path, {"email": unique_email()}, follow=False)
        assert response.status_code == 403, path
    # the token of one form is not accepted by another (purpose-bound)
    page = browser.get(platform.url + "/mot-de-passe/oublie")
    fields = browser.form_fields(page.text, "/mot-de-passe/oublie")
    fields.update(given_name="A", family_name="B", email=unique_email(), password=STRONG,
                  password_confirmation=STRONG)
    assert browser.post(platform.url + "/inscription", fields).status_code == 403


def _timed(call) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def _comparable(times: dict[str, list[float]], slack: float = 0.0) -> None:
    """Medians within a factor of two (or ``slack`` seconds apart, for answers too quick for
    a ratio to mean anything). The suite runs on two workers: the other one's load is noise
    of a few milliseconds, far below what an attacker would look for (an SMTP exchange, a
    password hash: tens to hundreds of milliseconds)."""
    known, unknown = statistics.median(times["known"]), statistics.median(times["unknown"])
    assert 0.5 < known / unknown < 2.0 or abs(known - unknown) < slack, times


def test_registration_does_not_tell_whether_an_address_has_an_account(
        platform, browser, mailbox) -> None:
    """Same status, same body, same redirect and comparable time for a known and a new
    address; only the owner of the known address is told, by email."""
    page = browser.get(platform.url + "/inscription")
    base = browser.form_fields(page.text, "/inscription")
    answers: dict[str, set[tuple[int, str, str]]] = {"known": set(), "unknown": set()}
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    addresses: dict[str, list[str]] = {"known": [], "unknown": []}
    for _ in range(7):
        for kind in ("known", "unknown"):
            email = platform.create_user()["email"] if kind == "known" else unique_email("new")
            addresses[kind].append(email)
            fields = dict(base, given_name="Marie", family_name="Dupont", email=email,
                          password=STRONG, password_confirmation=STRONG)
            response, elapsed = _timed(
                lambda f=fields: browser.post(platform.url + "/inscription", f, follow=False))
            times[kind].append(elapsed)
            # the work after the answer (hash, e-mail) ends before the next sample starts:
            # one sample's background work must not slow down the other kind's answer
            mailbox.wait_for(email)
            answers[kind].add((response.status_code, response.headers.get("location", ""),
                               response.text))
    assert answers["known"] == answers["unknown"] == {(303, "/inscription/envoye", "")}
    _comparable(times, slack=0.03)
    for email in addresses["known"]:
        told = mailbox.wait_for(email)
        assert told.subject == "Tentative de création de compte avec votre adresse"
        assert told.link("/mot-de-passe/oublie")
    for email in addresses["unknown"]:
        assert mailbox.wait_for(email).subject == "Confirmez votre adresse électronique"
    known_user = platform.provider.users.get_by_email(addresses["known"][0])
    assert events(platform, known_user.id, "account.register_existing")


def test_reset_request_does_not_tell_whether_an_address_has_an_account(
        platform, browser, mailbox) -> None:
    page = browser.get(platform.url + "/mot-de-passe/oublie")
    base = browser.form_fields(page.text, "/mot-de-passe/oublie")
    answers: dict[str, set[tuple[int, str, str]]] = {"known": set(), "unknown": set()}
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    known_addresses = []
    for _ in range(7):
        for kind in ("known", "unknown"):
            email = platform.create_user()["email"] if kind == "known" else unique_email("nobody")
            if kind == "known":
                known_addresses.append(email)
            fields = dict(base, email=email)
            response, elapsed = _timed(lambda f=fields: browser.post(
                platform.url + "/mot-de-passe/oublie", f, follow=False))
            times[kind].append(elapsed)
            if kind == "known":  # its e-mail sent before the next sample (see above)
                mailbox.wait_for(email)
            answers[kind].add((response.status_code, response.headers.get("location", ""),
                               response.text))
    assert answers["known"] == answers["unknown"] == {(303, "/mot-de-passe/oublie/envoye", "")}
    _comparable(times, slack=0.03)
    for email in known_addresses:
        assert mailbox.wait_for(email).subject == "Choisir un nouveau mot de passe"
    page = browser.get(platform.url + "/mot-de-passe/oublie/envoye")
    assert "Si un compte utilise cette adresse" in page.text


# --- password reset and change ------------------------------------------------------------


def _reset_link(platform, mailbox, email: str, count: int = 1) -> str:
    browser = Browser()
    page = browser.get(platform.url + "/mot-de-passe/oublie")
    fields = browser.form_fields(page.text, "/mot-de-passe/oublie")
    fields["email"] = email
    browser.post(platform.url + "/mot-de-passe/oublie", fields)
    browser.close()
    return mailbox.wait_for(email, subject="Choisir un nouveau mot de passe",
                            count=count).link("/mot-de-passe/nouveau")


def _submit_reset(browser: Browser, platform, link: str, password: str) -> httpx.Response:
    page = browser.get(link)
    if page.status_code != 200:
        return page
    fields = browser.form_fields(page.text, "/mot-de-passe/nouveau")
    fields.update(password=password, password_confirmation=password)
    return browser.post(platform.url + "/mot-de-passe/nouveau", fields)


def test_reset_ends_every_session_and_revokes_refresh_tokens(
        platform, flow: CodeFlow, user, mailbox) -> None:
    tokens = flow.token(flow.get_code(user)["code"]).json()
    assert flow.browser.get(platform.url + "/compte/").status_code == 200

    link = _reset_link(platform, mailbox, user["email"])
    weak = _submit_reset(Browser(), platform, link, "azertyuiop123")
    assert weak.status_code == 422  # the link is not used up by a refused password
    done = _submit_reset(Browser(), platform, link, OTHER_STRONG)
    assert done.status_code == 200
    assert "Mot de passe modifié" in done.text

    assert refresh(platform, flow.client, tokens["refresh_token"]).json()["error"] == (
        "invalid_grant")
    introspection = httpx.post(f"{platform.url}/introspect",
                               data={"token": tokens["access_token"]},
                               auth=(flow.client["client_id"], flow.client["client_secret"]))
    assert introspection.json() == {"active": False}
    old_session = flow.browser.get(platform.url + "/compte/", follow=False)
    assert old_session.status_code == 303
    assert old_session.headers["location"].startswith("/connexion")

    assert sign_in(Browser(), platform, user["email"], user["password"]).status_code == 401
    assert sign_in(Browser(), platform, user["email"], OTHER_STRONG).status_code == 303
    assert events(platform, user["id"], "password.reset")
    assert mailbox.wait_for(user["email"], subject="Votre mot de passe a été modifié")


def test_reset_link_is_single_use_and_expires(platform, user, mailbox) -> None:
    link = _reset_link(platform, mailbox, user["email"])
    assert _submit_reset(Browser(), platform, link, OTHER_STRONG).status_code == 200
    reused = _submit_reset(Browser(), platform, link, STRONG)
    assert reused.status_code == 400
    assert "Lien non valable" in reused.text

    # expired: refused, the password stays the same
    link = _reset_link(platform, mailbox, user["email"], count=2)
    browser = Browser()
    page = browser.get(link)
    fields = browser.form_fields(page.text, "/mot-de-passe/nouveau")
    fields.update(password=STRONG, password_confirmation=STRONG)
    expire(platform, link)
    assert browser.post(platform.url + "/mot-de-passe/nouveau", fields).status_code == 400
    assert sign_in(Browser(), platform, user["email"], OTHER_STRONG).status_code == 303

    # a newer link cancels the older one
    first = _reset_link(platform, mailbox, user["email"], count=3)
    second = _reset_link(platform, mailbox, user["email"], count=4)
    assert _submit_reset(Browser(), platform, first, STRONG).status_code == 400
    assert _submit_reset(Browser(), platform, second, STRONG).status_code == 200


def test_password_change_keeps_this_session_and_ends_the_others(
        platform, flow: CodeFlow, user, mailbox) -> None:
    tokens = flow.token(flow.get_code(user)["code"]).json()
    console = Browser()
    assert sign_in(console, platform, user["email"], user["password"]).status_code == 303
    page = console.get(platform.url + "/compte/mot-de-passe")
    assert 'autocomplete="current-password"' in page.text
    fields = console.form_fields(page.text, "/compte/mot-de-passe")

    wrong = console.post(platform.url + "/compte/mot-de-passe", dict(
        fields, current_password="pas-le-bon-mot-de-passe", password=OTHER_STRONG,
        password_confirmation=OTHER_STRONG))
    assert wrong.status_code == 422
    assert "Le mot de passe actuel est incorrect." in wrong.text
    assert events(platform, user["id"], "password.change")[0].outcome == "failure"

    changed = console.post(platform.url + "/compte/mot-de-passe", dict(
        fields, current_password=user["password"], password=OTHER_STRONG,
        password_confirmation=OTHER_STRONG), follow=False)
    assert changed.status_code == 303
    assert changed.headers["location"] == "/compte/?fait=mot-de-passe"

    assert console.get(platform.url + "/compte/").status_code == 200  # this session stays
    assert flow.browser.get(platform.url + "/compte/", follow=False).status_code == 303
    assert refresh(platform, flow.client, tokens["refresh_token"]).status_code == 400
    assert sign_in(Browser(), platform, user["email"], OTHER_STRONG).status_code == 303
    assert events(platform, user["id"], "password.change")
    assert mailbox.wait_for(user["email"], subject="Votre mot de passe a été modifié")
    console.close()


# --- demo inbox -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_demo_inbox_shows_the_outbox_in_demo_mode_only(platform, browser) -> None:
    assert browser.get(platform.url + "/demo/boite").status_code == 404
    email = unique_email("demo")
    platform.settings.demo = True
    try:
        assert register(browser, platform, email).status_code == 303
        sent = browser.get(platform.url + "/inscription/envoye")
        assert 'href="/demo/boite"' in sent.text
        deadline = time.monotonic() + 10
        while email not in (inbox := browser.get(platform.url + "/demo/boite")).text:
            assert time.monotonic() < deadline, inbox.text
            time.sleep(0.05)
        row = re.search(r'<td>' + re.escape(email) + r'</td>\s*<td><a href="([^"]+)">', inbox.text)
        assert row, inbox.text
        message = browser.get(platform.url + row.group(1))
        assert message.status_code == 200
        link = re.search(r'<a href="([^"]+/inscription/confirmer\?jeton=[^"]+)"', message.text)
        assert link, message.text
        assert open_link(browser, link.group(1).replace("&amp;", "&"),
                         "/inscription/confirmer").status_code == 200
        assert browser.get(platform.url + "/demo/boite/../secret_key").status_code == 404
    finally:
        platform.settings.demo = False
