"""Cross-domain wiring: the Protocols a domain declares in its ``interfaces.py`` are
implemented here with another domain's services.

- archivage needs the IdP's organisations (``exists``) and a signer (the platform's signing
  key, for logbook seals and destruction certificates);
- services_mutualises needs the IdP's organisations and OIDC clients, and the archival
  service's spaces (``archive_spaces``: the archive provisioner resizes quotas through it).

Both resource servers check access tokens against the provider's own keys and revocation
list, read in-process in the embedded deployment (a separate deployment uses ``HttpJWKS``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session

import idp
from archivage import Archives
from idp import repository as idp_repository
from martinique_connect.seals import JwksVerifier
from plateforme.blobs import make_blob_stores
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

    def exists(self, slug: str) -> bool:
        """``archivage.interfaces.OrganisationDirectory``."""
        return self.get(slug) is not None

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

    def set_redirect_uris(self, client_id: str, redirect_uris: list[str], *, actor: str,
                          reason: str) -> None:
        current = self._provider.clients.show(client_id)
        self._provider.clients.update(
            client_id, name=current.name, redirect_uris=redirect_uris,
            post_logout_redirect_uris=current.post_logout_redirect_uris,
            backchannel_logout_uri=current.backchannel_logout_uri, actor=actor, reason=reason)

    def enable(self, client_id: str, *, actor: str, reason: str) -> None:
        self._provider.clients.set_disabled(client_id, False, actor=actor, reason=reason)

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
    services.orders.sweep(actor="démarrage")  # what a crash left half provisioned
    app.state.services = services
    if not hasattr(app.state, "resource_servers"):
        app.state.resource_servers = {}
    app.state.resource_servers["services"] = token_validator(provider, SERVICES_AUDIENCE_PATH)
    app.include_router(services_router)
    return services


def token_validator(provider: idp.Provider, path: str) -> AccessTokenValidator:
    """A resource server's access-token validator (audience ``issuer + path``)."""

    def jwks(*, refresh: bool = False) -> dict[str, Any]:
        if refresh:
            provider.keys.invalidate()
        return provider.keys.jwks()

    return AccessTokenValidator(issuer=provider.issuer, audience=provider.issuer + path,
                                jwks=jwks, is_revoked=provider.tokens.is_revoked)


def archives_token_validator(provider: idp.Provider) -> AccessTokenValidator:
    return token_validator(provider, "/api/archives")


class PlatformSigner(JwksVerifier):
    """``archivage.interfaces.Signer`` with the IdP's current signing key (JWS, ES256 or
    RS256), verified against the published JWKS."""

    def __init__(self, provider: idp.Provider) -> None:
        self._provider = provider

    def sign(self, payload: bytes) -> str:
        from joserfc import jws

        alg = self._provider.settings.signing_alg
        key = self._provider.keys.signing_key(alg)
        return jws.serialize_compact({"alg": alg, "kid": key.kid, "typ": "JWS"}, payload, key)

    def _keys(self) -> dict[str, Any]:
        return self._provider.keys.jwks()  # type: ignore[no-any-return]


def build_archives(settings: Settings, engine: Engine, provider: idp.Provider) -> Archives:
    """The archival service with its storage strategy and the IdP-backed Protocols."""
    return Archives(engine=engine, blobs=make_blob_stores(settings), data_dir=settings.data_dir,
                    organisations=IdpOrganisations(provider), signer=PlatformSigner(provider),
                    schema_dir=settings.seda_schema_dir)


async def archives_maintenance(archives: Archives, store: Any) -> None:
    """Every worker's maintenance loop for the archives: seals and scheduled audits (one
    worker at a time, through a lock in the shared key-value store)."""
    import asyncio
    import logging

    from starlette.concurrency import run_in_threadpool

    intervals = [i for i in (archives.config.seal_interval_seconds,
                             archives.config.audit_interval_seconds) if i]
    every = min(intervals) if intervals else None
    waited = 0.0
    while True:
        await asyncio.sleep(archives.config.operations_poll_seconds)
        waited += archives.config.operations_poll_seconds
        try:
            await run_in_threadpool(archives.operations.process_pending)
            if every is not None and waited >= every:
                waited = 0.0
                await run_in_threadpool(archives.periodic, lock=store)
        except Exception:  # noqa: BLE001 - logged; the next round tries again
            logging.getLogger("archivage").exception("archives maintenance failed")

