"""The console end to end over HTTP: its own OIDC sign-in (two factors, ``eidas2``: refused
without a second factor, step-up of a password-only session), clients that then work in real
code flows, locked accounts, invitations by email, the audit journal and its export, CSRF."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from admin_ui import console_client
from idp.services import check_secret
from plateforme.audit import AuditQuery
from tests.conftest import CodeFlow
from tests.functional.admin_ui.conftest import (
    Console,
    give_factor,
    sign_in,
    with_second_factor,
)
from tests.support.browser import Browser, query_of
from tests.support.factors import enrol_totp, form_of, provider_clock, submit_factor
from tests.support.factors import sign_in as sign_in_with_password

REDIRECT = "http://127.0.0.1:9999/callback"


def _client_form(organisation: str, name: str = "Portail famille") -> dict[str, Any]:
    return {
        "name": name, "organisation": organisation, "redirect_uris": REDIRECT,
        "post_logout_redirect_uris": "http://127.0.0.1:9999/logged-out",
        "backchannel_logout_uri": "", "grant_types": ["authorization_code", "refresh_token"],
        "scopes": ["openid", "profile", "email"],
        "token_endpoint_auth_method": "client_secret_basic",
    }


def _shown_credentials(page: httpx.Response) -> tuple[str, str]:
    assert page.status_code == 200, page.text[:800]
    client_id = re.search(r'<code id="client-id">([^<]+)</code>', page.text)
    secret = re.search(r'<code id="client-secret">([^<]+)</code>', page.text)
    assert client_id and secret, page.text[:800]
    return unescape(client_id.group(1)), unescape(secret.group(1))


def _session_cookie(browser: Browser) -> str:
    values = [c for c in browser.http.cookies.jar if c.name == "mc_admin"]
    assert len(values) == 1, values
    assert values[0].path == "/admin"
    return str(values[0].value)


def _wait_for(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_console_sign_in_is_an_authorization_code_flow_with_pkce(platform) -> None:
    user = with_second_factor(platform, platform.create_user())
    platform.provider.organisations.grant(user["id"], "ctm", "ctm_admin")
    browser = Browser()
    try:
        first = browser.request("GET", platform.url + "/admin/clients")
        assert first.status_code == 303
        assert first.headers["location"] == "/admin/connexion?suite=%2Fadmin%2Fclients"
        start = browser.request("GET", platform.url + first.headers["location"])
        assert start.status_code == 302
        location = start.headers["location"]
        assert location.startswith(platform.url + "/authorize?")
        query = query_of(location)
        assert query["client_id"] == "console-admin"
        assert query["response_type"] == "code"
        assert query["redirect_uri"] == platform.url + "/admin/auth/callback"
        assert query["code_challenge_method"] == "S256"
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["code_challenge"])
        assert query["state"] and query["nonce"]
        assert "openid" in query["scope"].split()
        assert query["acr_values"] == "eidas2"
        cookie = next(h for h in start.headers.get_list("set-cookie") if h.startswith("mc_admin="))
        attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
        assert {"httponly", "path=/admin", "samesite=lax"} <= attributes
        assert "secure" not in attributes  # http:// issuer; Secure under https
        before = _session_cookie(browser)

        page = browser.follow(start)
        page = browser.login(page, user["email"], user["password"])
        assert "mc_session" not in browser.http.cookies, "nothing open before the second factor"
        page = give_factor(platform, browser, page, user)
        assert str(page.url) == platform.url + "/admin/clients"
        assert page.status_code == 200
        assert "<h1>Applications clientes</h1>" in page.text
        after = _session_cookie(browser)
        assert after != before, "a new session id at sign-in (no session fixation)"
        assert platform.provider.store.get(f"admin:session:{before}") is None
        assert str(user["id"]) in (platform.provider.store.get(f"admin:session:{after}") or "")
    finally:
        browser.close()


def _console_session(platform: Any, browser: Browser) -> dict[str, Any]:
    data = platform.provider.store.get(f"admin:session:{_session_cookie(browser)}")
    return dict(json.loads(data)) if data else {}


def _console_sign_ins(platform: Any, user: dict[str, Any]) -> list[Any]:
    return platform.provider.journal.search(AuditQuery(actor=str(user["id"]),
                                                       action="admin.sign_in"))


def test_console_id_token_carries_eidas2(platform, console_as) -> None:
    admin = console_as(("ctm", "ctm_admin"))
    session = _console_session(platform, admin.browser)
    assert session["acr"] == "eidas2"
    jwks = httpx.get(platform.url + "/jwks.json").json()
    claims = jwt.decode(session["id_token"], KeySet.import_key_set(jwks),
                        algorithms=["ES256", "RS256"]).claims
    assert claims["aud"] == "console-admin" and claims["iss"] == platform.url
    assert claims["acr"] == "eidas2"
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["sid"] == session["sid"]
    (event,) = _console_sign_ins(platform, admin.user)
    assert json.loads(event.details or "{}") == {"acr": "eidas2"}


def test_staff_without_a_second_factor_is_shown_how_to_add_one_and_never_reaches_the_console(
        platform) -> None:
    user = platform.create_user()
    platform.provider.organisations.grant(user["id"], "ctm", "ctm_admin")
    browser = Browser()
    try:
        page = browser.get(platform.url + "/admin/clients")
        page = browser.login(page, user["email"], user["password"])
        # The provider's page, not the console: the code is never issued.
        assert page.status_code == 403, (page.url, page.text[:300])
        assert str(page.url).startswith(platform.url + "/authorize/continue?interaction=")
        assert "<h1>Connexion renforcée demandée</h1>" in page.text
        assert "Console d&#39;administration" in page.text
        assert "application d'authentification" in page.text
        assert not any("/admin/auth/callback" in str(r.headers.get("location", ""))
                       for r in browser.history)
        assert _console_session(platform, browser).get("user_id") is None
        assert browser.request("GET", platform.url + "/admin/clients").status_code == 303
        assert _console_sign_ins(platform, user) == []

        # Giving up: back to the console, which explains what to do (still no session).
        fields = form_of(page.text, "/connexion/renforcement/abandon")
        back = browser.post(platform.url + "/connexion/renforcement/abandon", fields)
        assert str(back.url).startswith(platform.url + "/admin/auth/callback?error="
                                        "unmet_authentication_requirements")
        assert back.status_code == 403
        assert "<h1>Connexion renforcée demandée</h1>" in back.text
        assert 'href="/compte/securite"' in back.text
        assert _console_session(platform, browser).get("user_id") is None

        # Following the provider's advice: add an authenticator app, then continue.
        page = browser.get(platform.url + "/admin/clients")
        assert page.status_code == 403 and "Connexion renforcée demandée" in page.text
        suite = page.text.split('href="/compte/securite?suite=')[1].split('"')[0]
        security = browser.get(f"{platform.url}/compte/securite?suite={suite}")
        assert "Console d&#39;administration" in security.text
        clock = provider_clock(platform.provider)
        user["totp_secret"], codes = enrol_totp(browser, platform.url, clock)
        assert codes.status_code == 200 and "Vos codes de secours" in codes.text
        security = browser.get(f"{platform.url}/compte/securite?suite={suite}")
        assert f'href="/authorize/continue?interaction={suite}"' in security.text
        factor = browser.get(f"{platform.url}/authorize/continue?interaction={suite}")
        assert 'name="password"' not in factor.text, "only the missing factor is asked"
        console = give_factor(platform, browser, factor, user)
        assert str(console.url) == platform.url + "/admin/clients"
        assert "<h1>Applications clientes</h1>" in console.text
        assert _console_session(platform, browser)["acr"] == "eidas2"
    finally:
        browser.close()


def test_password_only_session_is_stepped_up_for_the_console(platform) -> None:
    user = platform.create_user()
    platform.provider.organisations.grant(user["id"], "lamentin", "org_admin")
    browser = Browser()
    try:
        signed_in = sign_in_with_password(browser, platform.url, user)  # e.g. a citizen service
        assert signed_in.status_code == 200
        sid = browser.http.cookies.get("mc_session")
        before = platform.provider.sessions.get(sid)
        assert before.acr == "eidas1" and before.amr == ["pwd"]
        with_second_factor(platform, user)  # added later: the session stays at eidas1

        page = browser.get(platform.url + "/admin/")
        assert "/connexion/facteur?interaction=" in str(page.url), page.url
        assert 'name="password"' not in page.text, "the password is not asked again"
        assert "connexion renforcée" in page.text
        assert _console_session(platform, browser).get("user_id") is None
        console = give_factor(platform, browser, page, user)
        assert str(console.url) == platform.url + "/admin/"
        assert "<h1>Tableau de bord</h1>" in console.text
        after = platform.provider.sessions.get(sid)
        assert after.acr == "eidas2" and after.amr == ["pwd", "otp", "mfa"]
        session = _console_session(platform, browser)
        assert session["sid"] == sid, "the same provider session, upgraded in place"
        assert session["acr"] == "eidas2"
        (stepup,) = platform.provider.journal.search(AuditQuery(actor=str(user["id"]),
                                                                action="login.stepup"))
        assert json.loads(stepup.details or "{}")["acr"] == "eidas2"
    finally:
        browser.close()


def test_demo_staff_sign_in_to_the_console_with_the_seeded_authenticator_app(platform,
                                                                             tmp_path) -> None:
    """``make run``: the demo CTM administrator signs in with the password and the code of the
    key ``demo seed`` printed, at once (the seeding did not use up the current code)."""
    from martinique_connect.demo import seed

    clock = provider_clock(platform.provider)
    seed(platform.provider, tmp_path / "demo.json")
    again = seed(platform.provider, tmp_path / "demo.json")
    logins = {login["email"]: login for login in again["logins"]}
    admin = logins["admin@demo.mq"]
    assert "totp" not in logins["marie.dupont@demo.mq"]
    browser = Browser()
    try:
        page = browser.get(platform.url + "/admin/")
        page = browser.login(page, admin["email"], admin["password"])
        assert "/connexion/facteur?interaction=" in str(page.url), page.url
        page = submit_factor(browser, page, "totp", code=clock.code(admin["totp"]["secret"]))
        assert str(page.url) == platform.url + "/admin/", page.text[:300]
        assert "<h1>Tableau de bord</h1>" in page.text
        assert _console_session(platform, browser)["acr"] == "eidas2"
    finally:
        browser.close()


def test_callback_without_the_flow_s_state_is_refused(platform) -> None:
    response = httpx.get(platform.url + "/admin/auth/callback?code=abc&state=forged")
    assert response.status_code == 400
    assert "Connexion impossible" in response.text


def test_client_created_for_a_commune_works_and_its_secret_rotates(platform, console_as
                                                                    ) -> None:
    admin = console_as(("ctm", "ctm_admin"))
    form = admin.get("/admin/clients/nouveau")
    assert 'name="csrf_token"' in form.text and 'autocomplete="off"' in form.text
    created = admin.post("/admin/clients/nouveau", _client_form("francois"))
    client_id, secret = _shown_credentials(created)
    assert created.headers["cache-control"] == "no-store"
    registered = platform.provider.clients.show(client_id)
    assert registered.organisation == "francois"
    assert registered.first_party is False
    assert registered.redirect_uris == [REDIRECT]
    assert secret not in admin.get(f"/admin/clients/{client_id}").text, "shown once only"
    sheet = admin.get(f"/admin/clients/{client_id}/integration").text
    assert f"{platform.url}/.well-known/openid-configuration" in sheet
    assert client_id in sheet and "authorize_redirect" in sheet

    citizen = platform.create_user()
    flow, browser = _flow(platform, client_id, secret)
    try:
        code = flow.get_code(citizen)["code"]  # sign-in, then the consent page (third party)
        tokens = flow.token(code)
        assert tokens.status_code == 200, tokens.text
        assert {"access_token", "id_token", "refresh_token"} <= set(tokens.json())

        rotated = admin.post(f"/admin/clients/{client_id}/secret", {"motif": "secret divulgué"})
        same_id, new_secret = _shown_credentials(rotated)
        assert same_id == client_id and new_secret != secret

        refused = flow.token(flow.get_code(citizen)["code"])  # the old secret
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"] == "invalid_client"
        flow.client = {"client_id": client_id, "client_secret": new_secret}
        accepted = flow.token(flow.get_code(citizen)["code"])
        assert accepted.status_code == 200, accepted.text

        disabled = admin.post(f"/admin/clients/{client_id}/desactiver",
                              {"motif": "fin du marché"})
        assert disabled.status_code == 303
        refresh = httpx.post(platform.url + "/token", auth=(client_id, new_secret), data={
            "grant_type": "refresh_token", "refresh_token": accepted.json()["refresh_token"]})
        assert refresh.status_code == 401, refresh.text
        assert flow.start().status_code == 400, "a disabled client gets no sign-in"
    finally:
        browser.close()


def _flow(platform: Any, client_id: str, secret: str) -> tuple[CodeFlow, Browser]:
    browser = Browser()
    return CodeFlow(platform=platform, client={"client_id": client_id, "client_secret": secret},
                    browser=browser), browser


def test_locked_account_cannot_sign_in_until_unlocked(platform, console_as, flow, user) -> None:
    support = console_as(("ctm", "support"))
    assert flow.token(flow.get_code(user)["code"]).status_code == 200
    person = support.get(f"/admin/personnes/{user['id']}")
    assert person.status_code == 200 and "Sessions ouvertes</dt><dd>1<" in person.text

    locked = support.post(f"/admin/personnes/{user['id']}/verrouiller",
                          {"motif": "usurpation signalée"})
    assert locked.status_code == 303
    assert "Le compte est verrouillé" in support.get(locked.headers["location"]).text
    assert platform.provider.sessions.for_user(user["id"]) == []

    fresh = Browser()
    try:
        again = CodeFlow(platform=platform, client=flow.client, browser=fresh)
        page = fresh.login(again.start(), user["email"], user["password"])
        assert page.status_code == 401
        assert "Adresse électronique ou mot de passe incorrect." in page.text

        unlocked = support.post(f"/admin/personnes/{user['id']}/deverrouiller",
                                {"motif": "identité vérifiée au guichet"})
        assert unlocked.status_code == 303
        assert again.token(again.get_code(user)["code"]).status_code == 200
        ended = support.post(f"/admin/personnes/{user['id']}/sessions",
                             {"motif": "poste partagé"})
        assert ended.status_code == 303
        assert platform.provider.sessions.for_user(user["id"]) == []
    finally:
        fresh.close()


def _message_to(platform: Any, address: str) -> email.message.EmailMessage:
    outbox = platform.settings.data_dir / "outbox"
    found = []
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == address:
            found.append(message)
    assert len(found) == 1, f"{len(found)} messages to {address}"
    return found[0]  # type: ignore[return-value]


def test_invited_commune_admin_then_manages_that_commune_s_clients_only(platform, console_as
                                                                        ) -> None:
    admin = console_as(("ctm", "ctm_admin"))
    lamentin = platform.create_client(name="Cantine du Lamentin", organisation="lamentin")
    address = f"maire-{secrets.token_hex(4)}@francois.mq"
    invitee = with_second_factor(platform, platform.create_user(email=address))

    sent = admin.post("/admin/organisations/francois/invitations",
                      {"email": address, "role": "org_admin"})
    assert sent.status_code == 303
    message = _message_to(platform, address)
    assert "Le François" in message["Subject"]
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    link = re.search(re.escape(platform.url) + r"/admin/invitation/[A-Za-z0-9_-]+", text)
    assert link and link.group(0) in html
    path = link.group(0).removeprefix(platform.url)

    browser, page = sign_in(platform, invitee, start=path)
    assert str(page.url) == link.group(0)
    assert "Accepter l'invitation" in page.text
    console = Console(platform=platform, browser=browser, user=invitee)
    try:
        accepted = console.post(path)
        assert accepted.status_code == 303
        welcome = console.get("/admin/")
        assert "administrateur de l&#39;organisation (Le François)" in welcome.text
        assert console.post(path).status_code == 404, "an invitation serves once"

        created = console.post("/admin/clients/nouveau", _client_form("francois", "Piscine"))
        client_id, _ = _shown_credentials(created)
        assert platform.provider.clients.show(client_id).organisation == "francois"
        assert console.post("/admin/clients/nouveau",
                            _client_form("lamentin")).status_code == 403
        listed = console.get("/admin/clients").text
        assert client_id in listed and lamentin["client_id"] not in listed
        assert console.get(f"/admin/clients/{lamentin['client_id']}").status_code == 403
        assert console.get("/admin/organisations/francois").status_code == 200
        assert console.get("/admin/organisations/lamentin").status_code == 403
    finally:
        console.close()


def test_invitation_for_another_address_is_refused(platform, console_as) -> None:
    admin = console_as(("ctm", "ctm_admin"))
    address = f"agent-{secrets.token_hex(4)}@robert.mq"
    admin.post("/admin/organisations/robert/invitations", {"email": address, "role": "viewer"})
    text = _message_to(platform, address).get_body(
        preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    path = re.search(r"/admin/invitation/[A-Za-z0-9_-]+", text).group(0)  # type: ignore[union-attr]
    intruder = console_as()
    refused = intruder.post(path)
    assert refused.status_code == 403
    assert intruder.get("/admin/organisations/robert").status_code == 403


def test_every_console_action_is_in_the_audit_journal_and_its_csv_export(platform, console_as
                                                                         ) -> None:
    admin = console_as(("ctm", "ctm_admin"))
    actor = str(admin.user["id"])
    created = admin.post("/admin/clients/nouveau", _client_form("robert", "Médiathèque"))
    client_id, _ = _shown_credentials(created)
    edited = dict(_client_form("robert", "Médiathèque du Robert"), motif="nouvelle adresse")
    assert admin.post(f"/admin/clients/{client_id}/modifier", edited).status_code == 303
    steps = [
        (f"/admin/clients/{client_id}/secret", {"motif": "rotation annuelle"}),
        (f"/admin/clients/{client_id}/desactiver", {"motif": "maintenance"}),
        (f"/admin/clients/{client_id}/activer", {"motif": "fin de maintenance"}),
    ]
    person = platform.create_user()
    member = platform.create_user()
    steps += [
        (f"/admin/personnes/{person['id']}/verrouiller", {"motif": "fraude"}),
        (f"/admin/personnes/{person['id']}/deverrouiller", {"motif": "levée"}),
        (f"/admin/personnes/{person['id']}/sessions", {"motif": "poste partagé"}),
        ("/admin/organisations/robert/roles",
         {"email": member["email"], "role": "viewer", "motif": "suivi du marché"}),
        ("/admin/organisations/robert/roles/retirer",
         {"user_id": str(member["id"]), "role": "viewer", "motif": "fin du marché"}),
        ("/admin/organisations/robert/invitations",
         {"email": f"x-{secrets.token_hex(3)}@robert.mq", "role": "buyer"}),
        (f"/admin/clients/{client_id}/supprimer", {"motif": "doublon"}),
        (f"/admin/personnes/{person['id']}/supprimer", {"motif": "demande RGPD"}),
    ]
    for path, data in steps:
        response = admin.post(path, data)
        assert response.status_code in (200, 303), (path, response.status_code)

    expected = {
        "client.create": None, "client.update": "nouvelle adresse",
        "client.rotate_secret": "rotation annuelle", "client.disable": "maintenance",
        "client.enable": "fin de maintenance", "client.delete": "doublon",
        "user.lock": "fraude", "user.unlock": "levée", "user.end_sessions": "poste partagé",
        "user.delete": "demande RGPD", "membership.grant": "suivi du marché",
        "membership.revoke": "fin du marché", "membership.invite": None,
    }
    page = admin.get(f"/admin/journal?acteur={actor}")
    assert page.status_code == 200
    assert "Chaîne d'empreintes intègre" in page.text
    for action, reason in expected.items():
        assert f"<code>{action}</code>" in page.text, action
        if reason:
            assert reason in page.text, reason

    export = admin.get(f"/admin/journal.csv?acteur={actor}")
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text.lstrip("\ufeff"))))
    by_action = {r["action"]: r for r in rows}
    for action, reason in expected.items():
        assert action in by_action, action
        assert by_action[action]["actor"] == actor
        assert by_action[action]["outcome"] == "success"
        if reason:
            assert by_action[action]["reason"] == reason
    for action in ("client.create", "client.rotate_secret", "client.delete", "membership.grant",
                   "membership.invite"):
        assert by_action[action]["organisation"] == "robert", action

    only_clients = admin.get(f"/admin/journal.csv?acteur={actor}&action=client.")
    actions = {r["action"] for r in csv.DictReader(io.StringIO(only_clients.text.lstrip("\ufeff")))}
    assert actions == {a for a in expected if a.startswith("client.")}
    today = datetime.now(UTC).date()
    in_range = admin.get(f"/admin/journal.csv?acteur={actor}&du={today}&au={today}")
    in_range_seqs = {r["seq"] for r in csv.DictReader(io.StringIO(in_range.text.lstrip("\ufeff")))}
    assert {r["seq"] for r in rows} <= in_range_seqs  # (plus the exports themselves, journaled)
    tomorrow = today + timedelta(days=1)
    later = admin.get(f"/admin/journal.csv?acteur={actor}&du={tomorrow}")
    assert list(csv.DictReader(io.StringIO(later.text.lstrip("\ufeff")))) == []
    by_org = admin.get(f"/admin/journal?organisation=robert&acteur={admin.user['email']}")
    assert "<code>membership.grant</code>" in by_org.text
    assert "<code>user.lock</code>" not in by_org.text  # people belong to no organisation
    bad_date = admin.get("/admin/journal?du=31-12-2026")
    assert bad_date.status_code == 422 and 'aria-invalid="true"' in bad_date.text


def test_posts_without_this_session_s_csrf_token_are_refused(platform, console_as) -> None:
    admin = console_as(("ctm", "ctm_admin"))
    other = console_as(("ctm", "ctm_admin"))
    client = platform.create_client(name="Cible", organisation="vauclin")
    person = platform.create_user()
    posts = [
        ("/admin/clients/nouveau", _client_form("vauclin")),
        (f"/admin/clients/{client['client_id']}/modifier",
         dict(_client_form("vauclin"), motif="essai")),
        (f"/admin/clients/{client['client_id']}/secret", {"motif": "essai"}),
        (f"/admin/clients/{client['client_id']}/desactiver", {"motif": "essai"}),
        (f"/admin/clients/{client['client_id']}/supprimer", {"motif": "essai"}),
        (f"/admin/personnes/{person['id']}/verrouiller", {"motif": "essai"}),
        (f"/admin/personnes/{person['id']}/sessions", {"motif": "essai"}),
        (f"/admin/personnes/{person['id']}/verification", {"motif": "essai"}),
        (f"/admin/personnes/{person['id']}/facteurs", {"motif": "essai"}),
        (f"/admin/personnes/{person['id']}/supprimer", {"motif": "essai"}),
        ("/admin/organisations/vauclin/roles",
         {"email": person["email"], "role": "viewer", "motif": "essai"}),
        ("/admin/organisations/vauclin/invitations", {"email": "a@b.mq", "role": "viewer"}),
        ("/admin/cles/rotation", {"motif": "essai"}),
        ("/admin/deconnexion", {}),
    ]
    foreign = other.csrf
    for path, data in posts:
        for token in ("", "0" * 64, foreign):
            response = admin.post(path, data, csrf=token)
            assert response.status_code == 403, (path, token, response.status_code)
            assert "Formulaire expiré" in response.text
    assert platform.provider.clients.show(client["client_id"]).disabled is False
    assert platform.provider.users.get(person["id"]).locked is False
    assert admin.get("/admin/").status_code == 200, "still signed in"


def test_sign_out_ends_the_console_and_the_provider_sessions(platform, console_as) -> None:
    admin = console_as(("ctm", "ctm_admin"))
    response = admin.post("/admin/deconnexion")
    assert response.status_code == 302
    query = query_of(response.headers["location"])
    assert response.headers["location"].startswith(platform.url + "/logout?")
    assert query["post_logout_redirect_uri"] == platform.url + "/admin/"
    assert query["id_token_hint"] and query["state"]
    page = admin.browser.follow(response)
    assert str(page.url).startswith(platform.url + "/admin/?state=")
    assert "Vous êtes déconnecté" in page.text
    assert platform.provider.sessions.for_user(admin.user["id"]) == []
    again = admin.get("/admin/clients")
    assert again.status_code == 303 and again.headers["location"].startswith("/admin/connexion")


def test_backchannel_logout_ends_the_console_sessions_of_that_sid(platform, console_as) -> None:
    admin = console_as(("ctm", "ctm_admin"))
    key = f"admin:session:{_session_cookie(admin.browser)}"
    assert platform.provider.store.get(key) is not None
    # the person's provider session ends elsewhere: the provider tells the console
    platform.provider.end_all_sessions(admin.user["id"], reason="test")
    assert _wait_for(lambda: platform.provider.store.get(key) is None), \
        "the back-channel logout did not end the console session"
    assert admin.get("/admin/").status_code == 303


def test_backchannel_logout_refuses_forged_tokens(platform) -> None:
    url = platform.url + "/admin/backchannel-logout"
    assert httpx.post(url, data={"logout_token": "a.b.c"}).status_code == 400
    assert httpx.post(url, data={}).status_code == 400
    key = ECKey.generate_key("P-256")
    forged = jwt.encode({"alg": "ES256", "typ": "logout+jwt"}, {
        "iss": platform.url, "aud": "console-admin", "iat": int(time.time()), "sid": "x",
        "jti": "j", "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}, key)
    assert httpx.post(url, data={"logout_token": forged}).status_code == 400


def test_console_client_is_registered_with_a_derived_secret(platform) -> None:
    data, secret = console_client(platform.settings)
    client = platform.provider.clients.show("console-admin")
    assert client.first_party and client.subject_type == "public"
    assert client.default_acr == "eidas2", "no request can lower the console's level"
    assert client.redirect_uris == [platform.url + "/admin/auth/callback"]
    assert client.post_logout_redirect_uris == [platform.url + "/admin/"]
    assert client.backchannel_logout_uri == platform.url + "/admin/backchannel-logout"
    record = platform.provider.clients.get("console-admin")
    assert record.client_secret_hash != secret and len(secret) == 64
    assert check_secret(record, secret)
    # idempotent: initialising again changes nothing and journals nothing
    last = platform.provider.journal.search(AuditQuery(), limit=1)[0].seq
    platform.provider.clients.ensure(data, secret, actor="initialisation")
    assert platform.provider.journal.search(AuditQuery(), limit=1)[0].seq == last
    # a registration without the minimum level (an older release's) is brought up to date
    try:
        platform.provider.clients.ensure(data.model_copy(update={"default_acr": None}), secret,
                                         actor="initialisation")
        assert platform.provider.clients.show("console-admin").default_acr is None
    finally:
        platform.provider.clients.ensure(data, secret, actor="initialisation")
    assert platform.provider.clients.show("console-admin").default_acr == "eidas2"
    updates = platform.provider.journal.search(AuditQuery(action="client.update"), limit=2)
    for event in updates:
        assert event.target == "console-admin" and event.reason == "initialisation"
        assert json.loads(event.details or "{}") == {"fields": ["default_acr"]}


def test_the_edit_page_switches_delegation_on_and_off(platform, console_as) -> None:
    admin = console_as(("ctm", "ctm_admin"))
    created = admin.post("/admin/clients/nouveau", _client_form("robert", "Cantine"))
    client_id, _ = _shown_credentials(created)
    assert platform.provider.clients.get(client_id).delegation_allowed is False
    form = admin.get(f"/admin/clients/{client_id}/modifier").text
    assert 'name="delegation_allowed"' in form and "checked" not in form.split(
        'id="procuration"')[1].split(">")[0]
    edited = dict(_client_form("robert", "Cantine"), motif="procurations des parents",
                  delegation_allowed="on")
    assert admin.post(f"/admin/clients/{client_id}/modifier", edited).status_code == 303
    assert platform.provider.clients.get(client_id).delegation_allowed is True
    assert "acceptées" in admin.get(f"/admin/clients/{client_id}").text
    form = admin.get(f"/admin/clients/{client_id}/modifier").text
    assert "checked" in form.split('id="procuration"')[1].split(">")[0]
    edited.pop("delegation_allowed")
    edited["motif"] = "fin des procurations"
    assert admin.post(f"/admin/clients/{client_id}/modifier", edited).status_code == 303
    assert platform.provider.clients.get(client_id).delegation_allowed is False
    events = platform.provider.journal.search(
        AuditQuery(action="client.update", target=client_id), limit=10)
    assert sorted(json.loads(e.details)["delegation_allowed"] for e in events) == [False, True]
