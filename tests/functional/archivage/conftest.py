"""Archive API fixtures: access tokens of clients acting for an organisation (client
credentials), staff tokens through the real code flow, and a multipart deposit helper."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import CodeFlow, Platform
from tests.support.browser import Browser

ALL_SCOPES = ["archives:read", "archives:write", "archives:admin"]


@dataclass
class ArchiveClient:
    """An HTTP client of the archive API holding a token for one organisation."""

    platform: Platform
    token: str
    organisation: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, path: str) -> str:
        return f"{self.platform.url}/api/archives{path}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url(path), headers=self.headers, timeout=60, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.post(self.url(path), headers=headers, timeout=120, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.put(self.url(path), headers=self.headers, timeout=60, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.delete(self.url(path), headers=self.headers, timeout=60, **kwargs)

    def deposit(self, uploads: list[tuple[str, bytes]], /, *, headers: dict[str, str] | None = None,
                declare_digests: bool = True, **metadata: Any) -> httpx.Response:
        metadata.setdefault("title", "Versement " + secrets.token_hex(4))
        if declare_digests and "files" not in metadata:
            metadata["files"] = [{"sha256": hashlib.sha256(data).hexdigest()}
                                 for _, data in uploads]
        parts: list[tuple[str, Any]] = [("metadata", (None, json.dumps(metadata),
                                                      "application/json"))]
        parts += [("file", (name, data, "application/octet-stream")) for name, data in uploads]
        return self.post("/deposits", files=parts, headers=headers or {})


def client_token(platform: Platform, organisation: str | None,
                 scopes: list[str] | None = None) -> str:
    scopes = scopes or ALL_SCOPES
    client = platform.create_client(name=f"GED {organisation}", grant_types=["client_credentials"],
                                    redirect_uris=[], scopes=scopes, organisation=organisation)
    response = httpx.post(f"{platform.url}/token",
                          data={"grant_type": "client_credentials", "scope": " ".join(scopes)},
                          auth=(client["client_id"], client["client_secret"]))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def as_org(platform: Platform) -> Callable[..., ArchiveClient]:
    """``as_org("lamentin")``: a client acting for Le Lamentin with every archive scope."""

    def make(organisation: str | None, scopes: list[str] | None = None) -> ArchiveClient:
        return ArchiveClient(platform, client_token(platform, organisation, scopes),
                             organisation)

    return make


@pytest.fixture
def as_staff(platform: Platform) -> Callable[..., ArchiveClient]:
    """``as_staff(("lamentin", "viewer"), ...)``: a person holding those roles, signed in
    through the authorization code flow of a first-party client."""

    def make(*grants: tuple[str, str], scopes: list[str] | None = None) -> ArchiveClient:
        scopes = scopes or ALL_SCOPES
        staff = platform.create_user()
        for organisation, role in grants:
            platform.provider.organisations.grant(staff["id"], organisation, role)
        client = platform.create_client(name="Console archives", first_party=True,
                                        scopes=["openid", *scopes])
        browser = Browser()
        try:
            flow = CodeFlow(platform=platform, client=client, browser=browser)
            scope = "openid " + " ".join(scopes)
            tokens = flow.token(flow.get_code(staff, scope=scope)["code"]).json()
        finally:
            browser.close()
        return ArchiveClient(platform, tokens["access_token"], grants[0][0] if grants else None)

    return make


def blob_paths(platform: Platform, sha512: str) -> list[Any]:
    """Where the embedded store keeps ``sha512`` (one path per location)."""
    archives = platform.live.app.state.archives
    return [store.path_of(sha512) for store in archives.blobs.stores]
