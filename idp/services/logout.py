"""OpenID Connect Back-Channel Logout 1.0: a signed logout token POSTed to each client.

Delivery never blocks the person logging out: tokens are sent from a small thread pool, retried
with growing pauses, and every failure is logged and written to the audit journal.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from joserfc import jwt

from idp.models import Client
from idp.services.signing_keys import KeyService
from plateforme.audit import AuditJournal, AuditRecord

log = logging.getLogger(__name__)

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass(frozen=True)
class LogoutDelivery:
    client_id: str
    uri: str
    token: str


class BackchannelNotifier:
    def __init__(
        self, *, issuer: str, keys: KeyService, journal: AuditJournal, default_alg: str,
        timeout: float = 5.0, retries: int = 3, http: httpx.Client | None = None,
        backoff: Callable[[int], float] | None = None,
    ) -> None:
        self._issuer = issuer
        self._keys = keys
        self._journal = journal
        self._default_alg = default_alg
        self._retries = retries
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=False)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="backchannel")
        self._backoff = backoff or (lambda attempt: 0.5 * 2**attempt)

    def logout_token(self, client: Client, *, sub: str, sid: str) -> str:
        """The logout token of OIDC Back-Channel Logout §2.4 (``typ: logout+jwt``)."""
        alg = client.id_token_signed_response_alg or self._default_alg
        key = self._keys.signing_key(alg)
        now = int(time.time())
        claims = {
            "iss": self._issuer, "aud": client.client_id, "iat": now, "exp": now + 120,
            "jti": secrets.token_urlsafe(16), "sub": sub, "sid": sid,
            "events": {BACKCHANNEL_EVENT: {}},
        }
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": "logout+jwt"}, claims, key)

    def notify(self, deliveries: list[LogoutDelivery]) -> list[object]:
        """Queue every delivery; returns the futures (tests may wait on them)."""
        return [self._pool.submit(self._deliver, d) for d in deliveries]

    def _deliver(self, delivery: LogoutDelivery) -> bool:
        error = ""
        for attempt in range(self._retries):
            try:
                response = self._http.post(
                    delivery.uri, data={"logout_token": delivery.token},
                    headers={"Cache-Control": "no-store"},
                )
                if response.status_code in (200, 204):
                    return True
                error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            log.warning("back-channel logout to %s failed (%s), attempt %d",
                        delivery.client_id, error, attempt + 1)
            if attempt + 1 < self._retries:
                time.sleep(self._backoff(attempt))
        try:
            self._journal.record(AuditRecord(
                action="logout.backchannel_failed", target=delivery.client_id,
                outcome="failure", details={"error": error, "attempts": self._retries},
            ))
        except Exception:  # noqa: BLE001 - a journal failure must not kill the worker thread
            log.exception("could not record back-channel failure")
        return False

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._http.close()
