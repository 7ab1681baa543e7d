"""Every security property of the provider, shown by the attack failing (RFC 9700, RFC 6819)."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from tests.support.browser import query_of


def _introspect(platform, client, token: str) -> dict:
    response = httpx.post(f"{platform.url}/introspect", data={"token": token},
                          auth=(client["client_id"], client["client_secret"]))
    assert response.status_code == 200, response.text
    return response.json()


def _refresh(platform, client, refresh_token: str) -> httpx.Response:
    return httpx.post(f"{platform.url}/token",
                      data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                      auth=(client["client_id"], client["client_secret"]))


def test_replayed_code_is_refused_and_revokes_what_it_issued(flow, user, platform) -> None:
    code = flow.get_code(user)["code"]
    first = flow.token(code)
    assert first.status_code == 200
    tokens = first.json()
    assert _introspect(platform, flow.client, tokens["access_token"])["active"] is True

    replay = flow.token(code)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert _introspect(platform, flow.client, tokens["access_token"]) == {"active": False}
    assert _refresh(platform, flow.client, tokens["refresh_token"]).json()["error"] == (
        "invalid_grant"
    )


def test_reused_refresh_token_revokes_the_whole_family(flow, user, platform) -> None:
    tokens = flow.token(flow.get_code(user)["code"]).json()
    rotated = _refresh(platform, flow.client, tokens["refresh_token"])
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]

    reuse = _refresh(platform, flow.client, tokens["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    # the attacker's reuse kills the legitimate holder's tokens too
    assert _refresh(platform, flow.client, new["refresh_token"]).status_code == 400
    assert _introspect(platform, flow.client, new["access_token"]) == {"active": False}


def test_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(flow) -> None:
    response = flow.browser.get(
        flow.authorize_url(redirect_uri="https://attacker.example/cb"), follow=False
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "attacker.example" not in response.text.split("<code>")[0]
    assert 'lang="fr"' in response.text


def test_redirect_uri_must_match_exactly(flow) -> None:
    for variant in ("http://127.0.0.1:9999/callback/", "http://127.0.0.1:9999/callback?x=1",
                    "http://127.0.0.1:9999/CALLBACK", "http://127.0.0.1:9999/callback#f"):
        response = flow.browser.get(flow.authorize_url(redirect_uri=variant), follow=False)
        assert response.status_code == 400, variant
        assert "location" not in response.headers


def test_unknown_client_gets_an_error_page(flow) -> None:
    response = flow.browser.get(flow.authorize_url(client_id="inconnu"), follow=False)
    assert response.status_code == 400
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "missing PKCE"),
        ({"code_challenge_method": "plain"}, "plain PKCE"),
        ({"code_challenge_method": None}, "method absent means plain"),
    ],
)
def test_pkce_s256_is_required(flow, params, why) -> None:
    response = flow.browser.get(flow.authorize_url(**params), follow=False)
    assert response.status_code == 302, why
    query = query_of(response.headers["location"])
    assert query["error"] == "invalid_request", why
    assert query["state"] == flow.state
    assert query["iss"] == flow.platform.url


def test_wrong_code_verifier_is_refused(flow, user) -> None:
    code = flow.get_code(user)["code"]
    response = flow.token(code, code_verifier="x" * 50)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_missing_code_verifier_is_refused(flow, user) -> None:
    code = flow.get_code(user)["code"]
    flow.verifier = ""
    response = flow.token(code, code_verifier="")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_wrong_client_secret_is_401_invalid_client(flow, user, platform) -> None:
    code = flow.get_code(user)["code"]
    response = httpx.post(
        f"{platform.url}/token",
        data={"grant_type": "authorization_code", "code": code,
              "redirect_uri": flow.redirect_uri, "code_verifier": flow.verifier},
        auth=(flow.client["client_id"], "not-the-secret"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_auth_method_other_than_registered_is_refused(platform, flow, user) -> None:
    code = flow.get_code(user)["code"]
    response = httpx.post(f"{platform.url}/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": flow.redirect_uri,
        "code_verifier": flow.verifier, "client_id": flow.client["client_id"],
        "client_secret": flow.client["client_secret"],
    })
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_code_of_another_client_is_refused(platform, flow, user) -> None:
    code = flow.get_code(user)["code"]
    other = platform.create_client(name="Autre")
    response = httpx.post(f"{platform.url}/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": flow.redirect_uri,
        "code_verifier": flow.verifier}, auth=(other["client_id"], other["client_secret"]))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_redirect_uri_must_be_repeated_at_the_token_endpoint(flow, user) -> None:
    code = flow.get_code(user)["code"]
    response = flow.token(code, redirect_uri="http://127.0.0.1:9999/other")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_expired_code_is_refused(flow, user, platform) -> None:
    tokens = platform.provider.tokens
    original = tokens._code_lifetime
    tokens._code_lifetime = 1
    try:
        code = flow.get_code(user)["code"]
    finally:
        tokens._code_lifetime = original
    time.sleep(2.2)
    response = flow.token(code)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_tampered_and_unsigned_tokens_are_rejected(flow, user, platform) -> None:
    access = flow.token(flow.get_code(user)["code"]).json()["access_token"]
    header, payload, signature = access.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "openid profile email phone address"
    tampered = f"{header}.{_b64(claims)}.{signature}"
    unsigned = f"{_b64({'alg': 'none', 'typ': 'at+jwt'})}.{_b64(claims)}."
    hs256 = f"{_b64({'alg': 'HS256', 'typ': 'at+jwt'})}.{_b64(claims)}.{signature}"
    for forged in (tampered, unsigned, hs256):
        info = httpx.get(f"{platform.url}/userinfo", headers={"Authorization": f"Bearer {forged}"})
        assert info.status_code == 401
        assert 'error="invalid_token"' in info.headers["www-authenticate"]
        assert _introspect(platform, flow.client, forged) == {"active": False}


def test_id_token_is_not_accepted_as_an_access_token(flow, user, platform) -> None:
    id_token = flow.token(flow.get_code(user)["code"]).json()["id_token"]
    info = httpx.get(f"{platform.url}/userinfo", headers={"Authorization": f"Bearer {id_token}"})
    assert info.status_code == 401


def test_token_of_another_client_is_inactive_at_introspection(flow, user, platform) -> None:
    access = flow.token(flow.get_code(user)["code"]).json()["access_token"]
    other = platform.create_client(name="Curieux")
    assert _introspect(platform, other, access) == {"active": False}
    assert _introspect(platform, flow.client, access)["active"] is True


def test_introspection_requires_client_authentication(flow, user, platform) -> None:
    access = flow.token(flow.get_code(user)["code"]).json()["access_token"]
    response = httpx.post(f"{platform.url}/introspect", data={"token": access})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_login_form_without_csrf_token_is_refused(flow, user) -> None:
    page = flow.start()
    fields = flow.browser.form_fields(page.text, "/connexion")
    fields.update(email=user["email"], password=user["password"], csrf_token="")
    response = flow.browser.post(f"{flow.platform.url}/connexion", fields, follow=False)
    assert response.status_code == 403
    assert "mc_session" not in response.cookies


def test_login_form_with_another_browsers_token_is_refused(flow, user, browser) -> None:
    page = flow.start()
    fields = flow.browser.form_fields(page.text, "/connexion")
    fields.update(email=user["email"], password=user["password"])
    import httpx as _httpx

    stranger = _httpx.post(f"{flow.platform.url}/connexion", data=fields)
    assert stranger.status_code == 403


def test_consent_form_without_csrf_is_refused(platform, browser, user) -> None:
    from tests.conftest import CodeFlow

    client = platform.create_client(name="Tiers")
    tier = CodeFlow(platform=platform, client=client, browser=browser)
    page = tier.start()
    page = browser.login(page, user["email"], user["password"], stop_at=tier.redirect_uri)
    assert "/connexion/consentement" in str(page.url)
    fields = browser.form_fields(page.text, "/connexion/consentement")
    fields.update(decision="accept", csrf_token="forged")
    response = browser.post(f"{platform.url}/connexion/consentement", fields, follow=False)
    assert response.status_code == 403


def test_login_is_throttled_per_account(platform, flow) -> None:
    victim = platform.create_user()
    page = flow.start()
    statuses = []
    for attempt in range(platform.settings.login_free_attempts + 2):
        fields = flow.browser.form_fields(page.text, "/connexion")
        fields.update(email=victim["email"], password=f"wrong-{attempt}")
        page = flow.browser.post(f"{platform.url}/connexion", fields, follow=False)
        statuses.append(page.status_code)
    assert statuses[:platform.settings.login_free_attempts] == [401] * (
        platform.settings.login_free_attempts
    )
    assert statuses[-1] == 429
    # even the right password is not examined while the delay runs
    fields = flow.browser.form_fields(page.text, "/connexion")
    fields.update(email=victim["email"], password=victim["password"])
    blocked = flow.browser.post(f"{platform.url}/connexion", fields, follow=False)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1


def test_unknown_and_known_accounts_get_the_same_answer(platform, flow) -> None:
    """Same status and body; comparable time (both verify an argon2id hash). Medians of
    alternating samples, so that a busy machine does not decide the outcome."""
    import statistics

    page = flow.start()
    bodies: dict[str, set[str]] = {"known": set(), "unknown": set()}
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for _ in range(4):
        for kind in ("known", "unknown"):
            email = (platform.create_user()["email"] if kind == "known"
                     else f"inconnu-{time.time_ns()}@example.mq")
            fields = flow.browser.form_fields(page.text, "/connexion")
            fields.update(email=email, password="Wrong-password-123")
            started = time.perf_counter()
            response = flow.browser.post(f"{platform.url}/connexion", fields, follow=False)
            times[kind].append(time.perf_counter() - started)
            assert response.status_code == 401
            bodies[kind].add(response.text.replace(email, "EMAIL").split('name="csrf_token"')[0])
    assert bodies["known"] == bodies["unknown"]
    ratio = statistics.median(times["known"]) / statistics.median(times["unknown"])
    assert 0.25 < ratio < 4.0, times


def test_locked_account_cannot_sign_in(platform, flow) -> None:
    from sqlmodel import Session

    from idp.models import User

    locked = platform.create_user()
    with Session(platform.provider.engine) as session:
        record = session.get(User, locked["id"])
        record.locked = True
        session.add(record)
        session.commit()
    page = flow.start()
    response = flow.browser.login(page, locked["email"], locked["password"])
    assert response.status_code == 401


def test_prompt_none_without_session_returns_login_required(flow) -> None:
    response = flow.browser.get(flow.authorize_url(prompt="none"), follow=False)
    assert response.status_code == 302
    query = query_of(response.headers["location"])
    assert query["error"] == "login_required"
    assert query["state"] == flow.state


def test_request_objects_are_refused(flow) -> None:
    response = flow.browser.get(flow.authorize_url(request="eyJ.eyJ.sig"), follow=False)
    assert query_of(response.headers["location"])["error"] == "request_not_supported"


def test_implicit_and_hybrid_flows_are_refused(flow) -> None:
    for response_type in ("token", "id_token", "code id_token", "code token"):
        response = flow.browser.get(flow.authorize_url(response_type=response_type), follow=False)
        assert response.status_code == 302, response_type
        assert query_of(response.headers["location"])["error"] == "unsupported_response_type"


def test_nonce_cannot_be_replayed(flow, user) -> None:
    first = flow.get_code(user, nonce="nonce-unique-123456")
    assert "code" in first
    response = flow.browser.get(flow.authorize_url(nonce="nonce-unique-123456"), follow=False)
    assert query_of(response.headers["location"])["error"] == "invalid_request"


def test_disabled_client_cannot_get_tokens(platform) -> None:
    from sqlmodel import Session, select

    from idp.models import Client

    client = platform.create_client(name="Service fermé", grant_types=["client_credentials"],
                                    redirect_uris=[])
    assert httpx.post(f"{platform.url}/token", data={"grant_type": "client_credentials"},
                      auth=(client["client_id"], client["client_secret"])).status_code == 200
    with Session(platform.provider.engine) as session:
        record = session.exec(select(Client).where(Client.client_id == client["client_id"])).one()
        record.disabled = True
        session.add(record)
        session.commit()
    platform.provider.clients.forget(client["client_id"])
    response = httpx.post(f"{platform.url}/token", data={"grant_type": "client_credentials"},
                          auth=(client["client_id"], client["client_secret"]))
    assert response.status_code == 401


def test_security_headers_on_pages(flow) -> None:
    page = flow.start()
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    cookie = next(h for r in flow.browser.history for h in r.headers.get_list("set-cookie")
                  if h.startswith("mc_csrf="))
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()


def test_token_parameters_in_the_query_string_are_ignored(platform) -> None:
    """RFC 6749 §3.2: parameters go in the POST body, never in the URL (logs)."""
    client = platform.create_client(name="Requête", grant_types=["client_credentials"],
                                    redirect_uris=[])
    auth = (client["client_id"], client["client_secret"])
    in_url = httpx.post(f"{platform.url}/token?grant_type=client_credentials", auth=auth)
    assert in_url.status_code == 400
    in_body = httpx.post(f"{platform.url}/token", auth=auth,
                         data={"grant_type": "client_credentials"})
    assert in_body.status_code == 200
