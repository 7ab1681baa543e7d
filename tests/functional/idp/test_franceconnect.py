"""Sign in with FranceConnect (identity brokering) against a real upstream OpenID provider on
loopback: a second instance of our provider configured like FranceConnect v2 (code flow,
``client_secret_post``, UserInfo as a signed JWT, RP-initiated logout)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
import pytest
from jose import jwt as jose_jwt
from sqlmodel import Session, select

from idp.models import FederatedIdentity, User
from plateforme.audit import AuditEvent
from tests.conftest import Backend, CodeFlow, Platform
from tests.support.browser import Browser, query_of
from tests.support.franceconnect import Upstream, broker_platform, upstream_provider

RP_REDIRECT = "http://127.0.0.1:9999/callback"
RP_LOGGED_OUT = "http://127.0.0.1:9999/logged-out"


@dataclass
class Brokering:
    upstream: Upstream
    broker: Platform
    rp: dict[str, Any]


@pytest.fixture(scope="module")
def brokering(backend: Backend) -> Iterator[Brokering]:
    with upstream_provider() as upstream, broker_platform(backend, upstream) as broker:
        rp = broker.create_client(
            name="Cantine", first_party=True, redirect_uris=[RP_REDIRECT],
            post_logout_redirect_uris=[RP_LOGGED_OUT],
        )
        yield Brokering(upstream=upstream, broker=broker, rp=rp)


def _base(response: httpx.Response) -> str:
    parts = urlsplit(str(response.url))
    return f"{parts.scheme}://{parts.netloc}"


def _click_franceconnect(browser: Browser, page: httpx.Response, *,
                         follow: bool = True) -> httpx.Response:
    """Press « S'identifier avec FranceConnect » on the sign-in page."""
    assert "S&#39;identifier avec" in page.text or "S'identifier avec" in page.text
    fields = browser.form_fields(page.text, "/connexion/franceconnect")
    return browser.post(_base(page) + "/connexion/franceconnect", fields, follow=follow)


def _upstream_sign_in(browser: Browser, fx: Brokering, page: httpx.Response,
                      citizen: dict[str, Any], *, decision: str = "accept",
                      stop_at: str | None = None) -> httpx.Response:
    """At the upstream: sign in, then its consent page (FranceConnect asks every time)."""
    assert str(page.url).startswith(fx.upstream.issuer + "/connexion"), page.url
    page = browser.login(page, citizen["email"], citizen["password"])
    assert "/connexion/consentement" in str(page.url), page.text[:300]
    return browser.consent(page, decision, stop_at=stop_at)


def _journey(fx: Brokering, browser: Browser, citizen: dict[str, Any]
             ) -> tuple[CodeFlow, httpx.Response]:
    """From the RP, through FranceConnect, until the broker's answer to the RP (or the page
    where the broker stopped)."""
    flow = CodeFlow(platform=fx.broker, client=fx.rp, browser=browser)
    page = flow.start()
    assert "/connexion?" in str(page.url)
    page = _click_franceconnect(browser, page)
    response = _upstream_sign_in(browser, fx, page, citizen, stop_at=RP_REDIRECT)
    return flow, response


def _id_token(fx: Brokering, flow: CodeFlow, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (302, 303), response.text[:500]
    location = response.headers["location"]
    assert location.startswith(RP_REDIRECT), location
    tokens = flow.token(query_of(location)["code"]).json()
    header = jose_jwt.get_unverified_header(tokens["id_token"])
    keys = httpx.get(fx.broker.url + "/jwks.json").json()["keys"]
    key = next(k for k in keys if k["kid"] == header["kid"])
    claims = jose_jwt.decode(tokens["id_token"], key, algorithms=[header["alg"]],
                             audience=fx.rp["client_id"], issuer=fx.broker.url,
                             options={"verify_at_hash": False})
    claims["_tokens"] = tokens
    return claims


def _account(fx: Brokering, email: str) -> User:
    user = fx.broker.provider.users.get_by_email(email)
    assert user is not None
    return user


def _links(fx: Brokering, user_id: uuid.UUID) -> list[FederatedIdentity]:
    with Session(fx.broker.provider.engine) as session:
        return list(session.exec(select(FederatedIdentity).where(
            FederatedIdentity.user_id == user_id)).all())


def _events(fx: Brokering, action: str, actor: str | None = None) -> list[AuditEvent]:
    with Session(fx.broker.provider.engine) as session:
        query = select(AuditEvent).where(AuditEvent.action == action)
        if actor is not None:
            query = query.where(AuditEvent.actor == actor)
        return list(session.exec(query).all())


# --- first sign-in, return visit ---------------------------------------------------------


def test_first_sign_in_creates_an_account_with_verified_civil_status(brokering, browser) -> None:
    fx = brokering
    citizen = fx.upstream.citizen(birthdate="1962-08-24")
    flow, response = _journey(fx, browser, citizen)
    claims = _id_token(fx, flow, response)
    assert claims["acr"] == "eidas1"
    assert claims["amr"] == ["fc"]
    assert claims["family_name"] == "Lagier"
    assert claims["given_name"] == "Angela Claire Louise"
    assert claims["gender"] == "female"
    assert claims["birthdate"] == "1962-08-24"
    assert claims["birthplace"] == "97209"
    assert claims["birthcountry"] == "99100"
    user = _account(fx, citizen["email"])
    assert user.civil_status_verified_at is not None
    assert user.password_hash is None
    links = _links(fx, user.id)
    assert [link.issuer for link in links] == [fx.upstream.issuer]
    assert _events(fx, "user.create", str(user.id))


def test_civil_status_is_read_only_after_franceconnect(brokering, browser) -> None:
    fx = brokering
    citizen = fx.upstream.citizen(family_name="Mondésir", birthdate="1962-08-24")
    _journey(fx, browser, citizen)
    page = browser.get(fx.broker.url + "/compte/profil")
    assert page.status_code == 200
    assert "Identité vérifiée par FranceConnect" in page.text
    assert 'id="family_name" name="family_name" value="Mondésir" autocomplete="family-name" ' \
           'required readonly' in page.text
    fields = browser.form_fields(page.text, "/compte/profil")
    fields.update(family_name="Autre", given_name="Quelquun", birthdate="2000-01-01",
                  locality="Fort-de-France")
    browser.post(fx.broker.url + "/compte/profil", fields)
    user = _account(fx, citizen["email"])
    assert (user.family_name, user.given_name, user.birthdate) == (
        "Mondésir", "Angela Claire Louise", "1962-08-24")
    assert "Fort-de-France" in (user.address or "")


def test_return_visit_signs_in_to_the_same_account(brokering) -> None:
    fx = brokering
    citizen = fx.upstream.citizen()
    subs = []
    for _ in range(2):
        b = Browser()
        try:
            flow, response = _journey(fx, b, citizen)
            subs.append(_id_token(fx, flow, response)["sub"])
        finally:
            b.close()
    assert subs[0] == subs[1]
    user = _account(fx, citizen["email"])
    assert len(_links(fx, user.id)) == 1
    assert _events(fx, "franceconnect.login", str(user.id))


def test_upstream_civil_status_is_signed_userinfo(brokering) -> None:
    """The upstream answers UserInfo as a signed JWT for the broker's client (OIDC Core
    §5.3.2), advertised in its discovery document."""
    meta = httpx.get(brokering.upstream.issuer + "/.well-known/openid-configuration").json()
    assert meta["userinfo_signing_alg_values_supported"] == ["ES256", "RS256"]


# --- linking ----------------------------------------------------------------------------


def _link_page(fx: Brokering, browser: Browser, citizen: dict[str, Any]
               ) -> tuple[CodeFlow, httpx.Response]:
    flow, response = _journey(fx, browser, citizen)
    assert response.status_code == 200, response.text[:300]
    assert "/connexion/franceconnect/retour" in str(response.url)
    assert "Me connecter à ce compte pour le relier" in response.text
    return flow, response


def test_existing_account_is_linked_only_after_signing_in_to_it(brokering, browser) -> None:
    fx = brokering
    email = f"existant-{secrets.token_hex(4)}@example.mq"
    local = fx.broker.create_user(email=email, given_name="Angela", family_name="Lagier")
    citizen = fx.upstream.citizen(email=email)
    flow, page = _link_page(fx, browser, citizen)
    assert not _links(fx, local["id"]), "never linked on the email address alone"
    page = browser.get(fx.broker.url + "/connexion?" + urlencode(
        {"retour": "/connexion/franceconnect/relier"}))
    page = browser.login(page, email, local["password"])
    assert "/connexion/franceconnect/relier" in str(page.url)
    assert "Relier mon compte à FranceConnect" in page.text
    assert "97209" in page.text
    fields = browser.form_fields(page.text, "/connexion/franceconnect/relier")
    response = browser.post(fx.broker.url + "/connexion/franceconnect/relier", fields,
                            stop_at=RP_REDIRECT)
    claims = _id_token(fx, flow, response)
    assert claims["amr"] == ["pwd", "fc"]
    user = _account(fx, email)
    assert user.id == local["id"]
    assert user.civil_status_verified_at is not None
    assert (user.given_name, user.gender) == ("Angela Claire Louise", "female")
    assert len(_links(fx, user.id)) == 1
    assert _events(fx, "franceconnect.link", str(user.id))


def test_existing_account_matching_the_civil_status_is_proposed(brokering, browser) -> None:
    """Reconciliation on the six civil-status fields (another email address)."""
    fx = brokering
    local = fx.broker.create_user(given_name="Rose", family_name="Éloi")
    with Session(fx.broker.provider.engine) as session:
        user = session.get(User, local["id"])
        assert user is not None
        user.gender, user.birthdate, user.birthplace, user.birthcountry = (
            "female", "1950-02-03", "97213", "99100")
        session.add(user)
        session.commit()
    citizen = fx.upstream.citizen(family_name="ELOI", given_name="rose", birthdate="1950-02-03",
                                  birthplace="97213")
    flow, page = _link_page(fx, browser, citizen)
    assert "porte déjà votre identité" in page.text
    assert fx.broker.provider.users.get_by_email(citizen["email"]) is None


def test_linking_refused_when_civil_status_differs(brokering, browser) -> None:
    fx = brokering
    email = f"homonyme-{secrets.token_hex(4)}@example.mq"
    local = fx.broker.create_user(email=email, given_name="Angela", family_name="Lagier")
    with Session(fx.broker.provider.engine) as session:
        user = session.get(User, local["id"])
        assert user is not None
        user.birthdate = "1970-01-01"
        session.add(user)
        session.commit()
    citizen = fx.upstream.citizen(email=email)
    _link_page(fx, browser, citizen)
    page = browser.get(fx.broker.url + "/connexion?" + urlencode(
        {"retour": "/connexion/franceconnect/relier"}))
    page = browser.login(page, email, local["password"])
    fields = browser.form_fields(page.text, "/connexion/franceconnect/relier")
    refused = browser.post(fx.broker.url + "/connexion/franceconnect/relier", fields)
    assert refused.status_code == 409
    assert "date de naissance" in refused.text
    assert not _links(fx, local["id"])
    user = _account(fx, email)
    assert user.civil_status_verified_at is None and user.birthdate == "1970-01-01"
    failures = [e for e in _events(fx, "franceconnect.link", str(local["id"]))
                if e.outcome == "failure"]
    assert failures and failures[0].reason == "civil_status_mismatch"


def test_link_requires_a_fresh_sign_in(brokering, browser) -> None:
    """Without signing in to the account after the FranceConnect return, nothing is
    linked: the link page sends to the sign-in form."""
    fx = brokering
    email = f"frais-{secrets.token_hex(4)}@example.mq"
    fx.broker.create_user(email=email)
    _link_page(fx, browser, fx.upstream.citizen(email=email))
    response = browser.get(fx.broker.url + "/connexion/franceconnect/relier", follow=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/connexion?retour=")


# --- upstream errors --------------------------------------------------------------------


def test_access_denied_at_the_upstream(brokering, browser) -> None:
    fx = brokering
    flow = CodeFlow(platform=fx.broker, client=fx.rp, browser=browser)
    page = _click_franceconnect(browser, flow.start())
    page = _upstream_sign_in(browser, fx, page, fx.upstream.citizen(), decision="deny")
    assert page.status_code == 400
    assert "/connexion/franceconnect/retour" in str(page.url)
    assert "Vous avez annulé la connexion avec FranceConnect" in page.text
    assert "access_denied" in page.text
    assert any(e.reason == "access_denied" for e in _events(fx, "franceconnect.login"))


def test_tampered_state_is_refused(brokering, browser) -> None:
    fx = brokering
    flow = CodeFlow(platform=fx.broker, client=fx.rp, browser=browser)
    page = _click_franceconnect(browser, flow.start())
    answer = _upstream_sign_in(browser, fx, page, fx.upstream.citizen(),
                               stop_at=fx.broker.url + "/connexion/franceconnect/retour")
    location = answer.headers["location"]
    params = query_of(location)
    forged = fx.broker.url + "/connexion/franceconnect/retour?" + urlencode(
        {"code": params["code"], "state": secrets.token_urlsafe(32)})
    refused = browser.get(forged)
    assert refused.status_code == 400 and "invalid_state" in refused.text
    # the genuine answer in another browser (state bound to the first one) is refused too
    other = Browser()
    try:
        assert "invalid_state" in other.get(location).text
    finally:
        other.close()


def test_state_and_nonce_are_long_and_a_foreign_nonce_is_refused(brokering, browser) -> None:
    """An authorization code obtained with another nonce (code injection) is refused."""
    fx = brokering
    flow = CodeFlow(platform=fx.broker, client=fx.rp, browser=browser)
    redirect = _click_franceconnect(browser, flow.start(), follow=False)
    upstream_url = urljoin(fx.broker.url, redirect.headers["location"])
    params = query_of(upstream_url)
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
    assert params["acr_values"] == "eidas1" and params["response_type"] == "code"
    params["nonce"] = secrets.token_urlsafe(32)
    page = browser.get(upstream_url.split("?")[0] + "?" + urlencode(params))
    refused = _upstream_sign_in(browser, fx, page, fx.upstream.citizen())
    assert refused.status_code == 400
    assert "invalid_nonce" in refused.text


def test_insufficient_acr_is_refused(brokering, browser) -> None:
    """The broker asks for eidas3; the upstream answers with eidas1: refused."""
    fx = brokering
    upstream = fx.broker.live.app.state.franceconnect
    upstream.acr_values = "eidas3"
    try:
        flow = CodeFlow(platform=fx.broker, client=fx.rp, browser=browser)
        page = _click_franceconnect(browser, flow.start())
        refused = _upstream_sign_in(browser, fx, page, fx.upstream.citizen())
    finally:
        upstream.acr_values = "eidas1"
    assert refused.status_code == 400
    assert "insufficient_acr" in refused.text
    assert "Niveau de sécurité insuffisant" in refused.text


# --- logout -----------------------------------------------------------------------------


def test_logout_also_logs_out_of_the_upstream(brokering, browser) -> None:
    fx = brokering
    citizen = fx.upstream.citizen()
    flow, response = _journey(fx, browser, citizen)
    id_token = _id_token(fx, flow, response)["_tokens"]["id_token"]
    state = secrets.token_urlsafe(16)
    logout = fx.broker.url + "/logout?" + urlencode({
        "id_token_hint": id_token, "post_logout_redirect_uri": RP_LOGGED_OUT, "state": state})
    first = browser.get(logout, follow=False)
    assert first.status_code == 303
    upstream_logout = first.headers["location"]
    assert upstream_logout.startswith(fx.upstream.issuer + "/logout?")
    sent = query_of(upstream_logout)
    assert set(sent) == {"id_token_hint", "state", "post_logout_redirect_uri"}
    return_uri = fx.broker.url + "/connexion/franceconnect/deconnexion"
    assert sent["post_logout_redirect_uri"] == return_uri
    back = browser.follow(first, stop_at=RP_LOGGED_OUT)
    assert back.headers["location"] == f"{RP_LOGGED_OUT}?state={state}"
    # both sessions are over: the broker asks to sign in again; the upstream journaled the
    # end of the citizen's session (RP-initiated logout with our id_token_hint)
    again = flow.start()
    assert "/connexion?" in str(again.url)
    with Session(fx.upstream.provider.engine) as session:
        ended = session.exec(select(AuditEvent).where(
            AuditEvent.action == "logout", AuditEvent.actor == str(citizen["id"]))).all()
    assert ended


def test_button_hidden_when_not_configured(platform, browser) -> None:
    page = browser.get(platform.url + "/connexion")
    assert "/connexion/franceconnect" not in page.text
    assert browser.post(platform.url + "/connexion/franceconnect", {}).status_code == 404
