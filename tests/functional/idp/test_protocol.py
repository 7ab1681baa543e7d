"""Protocol behaviour: discovery, SSO, prompt/max_age, consent, logout, keys, subjects."""

from __future__ import annotations

import json
import time

import httpx
from jose import jwt as jose_jwt

from tests.conftest import CodeFlow
from tests.support.browser import query_of
from tests.support.receiver import backchannel_receiver


def _jwks(platform) -> dict:
    return httpx.get(f"{platform.url}/jwks.json").json()


def _verify(platform, token: str, audience: str | None = None) -> dict:
    """Checked by python-jose, an implementation independent of ours."""
    header = jose_jwt.get_unverified_header(token)
    key = next(k for k in _jwks(platform)["keys"] if k["kid"] == header["kid"])
    return jose_jwt.decode(token, key, algorithms=[header["alg"]], audience=audience,
                           issuer=platform.url, options={"verify_at_hash": False})


def test_discovery_advertises_what_is_supported(platform) -> None:
    meta = httpx.get(f"{platform.url}/.well-known/openid-configuration").json()
    assert meta["issuer"] == platform.url
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["acr_values_supported"] == ["eidas1", "eidas2"]
    assert set(meta["id_token_signing_alg_values_supported"]) == {"ES256", "RS256"}
    assert "none" not in meta["id_token_signing_alg_values_supported"]
    assert meta["backchannel_logout_session_supported"] is True
    assert meta["subject_types_supported"] == ["pairwise", "public"]
    oauth = httpx.get(f"{platform.url}/.well-known/oauth-authorization-server").json()
    assert oauth == meta


def test_jwks_publishes_active_and_next_keys(platform) -> None:
    keys = _jwks(platform)["keys"]
    assert {k["alg"] for k in keys} == {"ES256", "RS256"}
    assert len(keys) >= 4
    assert all("d" not in k and "p" not in k for k in keys), "private material published"


def test_id_token_claims(flow, user) -> None:
    params = flow.get_code(user)
    tokens = flow.token(params["code"]).json()
    claims = _verify(flow.platform, tokens["id_token"], audience=flow.client["client_id"])
    assert claims["nonce"] == flow.nonce
    assert claims["acr"] == "eidas1"
    assert claims["amr"] == ["pwd"]
    assert {"at_hash", "auth_time", "sid", "sub", "iat", "exp"} <= set(claims)
    header = jose_jwt.get_unverified_header(tokens["id_token"])
    assert header["alg"] == "ES256"


def test_access_token_is_an_rfc9068_jwt(flow, user) -> None:
    tokens = flow.token(flow.get_code(user)["code"]).json()
    header = jose_jwt.get_unverified_header(tokens["access_token"])
    assert header["typ"] == "at+jwt"
    claims = _verify(flow.platform, tokens["access_token"], audience=flow.platform.url)
    assert claims["client_id"] == flow.client["client_id"]
    assert {"iss", "sub", "aud", "exp", "iat", "jti", "scope", "auth_time", "acr"} <= set(claims)


def test_rs256_per_client(platform, browser, user) -> None:
    client = platform.create_client(name="RS256", id_token_signed_response_alg="RS256")
    rs = CodeFlow(platform=platform, client=client, browser=browser)
    tokens = rs.token(rs.get_code(user)["code"]).json()
    assert jose_jwt.get_unverified_header(tokens["id_token"])["alg"] == "RS256"
    _verify(platform, tokens["id_token"], audience=client["client_id"])


def test_single_sign_on_across_clients(platform, flow, browser, user) -> None:
    flow.get_code(user)
    other = platform.create_client(name="Stationnement", first_party=True)
    parking = CodeFlow(platform=platform, client=other, browser=browser)
    response = parking.start()
    assert response.status_code == 302, "a second client must not ask for a password again"
    query = query_of(response.headers["location"])
    tokens = parking.token(query["code"]).json()
    first_sid = _verify(platform, tokens["id_token"], audience=other["client_id"])["sid"]
    assert first_sid


def test_pairwise_subjects_differ_between_sectors(platform, browser, user) -> None:
    a = platform.create_client(name="A", redirect_uris=["http://127.0.0.1:9999/callback"],
                               first_party=True)
    b = platform.create_client(name="B", redirect_uris=["http://localhost:9998/callback"],
                               first_party=True)
    pub = platform.create_client(name="P", subject_type="public", first_party=True)
    subs = []
    for client, uri in ((a, "http://127.0.0.1:9999/callback"),
                        (b, "http://localhost:9998/callback"),
                        (pub, "http://127.0.0.1:9999/callback")):
        flow = CodeFlow(platform=platform, client=client, browser=browser, redirect_uri=uri)
        tokens = flow.token(flow.get_code(user)["code"]).json()
        subs.append(_verify(platform, tokens["id_token"], audience=client["client_id"])["sub"])
    assert subs[0] != subs[1]
    assert subs[2] == str(user["id"])
    assert str(user["id"]) not in subs[:2]


def test_prompt_none_with_session_returns_a_code(flow, user) -> None:
    flow.get_code(user)
    response = flow.browser.get(flow.authorize_url(prompt="none"), follow=False)
    assert "code" in query_of(response.headers["location"])


def test_prompt_login_forces_a_new_sign_in(flow, user) -> None:
    flow.get_code(user)
    first_auth = None
    response = flow.start(prompt="login")
    assert "/connexion?" in str(response.url)
    time.sleep(1.1)
    params = flow.get_code(user, prompt="login")
    tokens = flow.token(params["code"]).json()
    claims = _verify(flow.platform, tokens["id_token"], audience=flow.client["client_id"])
    assert claims["auth_time"] > int(time.time()) - 5
    assert first_auth is None


def test_max_age_forces_sign_in_when_exceeded(flow, user) -> None:
    flow.get_code(user)
    time.sleep(1.1)
    response = flow.start(max_age="0")
    assert "/connexion?" in str(response.url)
    response = flow.browser.get(flow.authorize_url(max_age="0", prompt="none"), follow=False)
    assert query_of(response.headers["location"])["error"] == "login_required"


def test_login_hint_prefills_the_form(flow) -> None:
    page = flow.start(login_hint="marie@example.mq")
    assert 'value="marie@example.mq"' in page.text


def test_consent_is_asked_once_then_remembered(platform, browser, user) -> None:
    client = platform.create_client(name="Service tiers")
    tier = CodeFlow(platform=platform, client=client, browser=browser)
    page = tier.start()
    page = browser.login(page, user["email"], user["password"], stop_at=tier.redirect_uri)
    assert "/connexion/consentement" in str(page.url)
    assert "adresse électronique" in page.text
    done = browser.consent(page, stop_at=tier.redirect_uri)
    assert "code" in query_of(done.headers["location"])
    again = tier.start()
    assert again.status_code == 302
    assert "code" in query_of(again.headers["location"])
    forced = tier.start(prompt="consent")
    assert "/connexion/consentement" in str(forced.url)
    none = browser.get(tier.authorize_url(prompt="none", scope="openid phone"), follow=False)
    assert query_of(none.headers["location"])["error"] == "consent_required"


def test_consent_refused_returns_access_denied(platform, browser, user) -> None:
    client = platform.create_client(name="Refusé")
    tier = CodeFlow(platform=platform, client=client, browser=browser)
    page = browser.login(tier.start(), user["email"], user["password"],
                         stop_at=tier.redirect_uri)
    refused = browser.consent(page, "deny", stop_at=tier.redirect_uri)
    query = query_of(refused.headers["location"])
    assert query["error"] == "access_denied"
    assert query["state"] == tier.state


def test_first_party_consent_is_implied_and_recorded(platform, browser, user) -> None:
    client = platform.create_client(name="Cantine", first_party=True)
    own = CodeFlow(platform=platform, client=client, browser=browser)
    own.get_code(user)
    consents = platform.provider.consents.list(user["id"])
    record = next(c for c in consents if c.client_id == client["client_id"])
    assert record.implied is True


def test_scopes_are_limited_to_the_clients(platform, browser, user) -> None:
    client = platform.create_client(name="Limité", scopes=["openid", "email"], first_party=True)
    limited = CodeFlow(platform=platform, client=client, browser=browser)
    tokens = limited.token(limited.get_code(user, scope="openid email phone")["code"]).json()
    assert tokens["scope"].split() == ["openid", "email"]


def test_userinfo_get_and_post(flow, user) -> None:
    access = flow.token(flow.get_code(user)["code"]).json()["access_token"]
    url = f"{flow.platform.url}/userinfo"
    got = httpx.get(url, headers={"Authorization": f"Bearer {access}"}).json()
    posted = httpx.post(url, data={"access_token": access}).json()
    assert got == posted
    assert got["given_name"] == "Marie"
    assert got["email_verified"] is True
    assert "phone_number" not in got


def test_userinfo_refuses_the_token_of_a_locked_account(flow, platform) -> None:
    person = platform.create_user(given_name="Marie", family_name="Essai", email_verified=True)
    access = flow.token(flow.get_code(person)["code"]).json()["access_token"]
    url = f"{flow.platform.url}/userinfo"
    headers = {"Authorization": f"Bearer {access}"}
    assert httpx.get(url, headers=headers).json()["email"] == person["email"]
    platform.provider.users.set_locked(person["id"], True, actor=None, reason="test")
    refused = httpx.get(url, headers=headers)
    assert refused.status_code == 401
    assert "invalid_token" in refused.headers["www-authenticate"]
    platform.provider.users.set_locked(person["id"], False, actor=None, reason="test")
    assert httpx.get(url, headers=headers).status_code == 200


def test_refresh_rotation_and_introspection(flow, user, platform) -> None:
    tokens = flow.token(flow.get_code(user)["code"]).json()
    auth = (flow.client["client_id"], flow.client["client_secret"])
    refreshed = httpx.post(f"{platform.url}/token", auth=auth, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json()
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    info = httpx.post(f"{platform.url}/introspect", auth=auth,
                      data={"token": refreshed["access_token"]}).json()
    assert info["active"] is True
    assert info["client_id"] == flow.client["client_id"]
    assert info["acr"] == "eidas1"
    rt = httpx.post(f"{platform.url}/introspect", auth=auth,
                    data={"token": refreshed["refresh_token"],
                          "token_type_hint": "refresh_token"}).json()
    assert rt["active"] is True
    old = httpx.post(f"{platform.url}/introspect", auth=auth,
                     data={"token": tokens["refresh_token"]}).json()
    assert old == {"active": False}


def test_revocation_of_access_and_refresh_tokens(flow, user, platform) -> None:
    tokens = flow.token(flow.get_code(user)["code"]).json()
    auth = (flow.client["client_id"], flow.client["client_secret"])
    assert httpx.post(f"{platform.url}/revoke", auth=auth,
                      data={"token": tokens["access_token"]}).status_code == 200
    info = httpx.get(f"{platform.url}/userinfo",
                     headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 401
    assert httpx.post(f"{platform.url}/revoke", auth=auth, data={
        "token": tokens["refresh_token"], "token_type_hint": "refresh_token"}).status_code == 200
    again = httpx.post(f"{platform.url}/token", auth=auth, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert again.json()["error"] == "invalid_grant"
    unknown = httpx.post(f"{platform.url}/revoke", auth=auth, data={"token": "inconnu"})
    assert unknown.status_code == 200


def test_client_credentials_token(platform) -> None:
    client = platform.create_client(name="Serveur", grant_types=["client_credentials"],
                                    redirect_uris=[], scopes=["archives:read"])
    response = httpx.post(f"{platform.url}/token", auth=(client["client_id"],
                          client["client_secret"]), data={"grant_type": "client_credentials",
                                                          "scope": "archives:read"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    token = response.json()["access_token"]
    claims = _verify(platform, token, audience=f"{platform.url}/api/archives")
    assert claims["sub"] == client["client_id"]
    assert claims["scope"] == "archives:read"
    assert "refresh_token" not in response.json()


def test_grant_type_not_registered_is_refused(platform, client_app) -> None:
    response = httpx.post(f"{platform.url}/token", data={"grant_type": "client_credentials"},
                          auth=(client_app["client_id"], client_app["client_secret"]))
    assert response.json()["error"] == "unauthorized_client"


def test_logout_with_hint_ends_session_and_notifies_clients(platform, browser, user) -> None:
    with backchannel_receiver() as (receiver, rp):
        client = platform.create_client(
            name="RP", first_party=True, backchannel_logout_uri=f"{rp.url}/bcl",
            post_logout_redirect_uris=["http://127.0.0.1:9999/bye"],
        )
        rp_flow = CodeFlow(platform=platform, client=client, browser=browser)
        tokens = rp_flow.token(rp_flow.get_code(user)["code"]).json()
        sid = _verify(platform, tokens["id_token"], audience=client["client_id"])["sid"]
        response = browser.get(
            f"{platform.url}/logout?id_token_hint={tokens['id_token']}"
            "&post_logout_redirect_uri=http://127.0.0.1:9999/bye&state=xyz", follow=False)
        assert response.status_code == 302
        assert response.headers["location"] == "http://127.0.0.1:9999/bye?state=xyz"
        assert receiver.event.wait(10), "no back-channel logout received"
        header = jose_jwt.get_unverified_header(receiver.tokens[0])
        assert header["typ"] == "logout+jwt"
        claims = _verify(platform, receiver.tokens[0], audience=client["client_id"])
        assert claims["sid"] == sid
        assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]
        assert "nonce" not in claims
        again = rp_flow.start(prompt="none")
        assert query_of(again.headers["location"])["error"] == "login_required"
        refresh = httpx.post(f"{platform.url}/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=(client["client_id"], client["client_secret"]))
        assert refresh.status_code == 400, "online refresh tokens end with the session"


def test_offline_access_survives_logout(platform, browser, user) -> None:
    client = platform.create_client(name="Hors ligne", first_party=True)
    off = CodeFlow(platform=platform, client=client, browser=browser)
    tokens = off.token(off.get_code(user, scope="openid offline_access")["code"]).json()
    browser.get(f"{platform.url}/logout?id_token_hint={tokens['id_token']}")
    refresh = httpx.post(f"{platform.url}/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(client["client_id"], client["client_secret"]))
    assert refresh.status_code == 200


def test_logout_without_hint_asks_for_confirmation(flow, user) -> None:
    flow.get_code(user)
    page = flow.browser.get(f"{flow.platform.url}/logout")
    assert page.status_code == 200
    assert "Se déconnecter" in page.text
    assert query_of(flow.start(prompt="none").headers["location"]).get("code")
    forged = flow.browser.post(f"{flow.platform.url}/logout", {"confirm": "yes",
                                                              "csrf_token": "forged"})
    assert "Se déconnecter" in forged.text
    assert query_of(flow.start(prompt="none").headers["location"]).get("code")
    fields = flow.browser.form_fields(page.text, "/logout")
    done = flow.browser.post(f"{flow.platform.url}/logout", {**fields, "confirm": "yes"})
    assert "déconnecté" in done.text
    assert query_of(flow.start(prompt="none").headers["location"])["error"] == "login_required"


def test_unregistered_post_logout_redirect_is_not_followed(flow, user) -> None:
    tokens = flow.token(flow.get_code(user)["code"]).json()
    response = flow.browser.get(
        f"{flow.platform.url}/logout?id_token_hint={tokens['id_token']}"
        "&post_logout_redirect_uri=https://attacker.example/", follow=False)
    assert response.status_code == 200
    assert "location" not in response.headers


def test_failed_backchannel_delivery_is_retried_and_audited(platform, browser, user) -> None:
    from sqlmodel import Session, col, select

    from plateforme.audit import AuditEvent

    with backchannel_receiver(status=500) as (receiver, rp):
        client = platform.create_client(name="RP en panne", first_party=True,
                                        backchannel_logout_uri=f"{rp.url}/bcl")
        rp_flow = CodeFlow(platform=platform, client=client, browser=browser)
        tokens = rp_flow.token(rp_flow.get_code(user)["code"]).json()
        started = time.time()
        browser.get(f"{platform.url}/logout?id_token_hint={tokens['id_token']}")
        assert time.time() - started < 2, "logout must not wait for the client"
        deadline = time.time() + 15
        found = None
        while time.time() < deadline and found is None:
            with Session(platform.provider.engine) as session:
                found = session.exec(select(AuditEvent).where(
                    AuditEvent.action == "logout.backchannel_failed",
                    AuditEvent.target == client["client_id"]).order_by(
                    col(AuditEvent.seq).desc())).first()
            time.sleep(0.2)
        assert found is not None
        assert len(receiver.tokens) == platform.settings.backchannel_logout_retries
        assert json.loads(found.details)["attempts"] == platform.settings.backchannel_logout_retries


def test_key_rotation_publishes_before_signing_and_keeps_old_keys(flow, user, platform) -> None:
    keys = platform.provider.keys
    before = {k["kid"] for k in _jwks(platform)["keys"]}
    old_tokens = flow.token(flow.get_code(user)["code"]).json()
    old_kid = jose_jwt.get_unverified_header(old_tokens["id_token"])["kid"]
    next_es = next(k.kid for k in keys.list_keys() if k.alg == "ES256" and k.status == "next")
    assert next_es in before, "the next key is published before it signs"
    keys.rotate()
    after = {k["kid"] for k in _jwks(platform)["keys"]}
    assert old_kid in after, "the old key stays published while its tokens live"
    new_tokens = flow.token(flow.get_code(user)["code"]).json()
    assert jose_jwt.get_unverified_header(new_tokens["id_token"])["kid"] == next_es
    _verify(platform, old_tokens["id_token"], audience=flow.client["client_id"])
    info = httpx.post(f"{platform.url}/introspect", data={"token": old_tokens["access_token"]},
                      auth=(flow.client["client_id"], flow.client["client_secret"])).json()
    assert info["active"] is True


def test_cors_for_browser_clients_on_token_and_userinfo_only(platform) -> None:
    origin = {"Origin": "https://spa.example.mq"}
    preflight = httpx.options(f"{platform.url}/token", headers={
        **origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    token = httpx.post(f"{platform.url}/token", headers=origin, data={"grant_type": "x"})
    assert token.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in token.headers
    page = httpx.get(f"{platform.url}/connexion", headers=origin)
    assert "access-control-allow-origin" not in page.headers
    intro = httpx.post(f"{platform.url}/introspect", headers=origin, data={"token": "x"})
    assert "access-control-allow-origin" not in intro.headers


def test_online_refresh_token_ends_with_the_session(platform, browser, user) -> None:
    """A session that expires (idle or absolute timeout) takes its online refresh tokens
    with it; offline_access ones survive."""
    client = platform.create_client(name="Session", first_party=True)
    rp = CodeFlow(platform=platform, client=client, browser=browser)
    online = rp.token(rp.get_code(user)["code"]).json()
    offline = rp.token(rp.get_code(user, scope="openid offline_access")["code"]).json()
    sid = browser.http.cookies.get("mc_session")
    platform.provider.store.delete(f"idp:session:{sid}")  # what expiry does
    auth = (client["client_id"], client["client_secret"])
    dead = httpx.post(f"{platform.url}/token", auth=auth, data={
        "grant_type": "refresh_token", "refresh_token": online["refresh_token"]})
    assert dead.json()["error"] == "invalid_grant"
    alive = httpx.post(f"{platform.url}/token", auth=auth, data={
        "grant_type": "refresh_token", "refresh_token": offline["refresh_token"]})
    assert alive.status_code == 200
