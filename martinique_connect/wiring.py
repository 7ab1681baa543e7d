"""Cross-domain wiring: the Protocols a domain declares in its ``interfaces.py`` are
implemented here with another domain's services.

services_mutualises needs the organisations and the OIDC clients of the IdP, and the
archival service's spaces. **Archive wiring point:** :func:`install_services` takes an
optional ``archive_spaces`` (``services_mutualises.ArchiveSpaces``); pass the service
``archivage`` exports once it exists — without it, archive-space orders fail with a clear
reason and nothing is allocated.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session

import idp
from idp import repository as idp_repository
from plateforme.kv import KeyValueStore
from plateforme.resource_server import AccessTokenValidator
from plateforme.settings import Settings
from services_mutualises import (
    ArchiveSpaces,
    ClientRegistrar,
    OrganisationDirectory,
    OrganisationInfo,
    RegisteredClient,
    ServiceCatalogue,
)
from services_mutualises.api import router as services_router

SERVICES_AUDIENCE_PATH = "/api/services"
# Who hears about an organisation's orders.
CONTACT_ROLES = frozenset({"buyer", "org_admin"})


class IdpOrganisations:
    """``OrganisationDirectory`` over the IdP's organisations and memberships."""

    def __init__(self, provider: idp.Provider) -> None:
        self._provider = provider

    @staticmethod
    def _info(org: Any) -> OrganisationInfo:
        return OrganisationInfo(slug=org.slug, name=org.name, kind=org.kind,
                                population=org.population)

    def get(self, slug: str) -> OrganisationInfo | None:
        for org in self._provider.organisations.list():
            if org.slug == slug:
                return self._info(org)
        return None

    def all(self) -> list[OrganisationInfo]:
        return [self._info(o) for o in self._provider.organisations.list()]

    def contacts(self, slug: str) -> list[str]:
        if self.get(slug) is None:
            return []
        return sorted({user.email for user, role in self._provider.organisations.members(slug)
                       if role in CONTACT_ROLES and not user.locked})


class IdpClientRegistrar:
    """``ClientRegistrar`` over the IdP's client service and token revocation."""

    def __init__(self, provider: idp.Provider) -> None:
        self._provider = provider

    def register(self, *, client_id: str, name: str, organisation: str,
                 redirect_uris: list[str], actor: str) -> RegisteredClient:
        clients = self._provider.clients
        if clients.get(client_id) is None:
            created = clients.create(idp.ClientCreate(
                client_id=client_id, name=name, organisation=organisation,
                redirect_uris=redirect_uris,
                grant_types=["authorization_code", "refresh_token"],  # type: ignore[list-item]
                scopes=["openid", "profile", "email"]), actor=actor)
            assert created.client_secret is not None
            return RegisteredClient(created.client_id, created.client_secret)
        clients.set_disabled(client_id, False, actor=actor, reason="nouvelle mise en service")
        secret = clients.rotate_secret(client_id, actor=actor, reason="nouvelle mise en service")
        return RegisteredClient(client_id, secret)

    def disable(self, client_id: str, *, actor: str, reason: str) -> None:
        if self._provider.clients.get(client_id) is None:
            return
        self._provider.clients.set_disabled(client_id, True, actor=actor, reason=reason)
        with Session(self._provider.engine) as session:
            grants = [g.id for g in idp_repository.list_active_grants(session=session,
                                                                       client_id=client_id)]
        for grant_id in grants:
            self._provider.tokens.revoke_grant(grant_id, reason=reason, actor=actor)

    def remove(self, client_id: str, *, actor: str, reason: str) -> None:
        if self._provider.clients.get(client_id) is not None:
            self._provider.clients.delete(client_id, actor=actor, reason=reason)


class ProviderMailer:
    """The provider's mailer as it is now (tests and ``MC_SMTP_URL`` may replace it)."""

    def __init__(self, provider: idp.Provider) -> None:
        self._provider = provider

    def send(self, *, to: str, subject: str, text: str, html: str | None = None) -> str:
        return self._provider.mailer.send(to=to, subject=subject, text=text, html=html)


def build_services(provider: idp.Provider, settings: Settings, engine: Engine,
                   store: KeyValueStore, *, archive_spaces: ArchiveSpaces | None = None
                   ) -> ServiceCatalogue:
    directory: OrganisationDirectory = IdpOrganisations(provider)
    registrar: ClientRegistrar = IdpClientRegistrar(provider)
    return ServiceCatalogue(engine=engine, directory=directory, registrar=registrar,
                            mailer=ProviderMailer(provider), store=store,
                            secret_key=settings.resolved_secret_key(),
                            archive_spaces=archive_spaces)


def install_services(app: FastAPI, provider: idp.Provider, settings: Settings, engine: Engine,
                     store: KeyValueStore, *, archive_spaces: ArchiveSpaces | None = None,
                     seed: bool = False) -> ServiceCatalogue:
    """The catalogue on ``app.state.services``, its resource server (tokens checked against
    the provider's own keys and revocation list) and its routes."""
    services = build_services(provider, settings, engine, store, archive_spaces=archive_spaces)
    if seed:
        services.seed(sites=False)
    app.state.services = services
    if not hasattr(app.state, "resource_servers"):
        app.state.resource_servers = {}
    app.state.resource_servers["services"] = AccessTokenValidator(
        issuer=settings.issuer, audience=settings.issuer + SERVICES_AUDIENCE_PATH,
        jwks=lambda refresh=False: provider.keys.jwks(),
        is_revoked=provider.tokens.is_revoked)
    app.include_router(services_router)
    return services
