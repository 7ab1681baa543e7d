"""What resource servers learn from access tokens: organisation and roles, only when asked."""

from __future__ import annotations

import httpx
from jose import jwt as jose_jwt

from tests.conftest import CodeFlow


def _claims(token: str) -> dict:
    return jose_jwt.get_unverified_claims(token)


def test_client_acting_for_an_organisation(platform) -> None:
    client = platform.create_client(name="GED Lamentin", grant_types=["client_credentials"],
                                    redirect_uris=[], scopes=["archives:read", "archives:write"],
                                    organisation="lamentin")
    token = httpx.post(f"{platform.url}/token", data={"grant_type": "client_credentials",
                                                      "scope": "archives:read"},
                       auth=(client["client_id"], client["client_secret"])).json()["access_token"]
    claims = _claims(token)
    assert claims["org"] == "lamentin"
    assert claims["roles"] == []
    assert claims["aud"] == f"{platform.url}/api/archives"


def test_staff_token_for_a_resource_server_carries_org_and_roles(platform, browser) -> None:
    staff = platform.create_user()
    platform.provider.organisations.grant(staff["id"], "lamentin", "archivist")
    platform.provider.organisations.grant(staff["id"], "ctm", "archival_authority")
    client = platform.create_client(name="Console archives", first_party=True,
                                    scopes=["openid", "archives:read"])
    flow = CodeFlow(platform=platform, client=client, browser=browser)
    tokens = flow.token(flow.get_code(staff, scope="openid archives:read")["code"]).json()
    claims = _claims(tokens["access_token"])
    assert claims["org"] == "lamentin"
    assert claims["roles"] == ["archival_authority", "archivist"]
    assert set(claims["aud"]) == {platform.url, f"{platform.url}/api/archives"}
    info = httpx.post(f"{platform.url}/introspect", data={"token": tokens["access_token"]},
                      auth=(client["client_id"], client["client_secret"])).json()
    assert info["org"] == "lamentin"
    assert "org" not in _claims(tokens["id_token"])


def test_citizen_facing_tokens_never_carry_roles(platform, flow) -> None:
    staff = platform.create_user()
    platform.provider.organisations.grant(staff["id"], "lamentin", "org_admin")
    tokens = flow.token(flow.get_code(staff)["code"]).json()
    claims = _claims(tokens["access_token"])
    assert "org" not in claims
    assert "roles" not in claims
