"""Catalogue fixtures: people holding roles, each with a real access token for the
``services`` resource server (authorization code flow over HTTP, or client credentials for a
client acting for its organisation), and a small HTTP client sending it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import CodeFlow, Platform
from tests.support.browser import Browser

ALL_SCOPES = ["services:read", "services:order", "services:admin"]


@dataclass
class Api:
    """Calls ``/api/services/…`` with one access token."""

    platform: Platform
    token: str
    user: dict[str, Any] | None = None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.request(method, f"{self.platform.url}/api/services{path}",
                             headers=headers, timeout=60, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, json=json, **kwargs)


def person_api(platform: Platform, *roles: tuple[str, str], scopes: list[str] | None = None
               ) -> Api:
    """A new person holding ``roles``, signed in through a first-party client; the access
    token asks for ``scopes`` (all three by default)."""
    scopes = scopes or ALL_SCOPES
    user = platform.create_user(email=f"svc-{secrets.token_hex(4)}@example.mq")
    for org, role in roles:
        platform.provider.organisations.grant(user["id"], org, role)
    client = platform.create_client(name="Outil des services", first_party=True,
                                    scopes=["openid", *ALL_SCOPES])
    browser = Browser()
    try:
        flow = CodeFlow(platform=platform, client=client, browser=browser)
        code = flow.get_code(user, scope="openid " + " ".join(scopes))["code"]
        tokens = flow.token(code).json()
    finally:
        browser.close()
    return Api(platform, tokens["access_token"], user)


def client_api(platform: Platform, org: str, scopes: list[str] | None = None) -> Api:
    """A client acting for ``org`` (client credentials, no person, no role)."""
    scopes = scopes or ["services:read", "services:order"]
    client = platform.create_client(name=f"Logiciel de {org}", organisation=org,
                                    grant_types=["client_credentials"], redirect_uris=[],
                                    scopes=scopes)
    response = httpx.post(f"{platform.url}/token", data={
        "grant_type": "client_credentials", "scope": " ".join(scopes)},
        auth=(client["client_id"], client["client_secret"]))
    assert response.status_code == 200, response.text
    return Api(platform, response.json()["access_token"])


@pytest.fixture(scope="session")
def catalogue(platform: Platform) -> Any:
    services = platform.live.app.state.services
    services.seed(sites=True)
    return services


@dataclass
class Actors:
    buyer: Api  # Le Lamentin
    viewer: Api  # Le Lamentin
    other_buyer: Api  # Schœlcher
    approver: Api  # CTM
    manager: Api  # CTM catalogue manager
    software: Api  # a client acting for Le Lamentin


@pytest.fixture(scope="module")
def actors(platform: Platform, catalogue: Any) -> Actors:
    return Actors(
        buyer=person_api(platform, ("lamentin", "buyer")),
        viewer=person_api(platform, ("lamentin", "viewer")),
        other_buyer=person_api(platform, ("schoelcher", "buyer")),
        approver=person_api(platform, ("ctm", "approver")),
        manager=person_api(platform, ("ctm", "catalogue_manager")),
        software=client_api(platform, "lamentin"),
    )


def site_id(api: Api, name_part: str) -> str:
    sites = api.get("/sites").json()
    return next(s["id"] for s in sites if name_part in s["name"])


@pytest.fixture
def service_mailbox(platform: Platform, smtp_server: Any) -> Iterator[Any]:
    """The provider's mail goes to the test SMTP server (the catalogue sends through it)."""
    from plateforme.mail import make_mailer

    provider = platform.provider
    previous = provider.mailer
    provider.mailer = make_mailer(smtp_server.url, platform.settings.data_dir,
                                  sender=platform.settings.mail_from)
    yield smtp_server.mailbox
    provider.mailer = previous
