"""Assurance levels: ``acr``/``amr`` in ID and access tokens, step-up on an existing session
(``acr_values`` or the client's minimum), and a client requiring a level the account cannot
reach."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import CodeFlow
from tests.support.browser import query_of
from tests.support.cli import run_cli, settings_env
from tests.support.factors import (
    MovableClock,
    claims_of,
    code_of,
    enrol_totp,
    form_of,
    sign_in,
    submit_factor,
)


@pytest.fixture
def clock(platform) -> Iterator[MovableClock]:
    totp = platform.provider.factors.totp
    previous, totp.clock = totp.clock, MovableClock()
    yield totp.clock
    totp.clock = previous


def _eidas1_session_with_totp(flow: CodeFlow, user, clock: MovableClock) -> str:
    """Signed in with the password alone, then an authenticator app added: the session is
    still ``eidas1`` and the account can step up."""
    sign_in(flow.browser, flow.platform.url, user)
    secret, _ = enrol_totp(flow.browser, flow.platform.url, clock)
    return secret


def test_password_alone_is_eidas1_in_both_tokens(flow, user) -> None:
    tokens = flow.token(flow.get_code(user)["code"]).json()
    id_claims, at_claims = claims_of(flow, tokens)
    for claims in (id_claims, at_claims):
        assert claims["acr"] == "eidas1"
        assert claims["amr"] == ["pwd"]
    info = httpx.post(f"{flow.platform.url}/introspect", data={"token": tokens["access_token"]},
                      auth=(flow.client["client_id"], flow.client["client_secret"])).json()
    assert info["acr"] == "eidas1" and info["amr"] == ["pwd"]


def test_step_up_asks_only_for_the_missing_factor(flow, user, clock) -> None:
    secret = _eidas1_session_with_totp(flow, user, clock)
    sid = flow.browser.http.cookies.get("mc_session")
    before = flow.platform.provider.sessions.get(sid)
    assert before.acr == "eidas1" and before.amr == ["pwd"]
    time.sleep(1.1)
    page = flow.start(acr_values="eidas2")
    assert "/connexion/facteur?interaction=" in str(page.url), "not the password form again"
    assert 'name="password"' not in page.text
    assert "connexion renforcée" in page.text
    clock.next_step()
    done = submit_factor(flow.browser, page, "totp", code=clock.code(secret),
                         stop_at=flow.redirect_uri)
    tokens = flow.token(code_of(flow, done)).json()
    id_claims, at_claims = claims_of(flow, tokens)
    for claims in (id_claims, at_claims):
        assert claims["acr"] == "eidas2"
        assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert id_claims["sid"] == sid, "the same session, upgraded in place"
    assert id_claims["auth_time"] > before.auth_time
    after = flow.platform.provider.sessions.get(sid)
    assert after.acr == "eidas2" and after.clients == before.clients + [flow.client["client_id"]]
    # The session now satisfies eidas2 silently; eidas1 requests get the real level.
    silent = flow.browser.get(flow.authorize_url(acr_values="eidas2", prompt="none"),
                              follow=False)
    assert "code" in query_of(silent.headers["location"])
    tokens = flow.token(query_of(silent.headers["location"])["code"]).json()
    assert claims_of(flow, tokens)[0]["acr"] == "eidas2"
    low = flow.browser.get(flow.authorize_url(acr_values="eidas1"), follow=False)
    tokens = flow.token(query_of(low.headers["location"])["code"]).json()
    assert claims_of(flow, tokens)[0]["acr"] == "eidas2"
    # The refreshed access token keeps what was achieved.
    refreshed = httpx.post(f"{flow.platform.url}/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(flow.client["client_id"], flow.client["client_secret"])).json()
    assert claims_of(flow, {**refreshed, "id_token": tokens["id_token"]})[1]["acr"] == "eidas2"


def test_step_up_failure_keeps_the_session_at_its_level(flow, user, clock) -> None:
    _eidas1_session_with_totp(flow, user, clock)
    page = flow.start(acr_values="eidas2")
    wrong = submit_factor(flow.browser, page, "totp", code="000000")
    assert wrong.status_code == 401
    interaction = query_of(str(page.url))["interaction"]
    skipped = flow.browser.get(
        f"{flow.platform.url}/authorize/continue?interaction={interaction}",
        stop_at=flow.redirect_uri)
    assert "/connexion/facteur?interaction=" in str(skipped.url)
    sso = flow.platform.provider.sessions.get(flow.browser.http.cookies.get("mc_session"))
    assert sso.acr == "eidas1"


def test_prompt_none_step_up_errors(flow, user, clock) -> None:
    flow.get_code(user)
    none = flow.browser.get(flow.authorize_url(acr_values="eidas2", prompt="none"), follow=False)
    params = query_of(none.headers["location"])
    assert params["error"] == "unmet_authentication_requirements"
    assert params["state"] == flow.state and params["iss"] == flow.platform.url
    _eidas1_session_with_totp(flow, user, clock)
    none = flow.browser.get(flow.authorize_url(acr_values="eidas2", prompt="none"), follow=False)
    assert query_of(none.headers["location"])["error"] == "login_required"


def test_unknown_acr_values_are_ignored(flow, user) -> None:
    tokens = flow.token(flow.get_code(user, acr_values="urn:autre:niveau")["code"]).json()
    assert claims_of(flow, tokens)[0]["acr"] == "eidas1"


def test_client_minimum_level_and_the_page_for_accounts_without_a_second_factor(
        platform, browser, user, clock) -> None:
    client = platform.create_client(name="Paiement cantine", default_acr="eidas2")
    assert client["default_acr"] == "eidas2"
    flow = CodeFlow(platform=platform, client=client, browser=browser)
    page = flow.start()
    page = browser.login(page, user["email"], user["password"], stop_at=flow.redirect_uri)
    # Signed in with the password, but the service wants two factors the account lacks.
    assert page.status_code == 403
    assert "Connexion renforcée demandée" in page.text
    assert "Paiement cantine" in page.text and "application d'authentification" in page.text
    assert 'href="/compte/securite?suite=' in page.text
    state = flow.state
    # An acr_values=eidas1 request cannot lower the client's minimum.
    lower = browser.get(flow.authorize_url(acr_values="eidas1"), stop_at=flow.redirect_uri)
    assert lower.status_code == 403
    # Giving up returns the error to the service.
    fields = form_of(page.text, "/connexion/renforcement/abandon")
    back = browser.post(f"{platform.url}/connexion/renforcement/abandon", fields,
                        stop_at=flow.redirect_uri)
    params = query_of(back.headers["location"])
    assert params["error"] == "unmet_authentication_requirements"
    assert params["state"] == state
    # Following the page's advice: add a factor, then continue to the service.
    page = flow.start()
    suite = page.text.split('href="/compte/securite?suite=')[1].split('"')[0]
    security = browser.get(f"{platform.url}/compte/securite?suite={suite}")
    assert "Paiement cantine" in security.text
    secret, codes_page = enrol_totp(browser, platform.url, clock)
    security = browser.get(f"{platform.url}/compte/securite?suite={suite}")
    assert f'href="/authorize/continue?interaction={suite}"' in security.text
    factor = browser.get(f"{platform.url}/authorize/continue?interaction={suite}")
    assert "/connexion/facteur" in str(factor.url)
    clock.next_step()
    done = submit_factor(browser, factor, "totp", code=clock.code(secret),
                         stop_at=flow.redirect_uri)
    tokens = flow.token(code_of(flow, done)).json()
    assert claims_of(flow, tokens)[0]["acr"] == "eidas2"
    assert codes_page.status_code == 200


def test_cli_registers_a_client_minimum_level(platform) -> None:
    env = settings_env(platform.settings, MC_ISSUER=platform.url)
    common = ("clients", "create", "--redirect-uri", "http://127.0.0.1:9999/cb")
    done = run_cli(env, *common, "--name", "Amendes", "--default-acr", "eidas2", "--json")
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert created["default_acr"] == "eidas2"
    assert platform.provider.clients.get(created["client_id"]).default_acr == "eidas2"
    refused = run_cli(env, *common, "--name", "X", "--default-acr", "eidas9")
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("amrs", "amr", "acr"), [
    ((["pwd"],), ["pwd"], "eidas1"),
    ((["pwd"], ["otp"]), ["pwd", "otp", "mfa"], "eidas2"),
    ((["pwd"], ["hwk"]), ["pwd", "hwk", "mfa"], "eidas2"),
    ((["hwk"],), ["hwk"], "eidas1"),
    ((["swk", "mfa"],), ["swk", "mfa"], "eidas2"),
    ((["hwk"], ["hwk"]), ["hwk"], "eidas1"),
    ((["pwd", "otp", "mfa"], ["otp"]), ["pwd", "otp", "mfa"], "eidas2"),
])
def test_levels_from_methods(amrs, amr, acr) -> None:
    from idp.services.factors import acr_for, combine

    assert combine(*amrs) == amr
    assert acr_for(combine(*amrs)) == acr


@pytest.mark.parametrize(("acr_values", "default_acr", "required"), [
    (None, None, None), ("eidas2", None, "eidas2"), ("eidas2 eidas1", None, "eidas1"),
    ("eidas1", "eidas2", "eidas2"), ("inconnu", None, None), (None, "eidas2", "eidas2"),
])
def test_required_level(acr_values, default_acr, required) -> None:
    from idp.services.factors import required_acr

    assert required_acr(acr_values, default_acr) == required
