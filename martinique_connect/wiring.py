"""Cross-domain Protocols plugged in: each domain declares what it needs in its
``interfaces.py``; the composition root hands it another domain's service here."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from archivage import Archives
from idp import Provider
from plateforme.blobs import make_blob_stores
from plateforme.settings import Settings


class IdpOrganisations:
    """``archivage.interfaces.OrganisationDirectory`` over the IdP's organisations."""

    def __init__(self, provider: Provider) -> None:
        self._provider = provider

    def exists(self, slug: str) -> bool:
        try:
            self._provider.organisations.get(slug)
        except Exception:  # noqa: BLE001 - NotFound (or a malformed slug): unknown
            return False
        return True


def archives_token_validator(provider: Provider) -> Any:
    """The archival API's access-token validator: the IdP's keys and revocation list, read
    in-process in the embedded deployment (a separate deployment uses ``HttpJWKS``)."""
    from plateforme.resource_server import AccessTokenValidator

    def jwks(*, refresh: bool = False) -> dict[str, Any]:
        if refresh:
            provider.keys.invalidate()
        return provider.keys.jwks()

    return AccessTokenValidator(issuer=provider.issuer, audience=provider.issuer + "/api/archives",
                                jwks=jwks, is_revoked=provider.tokens.is_revoked)


class PlatformSigner:
    """``archivage.interfaces.Signer`` with the IdP's current signing key (JWS, ES256 or
    RS256), verified against the published JWKS."""

    def __init__(self, provider: Provider) -> None:
        self._provider = provider

    def sign(self, payload: bytes) -> str:
        from joserfc import jws

        alg = self._provider.settings.signing_alg
        key = self._provider.keys.signing_key(alg)
        return jws.serialize_compact({"alg": alg, "kid": key.kid, "typ": "JWS"}, payload, key)

    def verify(self, token: str) -> bytes | None:
        from joserfc import jws
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        try:
            keys = KeySet.import_key_set(self._provider.keys.jwks())  # type: ignore[arg-type]
            return bytes(jws.deserialize_compact(token, keys, algorithms=["ES256", "RS256"])
                         .payload)
        except (JoseError, ValueError):
            return None

    def key_published(self, token: str) -> bool:
        import base64
        import json

        try:
            raw = token.split(".", 1)[0]
            kid = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))).get("kid")
        except (ValueError, AttributeError):
            return False
        return any(k.get("kid") == kid for k in self._provider.keys.jwks().get("keys", []))


def build_archives(settings: Settings, engine: Engine, provider: Provider) -> Archives:
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
