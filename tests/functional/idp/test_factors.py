"""Second factors over HTTP: TOTP, recovery codes and passkeys — enrolment, sign-in, and the
attacks (replay, reuse, brute force, skipping the factor, stale sessions, CSRF)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from html import unescape

import httpx
import pytest
from sqlmodel import Session, select

from idp.models import RecoveryCode, TotpFactor, WebAuthnCredential
from plateforme.audit import AuditEvent
from tests.support.browser import Browser, query_of
from tests.support.factors import (
    MovableClock,
    SoftAuthenticator,
    b64url,
    claims_of,
    code_of,
    enrol_totp,
    form_of,
    options,
    recovery_codes,
    register_passkey,
    sign_in,
    submit_factor,
    totp_secret,
)


@pytest.fixture
def clock(platform) -> Iterator[MovableClock]:
    """The provider's TOTP clock, moved by the test (no waiting for the next 30 s)."""
    totp = platform.provider.factors.totp
    previous, totp.clock = totp.clock, MovableClock()
    yield totp.clock
    totp.clock = previous


def _events(platform, actor: str, action: str) -> list[AuditEvent]:
    with Session(platform.provider.engine) as session:
        return list(session.exec(select(AuditEvent).where(
            AuditEvent.actor == actor, AuditEvent.action == action)).all())


def _age_session(platform, browser: Browser, seconds: int) -> None:
    """Pretend the sign-in happened ``seconds`` ago."""
    sid = browser.http.cookies.get("mc_session")
    key = f"idp:session:{sid}"
    data = json.loads(platform.provider.store.get(key))
    data["auth_time"] -= seconds
    platform.provider.store.set(key, json.dumps(data), ttl=3600)


def _with_totp(platform, browser, user, clock) -> tuple[str, list[str]]:
    sign_in(browser, platform.url, user)
    secret, page = enrol_totp(browser, platform.url, clock)
    assert page.status_code == 200, page.text[:300]
    codes = recovery_codes(page.text)
    browser.http.cookies.clear()
    return secret, codes


def _password_step(browser: Browser, url: str, user) -> httpx.Response:
    """Password accepted: the second-factor page, and no session yet."""
    page = sign_in(browser, url, user)
    assert "/connexion/facteur" in str(page.url), page.url
    assert "mc_session" not in browser.http.cookies
    return page


# --- TOTP ----------------------------------------------------------------------------------------


def test_totp_enrolment_qr_code_secret_at_rest_and_recovery_codes(platform, browser, user,
                                                                  clock) -> None:
    sign_in(browser, platform.url, user)
    overview = browser.get(f"{platform.url}/compte/securite")
    assert overview.status_code == 200
    assert "Aucune application d'authentification" in overview.text
    page = browser.get(f"{platform.url}/compte/securite/totp")
    assert 'src="data:image/svg+xml' in page.text  # the QR code, an SVG made on the server
    assert 'autocomplete="one-time-code"' in page.text
    secret, done = enrol_totp(browser, platform.url, clock, name="Téléphone de Marie")
    codes = recovery_codes(done.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    uid = uuid.UUID(str(user["id"]))
    with Session(platform.provider.engine) as session:
        factor = session.exec(select(TotpFactor).where(TotpFactor.user_id == uid)).one()
        stored = session.exec(select(RecoveryCode).where(RecoveryCode.user_id == uid)).all()
    assert factor.confirmed and factor.name == "Téléphone de Marie"
    assert secret not in factor.secret_encrypted  # encrypted at rest
    assert len(stored) == 10
    assert not {c.code_hash for c in stored} & {c.replace("-", "") for c in codes}
    assert _events(platform, str(uid), "mfa.totp.enrol")
    assert _events(platform, str(uid), "mfa.recovery.generate")
    overview = browser.get(f"{platform.url}/compte/securite?fait=totp-ajoute")
    assert "Téléphone de Marie" in overview.text and "10</strong> codes sur 10" in overview.text


def test_sign_in_asks_for_the_totp_code_after_the_password(platform, flow, user, clock) -> None:
    secret, _ = _with_totp(platform, flow.browser, user, clock)
    page = flow.start()
    page = flow.browser.login(page, user["email"], user["password"])
    assert "/connexion/facteur?interaction=" in str(page.url)
    assert 'autocomplete="one-time-code"' in page.text
    assert "mc_session" not in flow.browser.http.cookies
    wrong = submit_factor(flow.browser, page, "totp", code="000000")
    assert wrong.status_code == 401 and 'role="alert"' in wrong.text
    clock.next_step()
    done = submit_factor(flow.browser, wrong, "totp", code=clock.code(secret),
                         stop_at=flow.redirect_uri)
    tokens = flow.token(code_of(flow, done)).json()
    id_claims, at_claims = claims_of(flow, tokens)
    for claims in (id_claims, at_claims):
        assert claims["acr"] == "eidas2"
        assert claims["amr"] == ["pwd", "otp", "mfa"]


def test_totp_code_is_refused_when_replayed_even_within_its_time_step(platform, browser, user,
                                                                      clock) -> None:
    secret, _ = _with_totp(platform, browser, user, clock)
    # The enrolment used the current step's code: the same code is refused at sign-in.
    page = _password_step(browser, platform.url, user)
    replay = submit_factor(browser, page, "totp", code=clock.code(secret))
    assert replay.status_code == 401
    assert "mc_session" not in browser.http.cookies
    # The next step's code works once (the window admits one step ahead)…
    clock.next_step()
    code = clock.code(secret)
    assert submit_factor(browser, replay, "totp", code=code).status_code == 200
    assert "mc_session" in browser.http.cookies
    # …and not twice, even from another browser in the same 30 seconds.
    other = Browser()
    try:
        page = _password_step(other, platform.url, user)
        assert submit_factor(other, page, "totp", code=code).status_code == 401
        assert "mc_session" not in other.http.cookies
    finally:
        other.close()


def test_totp_attempts_are_throttled_and_the_lockout_journaled(platform, browser, user,
                                                               clock) -> None:
    secret, _ = _with_totp(platform, browser, user, clock)
    page = _password_step(browser, platform.url, user)
    free = platform.settings.login_free_attempts
    for _ in range(free + 1):
        page = submit_factor(browser, page, "totp", code="123456")
        assert page.status_code == 401
    clock.next_step()
    refused = submit_factor(browser, page, "totp", code=clock.code(secret))
    assert refused.status_code == 429, "the right code is not even examined while locked"
    assert int(refused.headers["retry-after"]) >= 1
    assert "mc_session" not in browser.http.cookies
    uid = str(user["id"])
    lockouts = _events(platform, uid, "login.lockout")
    assert lockouts and json.loads(lockouts[-1].details)["factor"] == "totp"
    assert _events(platform, uid, "login.factor.failure")


def test_password_lockout_is_journaled_for_the_account(platform, browser, user) -> None:
    page = browser.get(f"{platform.url}/connexion")
    for attempt in range(platform.settings.login_free_attempts + 1):
        page = browser.login(page, user["email"], f"mauvais-{attempt}")
    assert page.status_code == 401
    (event,) = _events(platform, str(user["id"]), "login.lockout")
    assert event.outcome == "refused" and event.reason == "password:2s"


# --- recovery codes ------------------------------------------------------------------------------


def test_recovery_code_works_once(platform, browser, user, clock) -> None:
    _, codes = _with_totp(platform, browser, user, clock)
    page = _password_step(browser, platform.url, user)
    assert submit_factor(browser, page, "recovery", code=codes[0].upper()).status_code == 200
    assert "mc_session" in browser.http.cookies
    assert _events(platform, str(user["id"]), "mfa.recovery.use")
    browser.http.cookies.clear()
    page = _password_step(browser, platform.url, user)
    reused = submit_factor(browser, page, "recovery", code=codes[0])
    assert reused.status_code == 401 and "déjà utilisé" in reused.text
    assert "mc_session" not in browser.http.cookies
    assert "9</strong> codes sur 10" not in reused.text  # nothing about the account leaks
    assert platform.provider.factors.recovery.remaining(uuid.UUID(str(user["id"]))) == 9


def test_recovery_code_attempts_are_throttled(platform, browser, user, clock) -> None:
    _, codes = _with_totp(platform, browser, user, clock)
    page = _password_step(browser, platform.url, user)
    for _ in range(platform.settings.login_free_attempts + 1):
        page = submit_factor(browser, page, "recovery", code="aaaaa-bbbbb")
        assert page.status_code == 401
    refused = submit_factor(browser, page, "recovery", code=codes[1])
    assert refused.status_code == 429
    assert "mc_session" not in browser.http.cookies
    events = _events(platform, str(user["id"]), "login.lockout")
    assert events and json.loads(events[-1].details)["factor"] == "recovery"


# --- the second factor cannot be skipped ---------------------------------------------------------


def test_second_factor_cannot_be_skipped(platform, flow, user, clock) -> None:
    _with_totp(platform, flow.browser, user, clock)
    page = flow.browser.login(flow.start(), user["email"], user["password"])
    interaction = query_of(str(page.url))["interaction"]
    # Straight to the end of the authorization request: back to the sign-in, no code.
    skipped = flow.browser.get(f"{platform.url}/authorize/continue?interaction={interaction}",
                               stop_at=flow.redirect_uri)
    assert "/connexion?interaction=" in str(skipped.url)
    assert "mc_session" not in flow.browser.http.cookies
    # A new authorization request: still no session, so sign-in again.
    again = flow.browser.get(flow.authorize_url(prompt="none"), follow=False)
    assert query_of(again.headers["location"])["error"] == "login_required"
    # Other pages needing a session do not open either.
    security = flow.browser.get(f"{platform.url}/compte/securite", follow=False)
    assert security.status_code == 303 and "/connexion?" in security.headers["location"]


def test_the_factor_step_belongs_to_the_browser_that_gave_the_password(platform, browser, user,
                                                                       clock) -> None:
    secret, _ = _with_totp(platform, browser, user, clock)
    _password_step(browser, platform.url, user)
    intruder = Browser()
    try:
        page = intruder.get(f"{platform.url}/connexion/facteur")
        assert page.status_code == 400 and "expiré" in page.text
    finally:
        intruder.close()


# --- recent sign-in for changes ------------------------------------------------------------------


def test_changes_need_a_recent_sign_in(platform, browser, user, clock) -> None:
    sign_in(browser, platform.url, user)
    page = browser.get(f"{platform.url}/compte/securite/totp")
    fields = form_of(page.text, "/compte/securite/totp")
    _age_session(platform, browser, 11 * 60)
    # The overview still shows, without the forms, and asks to confirm the identity.
    overview = browser.get(f"{platform.url}/compte/securite")
    assert "Confirmer mon identité" in overview.text
    assert 'action="/compte/securite/codes"' not in overview.text
    stale = browser.get(f"{platform.url}/compte/securite/totp", follow=False)
    assert stale.status_code == 303
    assert stale.headers["location"].startswith("/connexion?retour=%2Fcompte%2Fsecurite")
    code = clock.code(totp_secret(page.text))
    confirm = browser.post(f"{platform.url}/compte/securite/totp", {**fields, "code": code},
                           follow=False)
    assert confirm.status_code == 303 and "/connexion?" in confirm.headers["location"]
    assert platform.provider.factors.summary(uuid.UUID(str(user["id"]))).totp == []
    # Confirming the identity brings the person back, and the change is possible again.
    back = browser.get(platform.url + confirm.headers["location"])
    assert "Pour continuer, confirmez votre identité." in back.text
    assert user["email"] in back.text
    done = browser.login(back, user["email"], user["password"])
    assert str(done.url).startswith(f"{platform.url}/compte/securite")
    again = browser.get(f"{platform.url}/compte/securite/totp")
    assert totp_secret(again.text) == totp_secret(page.text)  # the same pending enrolment
    fields = form_of(again.text, "/compte/securite/totp", code=code)
    assert recovery_codes(browser.post(f"{platform.url}/compte/securite/totp", fields).text)


def test_return_path_after_sign_in_stays_on_this_site(platform, browser, user) -> None:
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        page = browser.get(f"{platform.url}/connexion?retour={evil}")
        assert "evil" not in page.text
        fields = form_of(page.text, "/connexion", email=user["email"],
                         password=user["password"], retour=evil)
        done = browser.post(f"{platform.url}/connexion", fields, follow=False)
        assert done.headers["location"] == "/connexion/termine", evil


# --- rename, remove, audit -----------------------------------------------------------------------


def test_factor_management(platform, browser, user, clock) -> None:
    sign_in(browser, platform.url, user)
    _, page = enrol_totp(browser, platform.url, clock)
    uid = uuid.UUID(str(user["id"]))
    factor = platform.provider.factors.totp.list(uid)[0]
    overview = browser.get(f"{platform.url}/compte/securite")
    rename = form_of(overview.text, f"/compte/securite/totp/{factor.id}/nom", name="Vieux tél.")
    done = browser.post(f"{platform.url}/compte/securite/totp/{factor.id}/nom", rename)
    assert "Vieux tél." in done.text and "est renommée" in done.text
    codes = form_of(done.text, "/compte/securite/codes")
    fresh = browser.post(f"{platform.url}/compte/securite/codes", codes)
    assert len(recovery_codes(fresh.text)) == 10
    remove = form_of(done.text, f"/compte/securite/totp/{factor.id}/supprimer")
    gone = browser.post(f"{platform.url}/compte/securite/totp/{factor.id}/supprimer", remove)
    assert "Aucune application d'authentification" in gone.text
    assert platform.provider.factors.recovery.remaining(uid) == 0  # useless without a factor
    for action in ("mfa.totp.rename", "mfa.totp.remove", "mfa.recovery.clear"):
        assert _events(platform, str(uid), action), action
    # Without a second factor, the password is enough again.
    browser.http.cookies.clear()
    assert "/connexion/facteur" not in str(sign_in(browser, platform.url, user).url)
    # Another person's factor cannot be touched.
    other = platform.create_user()
    sign_in(browser, platform.url, other)
    _, _ = enrol_totp(browser, platform.url, clock)
    theirs = platform.provider.factors.totp.list(uuid.UUID(str(other["id"])))[0]
    browser.http.cookies.clear()
    sign_in(browser, platform.url, user)
    enrol = browser.get(f"{platform.url}/compte/securite/totp")
    token = form_of(enrol.text, "/compte/securite/totp")["csrf_token"]
    for action in ("nom", "supprimer"):
        response = browser.post(f"{platform.url}/compte/securite/totp/{theirs.id}/{action}",
                                {"csrf_token": token, "name": "pris"})
        assert response.status_code == 404
    assert platform.provider.factors.totp.list(uuid.UUID(str(other["id"])))[0].name == theirs.name


def test_activity_page_names_the_factor_events_in_french(platform, browser, user, clock
                                                        ) -> None:
    secret, codes = _with_totp(platform, browser, user, clock)
    page = _password_step(browser, platform.url, user)
    wrong = submit_factor(browser, page, "totp", code="000000")
    assert wrong.status_code == 401
    assert submit_factor(browser, wrong, "recovery", code=codes[0]).status_code == 200
    activity = browser.get(f"{platform.url}/compte/activite")
    assert activity.status_code == 200
    text = unescape(activity.text)
    for label in ("Application d'authentification ajoutée", "Nouveaux codes de secours",
                  "Échec du second facteur", "Code de secours utilisé", "Connexion"):
        assert f"<td>{label}</td>" in text, label
    assert "mfa." not in text and "login." not in text and "Opération «" not in text
    assert secret not in text


# --- passkeys ------------------------------------------------------------------------------------


def test_passkey_enrolment_and_passwordless_sign_in(platform, flow, user) -> None:
    authenticator = SoftAuthenticator(user_verified=True)
    sign_in(flow.browser, platform.url, user)
    codes_page = register_passkey(flow.browser, platform.url, authenticator, name="Mon PC")
    assert len(recovery_codes(codes_page.text)) == 10  # the first second factor
    uid = uuid.UUID(str(user["id"]))
    with Session(platform.provider.engine) as session:
        stored = session.exec(select(WebAuthnCredential).where(
            WebAuthnCredential.user_id == uid)).one()
    assert stored.name == "Mon PC" and not stored.backed_up
    assert _events(platform, str(uid), "mfa.passkey.enrol")
    flow.browser.http.cookies.clear()
    # Passwordless: no e-mail, no password.
    page = flow.start()
    assert "Se connecter avec une clé d'accès" in page.text
    fields = form_of(page.text, "/connexion/cle")
    opts = options(flow.browser, platform.url, "/connexion/cle/options", fields["csrf_token"])
    assert opts["allowCredentials"] == [] and opts["rpId"] == "127.0.0.1"
    fields["credential"] = json.dumps(authenticator.get(opts, platform.url))
    done = flow.browser.post(f"{platform.url}/connexion/cle", fields, stop_at=flow.redirect_uri)
    tokens = flow.token(code_of(flow, done)).json()
    id_claims, at_claims = claims_of(flow, tokens)
    assert id_claims["acr"] == at_claims["acr"] == "eidas2"  # a user-verified passkey
    assert id_claims["amr"] == ["hwk", "mfa"]


def test_passkey_without_user_verification_is_one_factor(platform, browser, user) -> None:
    authenticator = SoftAuthenticator(user_verified=False, backed_up=True)
    sign_in(browser, platform.url, user)
    register_passkey(browser, platform.url, authenticator)
    browser.http.cookies.clear()
    page = browser.get(f"{platform.url}/connexion")
    fields = form_of(page.text, "/connexion/cle")
    opts = options(browser, platform.url, "/connexion/cle/options", fields["csrf_token"])
    fields["credential"] = json.dumps(authenticator.get(opts, platform.url))
    browser.post(f"{platform.url}/connexion/cle", fields)
    sso = platform.provider.sessions.get(browser.http.cookies.get("mc_session"))
    assert sso is not None and sso.acr == "eidas1" and sso.amr == ["swk"]


def test_passkey_as_second_factor_and_its_attacks(platform, browser, user) -> None:
    authenticator = SoftAuthenticator(user_verified=False)
    sign_in(browser, platform.url, user)
    register_passkey(browser, platform.url, authenticator)
    browser.http.cookies.clear()
    page = _password_step(browser, platform.url, user)
    assert "Utiliser ma clé d'accès" in page.text
    fields = form_of(page.text, "/connexion/facteur")
    opts = options(browser, platform.url, "/connexion/facteur/cle/options", fields["csrf_token"])
    assert [c["id"] for c in opts["allowCredentials"]] == [b64url(authenticator.credential_id)]
    assertion = authenticator.get(opts, platform.url)
    # Another person's passkey, or a forged signature, is refused.
    forged = dict(assertion, response=dict(assertion["response"], signature="AAAA"))
    refused = submit_factor(browser, page, "passkey", credential=json.dumps(forged))
    assert refused.status_code == 401
    # The challenge was spent by the refused attempt: a new one is needed.
    replay = submit_factor(browser, refused, "passkey", credential=json.dumps(assertion))
    assert replay.status_code == 401
    opts = options(browser, platform.url, "/connexion/facteur/cle/options", fields["csrf_token"])
    ok = submit_factor(browser, replay, "passkey",
                       credential=json.dumps(authenticator.get(opts, platform.url)))
    assert ok.status_code == 200
    sso = platform.provider.sessions.get(browser.http.cookies.get("mc_session"))
    assert sso is not None and sso.amr == ["pwd", "hwk", "mfa"] and sso.acr == "eidas2"


# --- CSRF on every new form ----------------------------------------------------------------------


def test_every_new_form_checks_its_csrf_token(platform, browser, user, clock) -> None:
    sign_in(browser, platform.url, user)
    enrol_totp(browser, platform.url, clock)
    uid = uuid.UUID(str(user["id"]))
    factor = platform.provider.factors.totp.list(uid)[0]
    posts = [
        "/connexion/facteur", "/connexion/cle", "/connexion/renforcement/abandon",
        "/compte/securite/totp", f"/compte/securite/totp/{factor.id}/nom",
        f"/compte/securite/totp/{factor.id}/supprimer", "/compte/securite/codes",
        "/compte/securite/cles", "/compte/securite/cles/x/nom", "/compte/securite/cles/x/supprimer",
    ]
    for path in posts:
        for token in ("", "forged"):
            response = browser.post(platform.url + path, {"csrf_token": token, "name": "x",
                                                          "code": "123456", "method": "totp"},
                                    follow=False)
            assert response.status_code == 403, (path, response.status_code)
    for path in ("/connexion/cle/options", "/connexion/facteur/cle/options",
                 "/compte/securite/cles/options"):
        response = browser.post(platform.url + path, {"csrf_token": "forged"}, follow=False)
        assert response.status_code == 403, path
    assert platform.provider.factors.totp.list(uid)[0].name == factor.name
    # A token of one form is not accepted by another (purpose-bound).
    overview = browser.get(f"{platform.url}/compte/securite")
    login_token = form_of(browser.get(f"{platform.url}/connexion").text, "/connexion")["csrf_token"]
    response = browser.post(f"{platform.url}/compte/securite/codes",
                            {"csrf_token": login_token}, follow=False)
    assert response.status_code == 403
    assert overview.status_code == 200


def test_passwordless_throttling_is_per_address_not_global(platform) -> None:
    """Failed passkey sign-ins from one address never lock out another address."""
    import secrets as _secrets

    from idp.services.factors.common import FactorFailed
    from idp.services.factors.service import Origin
    from plateforme.errors import TooManyRequests

    factors = platform.provider.factors
    noisy = Origin(address=f"192.0.2.{_secrets.randbelow(250) + 1}")
    quiet = Origin(address=f"198.51.100.{_secrets.randbelow(250) + 1}")
    throttled = False
    for _ in range(platform.settings.login_free_attempts + 2):
        try:
            factors.passwordless("{}", origin=noisy, binding="b")
        except TooManyRequests:
            throttled = True
            break
        except FactorFailed:
            continue
    assert throttled, "failures from one address must be throttled"
    with pytest.raises(FactorFailed):
        factors.passwordless("{}", origin=quiet, binding="b")
