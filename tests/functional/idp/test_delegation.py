"""Delegation: mandates, « pour qui ? » at sign-in, ``act`` in the ID and access tokens
(RFC 8693 §4.1, checked with python-jose), clients that did not opt in, scope and date limits,
revocation effects (introspection, refresh, back-channel logout), token exchange (RFC 8693),
the mediator's desk with a one-time code, and the activity logs of both people."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from jose import jwt as jose_jwt
from sqlmodel import Session, select

from idp.models import Mandate
from idp.services.mandates import MandateTerms
from plateforme.audit import AuditEvent
from plateforme.clock import utcnow
from tests.conftest import CodeFlow, Platform
from tests.support.browser import Browser, query_of
from tests.support.receiver import backchannel_receiver

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
CHOICE = "/connexion/pour-qui"


def _verify(platform: Platform, token: str, audience: str) -> dict[str, Any]:
    header = jose_jwt.get_unverified_header(token)
    keys = httpx.get(f"{platform.url}/jwks.json").json()["keys"]
    key = next(k for k in keys if k["kid"] == header["kid"])
    return jose_jwt.decode(token, key, algorithms=[header["alg"]], audience=audience,
                           issuer=platform.url, options={"verify_at_hash": False})


def _terms(**kwargs: Any) -> MandateTerms:
    values: dict[str, Any] = {"clients": (), "scopes": ("openid", "profile"),
                              "ends_at": utcnow() + timedelta(days=30)}
    values.update(kwargs)
    return MandateTerms(**values)


def _client(platform: Platform, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("first_party", True)
    kwargs.setdefault("delegation_allowed", True)
    kwargs.setdefault("scopes", ["openid", "profile", "email", "offline_access"])
    return platform.create_client(**kwargs)


def _sign_in_for(flow: CodeFlow, user: dict[str, Any], choice: str | None, **params: str
                 ) -> httpx.Response:
    """Sign in as ``user``; on the « pour qui ? » page pick ``choice`` (a mandate id, or
    "self"). Returns the redirect to the client."""
    page = flow.start(**params)
    if "/connexion?" in str(page.url):
        page = flow.browser.login(page, user["email"], user["password"],
                                  stop_at=flow.redirect_uri)
    if choice is None:
        assert CHOICE not in str(page.url), "a delegation choice was offered"
        return page
    assert CHOICE in str(page.url), page.text[:300]
    fields = flow.browser.form_fields(page.text, CHOICE)
    fields["pour"] = choice
    return flow.browser.post(flow.platform.url + CHOICE, fields, stop_at=flow.redirect_uri)


def _tokens(flow: CodeFlow, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (302, 303), response.text[:300]
    query = query_of(response.headers["location"])
    assert "code" in query, query
    answer = flow.token(query["code"])
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.fixture
def family(platform: Platform) -> dict[str, Any]:
    """A parent with a ``relationship`` mandate for a minor child who has no sign-in."""
    parent = platform.create_user(given_name="Marie", family_name="Dupont")
    child = platform.provider.mandates.create_minor(
        given_name="Léo", family_name="Dupont", birthdate="2016-04-02", actor="operateur")
    client = _client(platform)
    mandate = platform.provider.mandates.record_relationship(
        child.id, parent["id"], "parent", _terms(clients=(client["client_id"],)),
        actor="operateur", reason="livret de famille vérifié")
    return {"parent": parent, "child": child, "client": client, "mandate": mandate}


def test_delegated_id_and_access_tokens_carry_act(platform, browser, family) -> None:
    client = family["client"]
    flow = CodeFlow(platform=platform, client=client, browser=browser)
    response = _sign_in_for(flow, family["parent"], str(family["mandate"].id),
                            scope="openid profile email")
    tokens = _tokens(flow, response)
    provider = platform.provider
    client_record = provider.clients.get(client["client_id"])
    child_sub = provider.subject_for(family["child"].id, client_record)
    parent_sub = provider.subject_for(family["parent"]["id"], client_record)
    id_token = _verify(platform, tokens["id_token"], client["client_id"])
    assert id_token["sub"] == child_sub
    assert id_token["act"] == {"sub": parent_sub}
    assert id_token["acr"] == "eidas1" and id_token["amr"] == ["pwd"]  # the parent's
    assert id_token["given_name"] == "Léo"
    access = _verify(platform, tokens["access_token"], platform.url)
    assert access["sub"] == child_sub and access["act"] == {"sub": parent_sub}
    assert access["scope"] == "openid profile", "email is not in the mandate"
    info = httpx.get(platform.url + "/userinfo",
                     headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert info["sub"] == child_sub and info["given_name"] == "Léo"
    assert "email" not in info
    introspected = httpx.post(platform.url + "/introspect", data={
        "token": tokens["access_token"]}, auth=(client["client_id"], client["client_secret"]))
    assert introspected.json()["act"] == {"sub": parent_sub}
    with Session(provider.engine) as session:
        uses = session.exec(select(AuditEvent).where(
            AuditEvent.action == "delegation.login",
            AuditEvent.actor == str(family["parent"]["id"]))).all()
    assert uses and uses[0].target == str(family["child"].id)


def test_choosing_self_gives_plain_tokens(platform, browser, family) -> None:
    flow = CodeFlow(platform=platform, client=family["client"], browser=browser)
    tokens = _tokens(flow, _sign_in_for(flow, family["parent"], "self"))
    claims = _verify(platform, tokens["id_token"], family["client"]["client_id"])
    assert "act" not in claims
    assert claims["given_name"] == "Marie"


def test_client_that_did_not_opt_in_never_sees_delegation(platform, browser, family) -> None:
    other = _client(platform, delegation_allowed=False)
    family_mandate = platform.provider.mandates.record_relationship(
        family["child"].id, family["parent"]["id"], "parent", _terms(), actor="operateur")
    assert family_mandate.client_list() == []  # covers every client that accepts delegation
    flow = CodeFlow(platform=platform, client=other, browser=browser)
    tokens = _tokens(flow, _sign_in_for(flow, family["parent"], None))
    assert "act" not in _verify(platform, tokens["id_token"], other["client_id"])
    # at another client that opted in, only the mandate covering every client is offered
    # (the family's first mandate names one client)
    named_elsewhere = _client(platform)
    mandates = platform.provider.mandates.usable(family["parent"]["id"],
                                                 named_elsewhere["client_id"])
    assert [m.id for m in mandates] == [family_mandate.id]


def test_a_forged_choice_is_refused(platform, browser, family) -> None:
    stranger = platform.create_user()
    other_mandate = platform.provider.mandates.record_relationship(
        family["child"].id, stranger["id"], "guardian", _terms(), actor="operateur")
    flow = CodeFlow(platform=platform, client=family["client"], browser=browser)
    page = flow.browser.login(flow.start(), family["parent"]["email"],
                              family["parent"]["password"])
    fields = flow.browser.form_fields(page.text, CHOICE)
    fields["pour"] = str(other_mandate.id)
    refused = flow.browser.post(platform.url + CHOICE, fields, stop_at=flow.redirect_uri)
    assert refused.status_code == 400
    assert "plus valable pour ce service" in refused.text


def test_mandate_dates_limit_its_use(platform, browser) -> None:
    parent = platform.create_user()
    child = platform.provider.mandates.create_minor(given_name="Zoé", family_name="Marie",
                                                    birthdate=None, actor="operateur")
    client = _client(platform)
    later = platform.provider.mandates.record_relationship(
        child.id, parent["id"], "parent",
        _terms(starts_at=utcnow() + timedelta(days=2), ends_at=utcnow() + timedelta(days=9)),
        actor="operateur")
    flow = CodeFlow(platform=platform, client=client, browser=browser)
    _tokens(flow, _sign_in_for(flow, parent, None))  # not started yet: no choice
    with Session(platform.provider.engine) as session:
        mandate = session.get(Mandate, later.id)
        assert mandate is not None
        mandate.starts_at = utcnow() - timedelta(days=10)
        mandate.ends_at = utcnow() - timedelta(seconds=1)
        session.add(mandate)
        session.commit()
    assert platform.provider.mandates.usable(parent["id"], client["client_id"]) == []
    with pytest.raises(Exception, match="futur"):
        platform.provider.mandates.record_relationship(
            child.id, parent["id"], "parent", _terms(ends_at=utcnow() - timedelta(days=1)),
            actor="operateur")
    with pytest.raises(Exception, match="un an"):
        platform.provider.mandates.record_relationship(
            child.id, parent["id"], "parent", _terms(ends_at=utcnow() + timedelta(days=400)),
            actor="operateur")


def _console_revoke(browser: Browser, platform: Platform, mandate_id: uuid.UUID) -> httpx.Response:
    page = browser.get(platform.url + "/compte/procurations")
    assert page.status_code == 200
    fields = browser.form_fields(page.text, f"/compte/procurations/{mandate_id}/retirer")
    return browser.post(platform.url + f"/compte/procurations/{mandate_id}/retirer", fields)


def test_revoking_a_mandate_ends_delegated_sessions_and_tokens(platform, browser) -> None:
    provider = platform.provider
    giver = platform.create_user(given_name="Albertine", family_name="Sainte-Rose")
    helper = platform.create_user(given_name="Bruno", family_name="Aidant")
    with backchannel_receiver() as (receiver, live):
        client = _client(platform, backchannel_logout_uri=f"{live.url}/bcl")
        mandate = provider.mandates.create_self(giver["id"], helper["email"], _terms(
            clients=(client["client_id"],)))
        flow = CodeFlow(platform=platform, client=client, browser=browser)
        tokens = _tokens(flow, _sign_in_for(flow, helper, str(mandate.id)))
        record = provider.clients.get(client["client_id"])
        giver_sub = provider.subject_for(giver["id"], record)
        id_claims = _verify(platform, tokens["id_token"], client["client_id"])

        giver_browser = Browser()
        try:
            login = giver_browser.get(platform.url + "/connexion?retour=/compte/procurations")
            giver_browser.login(login, giver["email"], giver["password"])
            page = giver_browser.get(platform.url + "/compte/procurations")
            assert "Bruno Aidant" in page.text
            done = _console_revoke(giver_browser, platform, mandate.id)
            assert done.status_code == 200 and "La procuration est retirée" in done.text
            activity = giver_browser.get(platform.url + "/compte/activite").text
            assert "Connexion pour le compte d&#39;une autre personne" in activity or \
                "Connexion pour le compte d'une autre personne" in activity
            assert "Procuration retirée" in activity
        finally:
            giver_browser.close()

        assert receiver.event.wait(10), "no back-channel logout received"
        logout = jose_jwt.get_unverified_claims(receiver.tokens[-1])
        assert logout["sub"] == giver_sub and logout["sid"] == id_claims["sid"]
    auth = (client["client_id"], client["client_secret"])
    introspected = httpx.post(platform.url + "/introspect",
                              data={"token": tokens["access_token"]}, auth=auth).json()
    assert introspected == {"active": False}
    refreshed = httpx.post(platform.url + "/token", auth=auth, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    assert provider.mandates.usable(helper["id"], client["client_id"]) == []
    with Session(provider.engine) as session:
        revoked = session.exec(select(AuditEvent).where(
            AuditEvent.action == "mandate.revoke", AuditEvent.actor == str(giver["id"]))).all()
    assert revoked
    helper_activity = [e.action for e in provider.accounts.activity(helper["id"])]
    assert "delegation.login" in helper_activity


def test_only_the_mandator_revokes(platform, browser) -> None:
    giver = platform.create_user()
    helper = platform.create_user()
    mandate = platform.provider.mandates.create_self(giver["id"], helper["email"], _terms())
    login = browser.get(platform.url + "/connexion?retour=/compte/procurations")
    browser.login(login, helper["email"], helper["password"])
    page = browser.get(platform.url + "/compte/procurations")
    assert f"/compte/procurations/{mandate.id}/retirer" not in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    refused = browser.post(platform.url + f"/compte/procurations/{mandate.id}/retirer",
                           {"csrf_token": token.group(1)})
    assert platform.provider.mandates.get(mandate.id).status == "active"  # type: ignore[union-attr]
    assert refused.status_code in (403, 404)


def test_giving_a_mandate_in_the_console(platform, browser) -> None:
    giver = platform.create_user()
    helper = platform.create_user(given_name="Paul", family_name="Confiance")
    client = _client(platform, name="Cantine scolaire")
    login = browser.get(platform.url + "/connexion?retour=/compte/procurations")
    page = browser.login(login, giver["email"], giver["password"])
    fields = browser.form_fields(page.text, "/compte/procurations")
    ends = (utcnow() + timedelta(days=60)).date().isoformat()
    done = browser.post(platform.url + "/compte/procurations", {
        **fields, "mandatary": helper["email"], "client": client["client_id"],
        "scopes": "profile", "ends_at": ends})
    assert "La procuration est enregistrée" in done.text
    assert "Paul Confiance" in done.text and "Cantine scolaire" in done.text
    [mandate] = platform.provider.mandates.given(giver["id"])
    assert mandate.origin == "self" and mandate.client_list() == [client["client_id"]]
    assert mandate.scope_list() == ["openid", "profile"]
    data_page = browser.get(platform.url + "/compte/donnees")
    export = browser.post(platform.url + "/compte/donnees/export",
                          browser.form_fields(data_page.text, "/compte/donnees/export")).json()
    assert [m["id"] for m in export["mandates"]] == [str(mandate.id)]
    assert export["mandates"][0]["mandatary"] == str(helper["id"])
    unknown = browser.post(platform.url + "/compte/procurations", {
        **fields, "mandatary": "personne@example.mq", "ends_at": ends})
    assert unknown.status_code == 422


# --- token exchange (RFC 8693) ---------------------------------------------------------


def _exchange(platform: Platform, rs: dict[str, Any], subject: str, **extra: str
              ) -> httpx.Response:
    return httpx.post(platform.url + "/token", auth=(rs["client_id"], rs["client_secret"]),
                      data={"grant_type": TOKEN_EXCHANGE, "subject_token": subject,
                            "subject_token_type": ACCESS_TOKEN_TYPE, **extra})


def test_token_exchange_within_the_mandate(platform, browser) -> None:
    provider = platform.provider
    meta = httpx.get(platform.url + "/.well-known/openid-configuration").json()
    assert TOKEN_EXCHANGE in meta["grant_types_supported"]
    giver = platform.create_user(given_name="Hortense")
    helper = platform.create_user()
    front = _client(platform)
    rs = _client(platform, name="Service de paiement", redirect_uris=[],
                 grant_types=[TOKEN_EXCHANGE], scopes=["openid", "profile", "email"])
    mandate = provider.mandates.create_self(giver["id"], helper["email"], _terms(
        clients=(front["client_id"], rs["client_id"])))
    flow = CodeFlow(platform=platform, client=front, browser=browser)
    tokens = _tokens(flow, _sign_in_for(flow, helper, str(mandate.id)))
    subject = _verify(platform, tokens["access_token"], platform.url)

    answer = _exchange(platform, rs, tokens["access_token"], scope="openid profile",
                       audience=platform.url)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE and "refresh_token" not in body
    exchanged = _verify(platform, body["access_token"], platform.url)
    rs_record = provider.clients.get(rs["client_id"])
    assert exchanged["sub"] == provider.subject_for(giver["id"], rs_record)
    assert exchanged["act"] == {"sub": provider.subject_for(helper["id"], rs_record)}
    assert exchanged["client_id"] == rs["client_id"]
    assert exchanged["exp"] <= subject["exp"]
    info = httpx.get(platform.url + "/userinfo",
                     headers={"Authorization": f"Bearer {body['access_token']}"}).json()
    assert info["given_name"] == "Hortense"

    assert _exchange(platform, rs, tokens["access_token"],
                     scope="openid email").json()["error"] == "invalid_scope"
    assert _exchange(platform, rs, tokens["access_token"], scope="openid",
                     audience="https://ailleurs.example").json()["error"] == "invalid_target"
    assert _exchange(platform, rs, "pas-un-jeton").json()["error"] == "invalid_grant"
    not_opted = _client(platform, delegation_allowed=False, redirect_uris=[],
                        grant_types=[TOKEN_EXCHANGE])
    assert _exchange(platform, not_opted,
                     tokens["access_token"]).json()["error"] == "unauthorized_client"

    provider.revoke_mandate(mandate.id, giver["id"])
    again = _exchange(platform, rs, tokens["access_token"])
    assert again.json()["error"] == "invalid_grant"
    introspected = httpx.post(platform.url + "/introspect", data={"token": body["access_token"]},
                              auth=(rs["client_id"], rs["client_secret"])).json()
    assert introspected == {"active": False}


def test_token_exchange_refuses_tokens_without_act(platform, flow, user) -> None:
    rs = _client(platform, redirect_uris=[], grant_types=[TOKEN_EXCHANGE])
    tokens = flow.token(flow.get_code(user)["code"]).json()
    refused = _exchange(platform, rs, tokens["access_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


# --- the mediator's desk ------------------------------------------------------------------


def test_mediator_mandate_confirmed_by_a_code_sent_to_the_person(platform, browser,
                                                                mailbox) -> None:
    provider = platform.provider
    person = platform.create_user(given_name="Séraphine", family_name="Lubin")
    mediator = platform.create_user(given_name="Max", family_name="Médiateur")
    provider.organisations.grant(mediator["id"], "ctm", "mediator", actor="test",
                                 reason="France Services")
    client = _client(platform, name="Stationnement")
    login = browser.get(platform.url + "/connexion?retour=/compte/procurations/mediation")
    page = browser.login(login, mediator["email"], mediator["password"])
    assert page.status_code == 200, page.text[:300]
    fields = browser.form_fields(page.text, "/compte/procurations/mediation")
    ends = (utcnow() + timedelta(days=30)).date().isoformat()
    page = browser.post(platform.url + "/compte/procurations/mediation", {
        **fields, "mandator": person["email"], "client": client["client_id"],
        "scopes": "profile", "ends_at": ends})
    assert "Un code à 6 chiffres vient d" in page.text
    message = mailbox.wait_for(person["email"], subject="procuration")
    code = re.search(r"\b(\d{6})\b", message.text)
    assert code is not None
    assert code.group(1) not in page.text, "the code is never shown to the mediator"
    confirm = browser.form_fields(page.text, "/compte/procurations/mediation/confirmer")
    wrong = "000000" if code.group(1) != "000000" else "111111"
    bad = browser.post(platform.url + "/compte/procurations/mediation/confirmer",
                       {**confirm, "code": wrong})
    assert bad.status_code == 422 and "pas le bon" in bad.text
    done = browser.post(platform.url + "/compte/procurations/mediation/confirmer",
                        {**confirm, "code": code.group(1)})
    assert "La procuration est confirmée" in done.text
    [mandate] = provider.mandates.given(person["id"])
    assert mandate.origin == "mediator" and mandate.status == "active"
    person_activity = [e.action for e in provider.accounts.activity(person["id"])]
    assert {"mandate.request", "mandate.confirm"} <= set(person_activity)


def test_only_accredited_mediators_use_the_desk(platform, browser) -> None:
    someone = platform.create_user()
    person = platform.create_user()
    login = browser.get(platform.url + "/connexion?retour=/compte/procurations/mediation")
    page = browser.login(login, someone["email"], someone["password"])
    assert page.status_code == 403
    with pytest.raises(Exception, match="habilité"):
        platform.provider.mandates.start_mediation(
            someone["id"], person["email"], _terms(), accredited=False)


def test_the_mandate_form_refuses_a_forged_post_and_a_service_not_opted_in(
        platform, browser) -> None:
    giver = platform.create_user()
    helper = platform.create_user()
    closed = platform.create_client(name="Service sans procuration")  # not opted in
    login = browser.get(platform.url + "/connexion?retour=/compte/procurations")
    page = browser.login(login, giver["email"], giver["password"])
    fields = browser.form_fields(page.text, "/compte/procurations")
    ends = (utcnow() + timedelta(days=30)).date().isoformat()
    forged = browser.post(platform.url + "/compte/procurations", {
        **fields, "csrf_token": "x" * 40, "mandatary": helper["email"], "ends_at": ends})
    assert forged.status_code == 403 and "Formulaire expiré" in forged.text
    refused = browser.post(platform.url + "/compte/procurations", {
        **fields, "mandatary": helper["email"], "client": closed["client_id"],
        "ends_at": ends})
    assert refused.status_code == 422
    assert "Ce service n&#39;accepte pas les procurations." in refused.text \
        or "Ce service n'accepte pas les procurations." in refused.text
    assert platform.provider.mandates.given(giver["id"]) == []
