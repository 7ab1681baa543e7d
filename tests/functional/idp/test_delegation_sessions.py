"""Delegated sessions: their own ``sid`` (a mandate's back-channel logout never ends the
mandatary's own session at the same client, checked with the real receiver and with
demo_rp's ``sid`` matching), and a mandate whose end date passes ends delegated access at
once (introspection inactive, UserInfo refused, refresh refused)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from jose import jwt as jose_jwt
from sqlmodel import Session

from demo_rp.app import LocalSessions
from idp.models import Mandate
from plateforme.clock import utcnow
from tests.conftest import CodeFlow, Platform
from tests.functional.idp.test_delegation import _client, _sign_in_for, _terms, _tokens, _verify
from tests.support.receiver import backchannel_receiver


def _introspect(platform: Platform, client: dict[str, Any], token: str) -> dict[str, Any]:
    return dict(httpx.post(platform.url + "/introspect", data={"token": token},
                           auth=(client["client_id"], client["client_secret"])).json())


def _userinfo(platform: Platform, token: str) -> httpx.Response:
    return httpx.get(platform.url + "/userinfo", headers={"Authorization": f"Bearer {token}"})


def _refresh(platform: Platform, client: dict[str, Any], token: str) -> httpx.Response:
    return httpx.post(platform.url + "/token", auth=(client["client_id"], client["client_secret"]),
                      data={"grant_type": "refresh_token", "refresh_token": token})


def test_a_delegated_session_has_its_own_sid(platform, browser) -> None:
    provider = platform.provider
    giver = platform.create_user(given_name="Albertine")
    helper = platform.create_user(given_name="Bruno")
    with backchannel_receiver() as (receiver, live):
        client = _client(platform, backchannel_logout_uri=f"{live.url}/bcl")
        record = provider.clients.get(client["client_id"])
        mandate = provider.mandates.create_self(giver["id"], helper["email"], _terms(
            clients=(client["client_id"],)))
        flow = CodeFlow(platform=platform, client=client, browser=browser)
        own = _tokens(flow, _sign_in_for(flow, helper, "self"))
        delegated = _tokens(flow, _sign_in_for(flow, helper, str(mandate.id)))
        own_claims = _verify(platform, own["id_token"], client["client_id"])
        delegated_claims = _verify(platform, delegated["id_token"], client["client_id"])
        assert own_claims["sid"] != delegated_claims["sid"]
        access = _verify(platform, delegated["access_token"], platform.url)
        assert access["sid"] == delegated_claims["sid"]
        # Signing in again for the same person reuses the delegated session.
        again = _tokens(flow, _sign_in_for(flow, helper, str(mandate.id)))
        assert _verify(platform, again["id_token"],
                       client["client_id"])["sid"] == delegated_claims["sid"]
        # The delegated refresh token lives as long as the mandatary's SSO session.
        refreshed = _refresh(platform, client, delegated["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text

        # demo_rp keeps one local session per sign-in, and ends them by ``sid``.
        local = LocalSessions()
        local.create({"sub": own_claims["sub"], "sid": own_claims["sid"]})
        local.create({"sub": delegated_claims["sub"], "sid": delegated_claims["sid"]})

        for future in provider.revoke_mandate(mandate.id, giver["id"]):
            future.result(timeout=10)  # type: ignore[attr-defined]
        assert len(receiver.tokens) == 1
        logout = jose_jwt.get_unverified_claims(receiver.tokens[0])
        assert logout["sid"] == delegated_claims["sid"]
        assert logout["sub"] == provider.subject_for(giver["id"], record)
        assert local.end_sid(logout.get("sid"), logout.get("sub")) == 1
        assert [s["sid"] for s in local.by_id.values()] == [own_claims["sid"]]

    # B's own session at the client survives; the delegated one is over.
    assert _introspect(platform, client, own["access_token"])["active"] is True
    assert _refresh(platform, client, own["refresh_token"]).status_code == 200
    assert _introspect(platform, client, delegated["access_token"]) == {"active": False}
    assert _userinfo(platform, own["access_token"]).status_code == 200


def test_logging_out_ends_the_delegated_sessions_too(platform, browser) -> None:
    provider = platform.provider
    giver = platform.create_user()
    helper = platform.create_user()
    with backchannel_receiver() as (receiver, live):
        client = _client(platform, backchannel_logout_uri=f"{live.url}/bcl")
        record = provider.clients.get(client["client_id"])
        mandate = provider.mandates.create_self(giver["id"], helper["email"], _terms(
            clients=(client["client_id"],)))
        flow = CodeFlow(platform=platform, client=client, browser=browser)
        delegated = _tokens(flow, _sign_in_for(flow, helper, str(mandate.id)))
        claims = _verify(platform, delegated["id_token"], client["client_id"])
        # RP-initiated logout with the delegated ID token ends the mandatary's session.
        browser.get(f"{platform.url}/logout?id_token_hint={delegated['id_token']}")
        assert receiver.event.wait(10), "no back-channel logout received"
        logout = jose_jwt.get_unverified_claims(receiver.tokens[-1])
        assert logout["sid"] == claims["sid"]
        assert logout["sub"] == provider.subject_for(giver["id"], record)
    assert _introspect(platform, client, delegated["access_token"]) == {"active": False}
    assert _refresh(platform, client, delegated["refresh_token"]).status_code == 400


def test_a_mandate_reaching_its_end_ends_delegated_access_at_once(platform, browser) -> None:
    provider = platform.provider
    giver = platform.create_user(given_name="Hortense")
    helper = platform.create_user()
    client = _client(platform)
    mandate = provider.mandates.create_self(giver["id"], helper["email"], _terms(
        clients=(client["client_id"],)))
    flow = CodeFlow(platform=platform, client=client, browser=browser)
    delegated = _tokens(flow, _sign_in_for(flow, helper, str(mandate.id)))
    own = _tokens(flow, _sign_in_for(flow, helper, "self"))
    assert _introspect(platform, client, delegated["access_token"])["active"] is True
    assert _userinfo(platform, delegated["access_token"]).status_code == 200

    with Session(provider.engine) as session:  # the end date passes
        record = session.get(Mandate, mandate.id)
        assert record is not None
        record.ends_at = utcnow() - timedelta(seconds=1)
        session.add(record)
        session.commit()

    assert _introspect(platform, client, delegated["access_token"]) == {"active": False}
    refused = _userinfo(platform, delegated["access_token"])
    assert refused.status_code == 401 and "invalid_token" in refused.headers["www-authenticate"]
    refreshed = _refresh(platform, client, delegated["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    # The mandatary's own tokens are untouched.
    assert _introspect(platform, client, own["access_token"])["active"] is True
    assert _userinfo(platform, own["access_token"]).status_code == 200
