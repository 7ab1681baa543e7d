"""The per-worker revocation list (``idp.services.tokens.RevocationList``): a revocation is
seen at once by the worker that made it, and within ``REVOCATION_STALENESS`` by another worker
sharing the database and key-value store; unrevoked tokens stay valid."""

from __future__ import annotations

import secrets
import time

from idp.services.tokens import REVOCATION_STALENESS, REVOCATION_VERSION_KEY, TokenService
from tests.conftest import Platform


def _other_worker(platform: Platform) -> TokenService:
    provider = platform.provider
    return TokenService(provider.engine, provider.store, code_lifetime=60,
                        refresh_token_lifetime=3600)


def test_a_revocation_is_seen_at_once_here_and_within_the_bound_elsewhere(
        platform: Platform) -> None:
    here = platform.provider.tokens
    other = _other_worker(platform)
    jti, kept = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    exp = int(time.time()) + 600
    assert not here.is_revoked(jti) and not other.is_revoked(jti)  # both lists loaded

    before = platform.provider.store.get(REVOCATION_VERSION_KEY)
    here.revoke_access_token(jti, exp)
    done = time.monotonic()
    assert here.is_revoked(jti)  # never stale for the worker that revoked
    assert platform.provider.store.get(REVOCATION_VERSION_KEY) != before
    while not other.is_revoked(jti):
        assert time.monotonic() - done <= REVOCATION_STALENESS + 0.5
        time.sleep(0.02)
    assert not here.is_revoked(kept) and not other.is_revoked(kept)


def test_a_worker_started_after_the_revocation_loads_it_and_a_lost_stamp_reloads(
        platform: Platform) -> None:
    here = platform.provider.tokens
    jti = secrets.token_urlsafe(16)
    here.revoke_access_token(jti, int(time.time()) + 600)
    assert _other_worker(platform).is_revoked(jti)

    # The store was flushed (the stamp is gone): a worker that had loaded the list reloads it,
    # and still sees revocations made since.
    other = _other_worker(platform)
    assert other.is_revoked(jti)
    later = secrets.token_urlsafe(16)
    here.revoke_access_token(later, int(time.time()) + 600)
    platform.provider.store.delete(REVOCATION_VERSION_KEY)
    time.sleep(REVOCATION_STALENESS + 0.05)
    assert other.is_revoked(later) and other.is_revoked(jti)
