"""Registered relying parties: creation, lookup (cached for the hot path), secrets."""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import secrets
import threading
import time
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from sqlmodel import Session

from idp import repository
from idp.models import Client
from idp.schemas import ClientCreate, ClientPublic
from plateforme.audit import AuditRecord, append
from plateforme.errors import Conflict, InvalidInput, NotFound

# A client read from the database is reused for this long by the token endpoint.
CLIENT_CACHE_SECONDS = 2.0


def hash_secret(secret: str) -> str:
    """Client secrets are 256-bit random strings: a SHA-256 is enough and costs microseconds
    (a password hash would cost ~16 ms per token request for no gain)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_secret(client: Client, secret: str | None) -> bool:
    if not secret or not client.client_secret_hash:
        return False
    return hmac.compare_digest(client.client_secret_hash, hash_secret(secret))


def sector_of(client: Client) -> str:
    """The pairwise sector: an explicit sector identifier, else the redirect URIs' host."""
    if client.sector_identifier:
        return client.sector_identifier
    hosts = {urlsplit(u).hostname or "" for u in client.get_list("redirect_uris")}
    return sorted(hosts)[0] if hosts else client.client_id


def to_public(client: Client, secret: str | None = None) -> ClientPublic:
    return ClientPublic(
        client_id=client.client_id,
        name=client.name,
        redirect_uris=client.get_list("redirect_uris"),
        post_logout_redirect_uris=client.get_list("post_logout_redirect_uris"),
        backchannel_logout_uri=client.backchannel_logout_uri,
        grant_types=client.get_list("grant_types"),
        scopes=client.scope.split(),
        token_endpoint_auth_method=client.token_endpoint_auth_method,
        subject_type=client.subject_type,
        first_party=client.first_party,
        organisation=client.organisation,
        disabled=client.disabled,
        default_acr=client.default_acr,
        delegation_allowed=client.delegation_allowed,
        client_secret=secret,
    )


class ClientService:
    """Use cases on clients. The cache serves the token endpoint's lookups."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._cache: dict[str, tuple[float, Client | None]] = {}
        self._lock = threading.Lock()

    def get(self, client_id: str) -> Client | None:
        """The client (enabled or not), from a short cache."""
        hit = self._cache.get(client_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < CLIENT_CACHE_SECONDS:
            return hit[1]
        with Session(self._engine, expire_on_commit=False) as session:
            client = repository.get_client(session=session, client_id=client_id)
            if client is not None:
                session.expunge(client)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[client_id] = (now, client)
        return client

    def is_cached(self, client_id: str) -> bool:
        """True when :meth:`get` would answer from the cache, without a database round trip
        (the token endpoint then answers ``client_credentials`` on the event loop)."""
        hit = self._cache.get(client_id)
        return hit is not None and time.monotonic() - hit[0] < CLIENT_CACHE_SECONDS

    def forget(self, client_id: str) -> None:
        self._cache.pop(client_id, None)

    def create(
        self, data: ClientCreate, *, actor: str | None = None, address: str | None = None
    ) -> ClientPublic:
        """Register a client; the plain secret is returned once and stored hashed."""
        client_id = data.client_id or secrets.token_urlsafe(18)
        secret = None
        if data.token_endpoint_auth_method in ("client_secret_basic", "client_secret_post"):
            secret = secrets.token_urlsafe(32)
        scopes = list(dict.fromkeys(data.scopes))
        client = Client(
            client_id=client_id,
            client_secret_hash=hash_secret(secret) if secret else None,
            name=data.name,
            redirect_uris=json.dumps(data.redirect_uris),
            post_logout_redirect_uris=json.dumps(data.post_logout_redirect_uris),
            backchannel_logout_uri=data.backchannel_logout_uri,
            grant_types=json.dumps(list(dict.fromkeys(data.grant_types))),
            scope=" ".join(scopes),
            token_endpoint_auth_method=data.token_endpoint_auth_method,
            jwks=json.dumps(data.jwks) if data.jwks else None,
            id_token_signed_response_alg=data.id_token_signed_response_alg,
            userinfo_signed_response_alg=data.userinfo_signed_response_alg,
            subject_type=data.subject_type,
            first_party=data.first_party,
            organisation=data.organisation,
            default_acr=data.default_acr,
            delegation_allowed=data.delegation_allowed,
        )
        with Session(self._engine, expire_on_commit=False) as session:
            if repository.get_client(session=session, client_id=client_id) is not None:
                raise Conflict(f"le client {client_id} existe déjà")
            if data.organisation and repository.get_organisation(
                    session=session, slug=data.organisation) is None:
                raise InvalidInput(f"organisation inconnue : {data.organisation}",
                                   field="organisation")
            session.add(client)
            append(session, AuditRecord(
                action="client.create", actor=actor, target=client_id, address=address,
                organisation=data.organisation, details={"name": data.name},
            ))
            session.commit()
        self.forget(client_id)
        return to_public(client, secret)

    def ensure(self, data: ClientCreate, secret: str, *, actor: str | None = None
               ) -> ClientPublic:
        """Create or bring up to date a client whose secret the platform derives itself (the
        administration console's): same settings and secret at every initialisation, enabled.
        Writes (and audits) only what changed. The secret is stored hashed, never returned."""
        if not data.client_id:
            raise InvalidInput("un client assuré par la plateforme a un client_id fixe",
                               field="client_id")
        wanted = {
            "client_secret_hash": hash_secret(secret),
            "name": data.name,
            "redirect_uris": json.dumps(data.redirect_uris),
            "post_logout_redirect_uris": json.dumps(data.post_logout_redirect_uris),
            "backchannel_logout_uri": data.backchannel_logout_uri,
            "grant_types": json.dumps(list(dict.fromkeys(data.grant_types))),
            "scope": " ".join(dict.fromkeys(data.scopes)),
            "token_endpoint_auth_method": data.token_endpoint_auth_method,
            "subject_type": data.subject_type,
            "first_party": data.first_party,
            "organisation": data.organisation,
            "default_acr": data.default_acr,
            "disabled": False,
        }
        with Session(self._engine, expire_on_commit=False) as session:
            client = repository.get_client(session=session, client_id=data.client_id)
            action = "client.create" if client is None else "client.update"
            if client is None:
                client = Client(client_id=data.client_id, name=data.name)
            changed = sorted(k for k, v in wanted.items() if getattr(client, k) != v)
            if changed or action == "client.create":
                for key in changed:
                    setattr(client, key, wanted[key])
                session.add(client)
                append(session, AuditRecord(
                    action=action, actor=actor, target=client.client_id,
                    organisation=client.organisation, reason="initialisation",
                    details={"fields": [k for k in changed if k != "client_secret_hash"]
                             + (["client_secret"] if "client_secret_hash" in changed else [])},
                ))
                session.commit()
        self.forget(data.client_id)
        return to_public(client)

    def list(self, organisation: str | None = None) -> builtins.list[ClientPublic]:
        """Every client, or those registered for one organisation."""
        with Session(self._engine) as session:
            return [to_public(c) for c in repository.list_clients(session=session)
                    if organisation is None or c.organisation == organisation]

    def update(
        self, client_id: str, *, name: str, redirect_uris: builtins.list[str],
        post_logout_redirect_uris: builtins.list[str], backchannel_logout_uri: str | None,
        actor: str | None = None, reason: str | None = None,
        delegation_allowed: bool | None = None,
    ) -> ClientPublic:
        """Change what a client's integrator may change; URIs are validated as at creation.
        ``delegation_allowed`` (None: unchanged) opts the client in or out of sessions by
        procuration (``idp.services.mandates``)."""
        current = self.show(client_id)
        checked = ClientCreate(
            name=name, redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout_redirect_uris,
            backchannel_logout_uri=backchannel_logout_uri or None,
            grant_types=current.grant_types,  # type: ignore[arg-type]
        ) if "authorization_code" in current.grant_types else None
        with Session(self._engine, expire_on_commit=False) as session:
            client = repository.get_client(session=session, client_id=client_id)
            if client is None:
                raise NotFound(f"client inconnu : {client_id}")
            client.name = name
            details: dict[str, object] = {
                "redirect_uris": redirect_uris,
                "post_logout_redirect_uris": post_logout_redirect_uris}
            if delegation_allowed is not None:
                details["delegation_allowed"] = delegation_allowed
                client.delegation_allowed = delegation_allowed
            if checked is not None:
                client.redirect_uris = json.dumps(checked.redirect_uris)
                client.post_logout_redirect_uris = json.dumps(checked.post_logout_redirect_uris)
                client.backchannel_logout_uri = checked.backchannel_logout_uri
            session.add(client)
            append(session, AuditRecord(
                action="client.update", actor=actor, target=client_id, reason=reason,
                organisation=client.organisation, details=details))
            session.commit()
        self.forget(client_id)
        return to_public(client)

    def set_disabled(self, client_id: str, disabled: bool, *, actor: str | None = None,
                     reason: str | None = None) -> ClientPublic:
        """Disable (every token request refused from then on) or enable a client."""
        with Session(self._engine, expire_on_commit=False) as session:
            client = repository.get_client(session=session, client_id=client_id)
            if client is None:
                raise NotFound(f"client inconnu : {client_id}")
            client.disabled = disabled
            session.add(client)
            append(session, AuditRecord(
                action="client.disable" if disabled else "client.enable", actor=actor,
                target=client_id, reason=reason, organisation=client.organisation))
            session.commit()
        self.forget(client_id)
        return to_public(client)

    def show(self, client_id: str) -> ClientPublic:
        with Session(self._engine) as session:
            client = repository.get_client(session=session, client_id=client_id)
            if client is None:
                raise NotFound(f"client inconnu : {client_id}")
            return to_public(client)

    def delete(self, client_id: str, *, actor: str | None = None,
               reason: str | None = None) -> None:
        with Session(self._engine) as session:
            client = repository.get_client(session=session, client_id=client_id)
            if client is None:
                raise NotFound(f"client inconnu : {client_id}")
            repository.delete_client(session=session, client=client)
            append(session, AuditRecord(action="client.delete", actor=actor, target=client_id,
                                        reason=reason, organisation=client.organisation))
            session.commit()
        self.forget(client_id)

    def rotate_secret(self, client_id: str, *, actor: str | None = None,
                      reason: str | None = None) -> str:
        """Issue a new secret (shown once); the old one stops working at once."""
        secret = secrets.token_urlsafe(32)
        with Session(self._engine) as session:
            client = repository.get_client(session=session, client_id=client_id)
            if client is None:
                raise NotFound(f"client inconnu : {client_id}")
            if client.token_endpoint_auth_method not in ("client_secret_basic",
                                                         "client_secret_post"):
                raise Conflict("ce client n'utilise pas de secret")
            client.client_secret_hash = hash_secret(secret)
            session.add(client)
            append(session, AuditRecord(action="client.rotate_secret", actor=actor,
                                        target=client_id, reason=reason,
                                        organisation=client.organisation))
            session.commit()
        self.forget(client_id)
        return secret
