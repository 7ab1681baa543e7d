"""Authorization codes, grants (token families), refresh-token rotation and revocation.

* Codes live in the key-value store for ``code_lifetime`` seconds and are taken atomically:
  a second use finds the "used" marker and revokes the whole grant (RFC 6749 §4.1.2,
  RFC 9700 §4.5).
* Refresh tokens are stored as SHA-256 and rotated on every use; presenting a rotated token
  again revokes the family (RFC 9700 §4.14.2).
* JWT access tokens are revoked by ``jti`` (a revocation list consulted by introspection).
  Revoking a grant puts the ``jti`` of its unexpired access tokens on that list too.

The revocation list is checked on every introspection, so each worker keeps a copy in memory
(:class:`RevocationList`): every revocation, once committed, changes a random stamp in the
key-value store; a worker reads that stamp at most every ``REVOCATION_STALENESS`` seconds and,
when it changed, loads from the database the revocations recorded since its last load. The
common path is therefore a set lookup, with no storage round trip; a revocation made by another
process is seen within ``REVOCATION_STALENESS`` (0.5 s) plus one request, and at once by the
process that made it. When the store does not answer, each check reads the database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session

from idp import repository
from idp.models import AccessTokenRecord, Grant, RefreshToken, User
from plateforme.audit import AuditRecord, append
from plateforme.clock import utcnow
from plateforme.db import reader
from plateforme.kv import KeyValueStore

log = logging.getLogger(__name__)

USED_CODE_MEMORY = 24 * 3600
# At most this old, in seconds, is a worker's view of revocations made by other processes.
REVOCATION_STALENESS = 0.5
# The store entry every revocation changes, and its lifetime (a vanished stamp reads as a change).
REVOCATION_VERSION_KEY = "idp:revocations:version"
REVOCATION_VERSION_TTL = 30 * 24 * 3600
# A delta load re-reads this much before the previous load started: commits that took longer
# than the read, and clocks of other hosts a little behind. Longer skews are caught by the full
# reload every FULL_RELOAD_SECONDS (also the bound if a stamp could not be written).
DELTA_MARGIN = timedelta(seconds=60)
FULL_RELOAD_SECONDS = 30.0


# The inserts of a token response (record_user_tokens), built once.
_INSERT_GRANT = insert(Grant.__table__)  # type: ignore[attr-defined]
_INSERT_ACCESS = insert(AccessTokenRecord.__table__)  # type: ignore[attr-defined]
_INSERT_REFRESH = insert(RefreshToken.__table__)  # type: ignore[attr-defined]


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CodeData:
    """What an authorization code stands for."""

    client_id: str
    redirect_uri: str
    scope: str
    user_id: str
    sid: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int
    acr: str
    amr: list[str]
    grant_id: str
    # Delegation: the mandatary who acts (``user_id`` is then the mandator) and the mandate.
    actor_id: str | None = None
    mandate_id: str | None = None


class RevocationList:
    """This worker's copy of the revoked access-token ``jti``, kept in sync through the store.

    Thread-safe. ``contains`` costs nothing but a dict lookup while the copy is younger than
    ``REVOCATION_STALENESS``; then one store GET; then, only if some process revoked something
    meanwhile, one query for the recent revocations (a full reload every
    ``FULL_RELOAD_SECONDS``)."""

    def __init__(self, engine: Engine, store: KeyValueStore) -> None:
        self._engine = engine
        self._store = store
        self._lock = threading.Lock()
        self._revoked: dict[str, float] = {}  # jti -> expiry (epoch seconds)
        self._version: str | None = None
        self._loaded = False
        self._checked = float("-inf")  # monotonic time of the last stamp check
        self._full_at = float("-inf")  # monotonic time of the last full load
        self._since: datetime | None = None  # when the last load started (wall clock)

    def contains(self, jti: str) -> bool:
        if time.monotonic() - self._checked >= REVOCATION_STALENESS:
            try:
                self._sync()
            except Exception:  # noqa: BLE001 - the store is down: ask the database itself
                log.warning("revocation stamp unreadable; checking %s in the database", jti,
                            exc_info=True)
                with self._engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT") as conn:
                    return repository.is_jti_revoked_conn(conn=conn, jti=jti)
        return jti in self._revoked

    def add(self, revoked: dict[str, float]) -> None:
        """Revocations this process has just committed: seen here at once."""
        with self._lock:
            self._revoked = {**self._revoked, **revoked}

    def publish(self) -> None:
        """Tell the other processes (after the commit) that the list changed."""
        try:
            self._store.set(REVOCATION_VERSION_KEY, secrets.token_hex(12),
                            ttl=REVOCATION_VERSION_TTL)
        except Exception:  # noqa: BLE001 - committed; others read the database meanwhile
            log.error("revocation stamp not written; other processes see the revocation "
                      "within %.0f s", FULL_RELOAD_SECONDS, exc_info=True)

    def _sync(self) -> None:
        with self._lock:
            if time.monotonic() - self._checked < REVOCATION_STALENESS:
                return
            # The stamp is read before the database: a revocation committed after this read
            # changes the stamp again, and is loaded at the next check.
            version = self._store.get(REVOCATION_VERSION_KEY)
            full = not self._loaded or time.monotonic() - self._full_at >= FULL_RELOAD_SECONDS
            if full or version != self._version:
                self._load(full)
            self._version = version
            self._loaded = True
            self._checked = time.monotonic()

    def _load(self, full: bool) -> None:
        started = utcnow()
        since = datetime(1970, 1, 1, tzinfo=UTC) if full or self._since is None else (
            self._since - DELTA_MARGIN)
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            rows = repository.revoked_jtis_since(conn=conn, since=since, now=started)
        horizon = started.timestamp() - 60
        current = {} if full else {j: e for j, e in self._revoked.items() if e > horizon}
        current.update({jti: _aware(exp).timestamp() for jti, exp in rows})
        self._revoked = current
        self._since = started
        if full:
            self._full_at = time.monotonic()


@dataclass(frozen=True)
class RefreshOutcome:
    token: RefreshToken | None
    grant: Grant | None
    reused: bool = False


class TokenService:
    def __init__(
        self, engine: Engine, store: KeyValueStore, *, code_lifetime: int,
        refresh_token_lifetime: int,
    ) -> None:
        self._engine = engine
        self._reader = reader(engine)
        self._store = store
        self._code_lifetime = code_lifetime
        self._refresh_lifetime = refresh_token_lifetime
        self.revocations = RevocationList(engine, store)

    # -- authorization codes --------------------------------------------------------------

    def save_code(self, code: str, data: CodeData) -> None:
        self._store.set(
            f"idp:code:{digest(code)}", json.dumps(data.__dict__), ttl=self._code_lifetime
        )

    def take_code(self, code: str) -> CodeData | None:
        """Return the code's data once. A replay (or a code never issued) returns None; a
        replay also revokes every token the code produced."""
        key = digest(code)
        raw = self._store.take(f"idp:code:{key}")
        if raw is not None:
            data = CodeData(**json.loads(raw))
            self._store.set(f"idp:code-used:{key}", data.grant_id, ttl=USED_CODE_MEMORY)
            return data
        grant_id = self._store.get(f"idp:code-used:{key}")
        if grant_id:
            log.warning("authorization code replayed; revoking grant %s", grant_id)
            self.revoke_grant(grant_id, reason="code_replay")
        return None

    # -- issuing --------------------------------------------------------------------------

    def record_user_tokens(
        self, *, code: CodeData | None, grant_id: str, client_id: str, scope: str,
        access_jti: str, access_exp: int, refresh_token: str | None,
    ) -> None:
        """Persist, in one transaction, the grant (when ``code`` is given: the code's grant,
        new), the access token's ``jti`` and the refresh token's hash.

        The grant of a code is never looked up first: its id was drawn at random when the
        code was issued (:meth:`new_grant_id`) and the code is taken once (:meth:`take_code`),
        so the grant cannot exist yet; a refresh or an exchange names an existing grant and
        passes no code. Core inserts: ORM objects cost more to build and flush than the
        statements (≈ 1 ms of CPU per token response)."""
        now = utcnow()
        with self._engine.begin() as connection:
            if code is not None:
                connection.execute(_INSERT_GRANT, {
                    "id": grant_id, "client_id": client_id, "user_id": uuid.UUID(code.user_id),
                    "sid": code.sid, "scope": code.scope, "auth_time": code.auth_time,
                    "acr": code.acr, "amr": json.dumps(code.amr), "created_at": now,
                    "revoked_at": None, "revoked_reason": None,
                    "actor_id": uuid.UUID(code.actor_id) if code.actor_id else None,
                    "mandate_id": uuid.UUID(code.mandate_id) if code.mandate_id else None,
                })
            connection.execute(_INSERT_ACCESS, {
                "jti": access_jti, "grant_id": grant_id, "client_id": client_id, "scope": scope,
                "expires_at": datetime.fromtimestamp(access_exp, UTC),
            })
            if refresh_token:
                connection.execute(_INSERT_REFRESH, {
                    "id": uuid.uuid4(), "token_hash": digest(refresh_token),
                    "grant_id": grant_id, "client_id": client_id, "scope": scope,
                    "issued_at": now, "expires_at": now + timedelta(seconds=self._refresh_lifetime),
                    "rotated_at": None, "revoked_at": None,
                })

    def new_grant_id(self) -> str:
        return secrets.token_urlsafe(24)

    # -- refresh tokens -------------------------------------------------------------------

    def use_refresh_token(self, token: str, client_id: str) -> RefreshOutcome:
        """Find and rotate a refresh token. Reuse of a rotated token revokes its family."""
        now = utcnow()
        with Session(self._engine, expire_on_commit=False) as session:
            record = repository.get_refresh_token(session=session, token_hash=digest(token))
            if record is None or record.client_id != client_id:
                return RefreshOutcome(None, None)
            grant = repository.get_grant(session=session, grant_id=record.grant_id)
            if grant is None or grant.revoked_at is not None or record.revoked_at is not None:
                return RefreshOutcome(None, None)
            if _aware(record.expires_at) <= now:
                return RefreshOutcome(None, None)
            grant_id = record.grant_id
            if record.rotated_at is not None or not repository.mark_refresh_token_rotated(
                session=session, token_id=record.id, now=now
            ):
                session.rollback()
                reused = True
            else:
                session.commit()
                reused = False
        if reused:
            log.warning("refresh token reused; revoking grant %s", grant_id)
            self.revoke_grant(grant_id, reason="refresh_token_reuse")
            return RefreshOutcome(None, None, reused=True)
        return RefreshOutcome(record, grant)

    # -- revocation -----------------------------------------------------------------------

    def revoke_grant(self, grant_id: str, *, reason: str, actor: str | None = None) -> bool:
        now = utcnow()
        with Session(self._engine) as session:
            grant = repository.get_grant(session=session, grant_id=grant_id)
            if grant is None:
                return False
            if grant.revoked_at is None:
                grant.revoked_at = now
                grant.revoked_reason = reason
                session.add(grant)
            jtis = repository.revoke_grant_tokens(session=session, grant_id=grant_id, now=now)
            expiries = repository.access_token_expiries(session=session, jtis=jtis)
            append(session, AuditRecord(
                action="token.revoke_grant", actor=actor, target=grant.client_id,
                details={"grant": grant_id, "reason": reason, "access_tokens": len(jtis)},
            ))
            session.commit()
        if jtis:
            self.revocations.add(expiries)
            self.revocations.publish()
        return True

    def revoke_access_token(self, jti: str, exp: int) -> None:
        from idp.models import RevokedToken

        with Session(self._engine) as session:
            if session.get(RevokedToken, jti) is None:
                session.add(RevokedToken(jti=jti, expires_at=datetime.fromtimestamp(exp, UTC)))
                session.commit()
        self.revocations.add({jti: float(exp)})
        self.revocations.publish()

    def revoke_refresh_token(self, token: str, client_id: str) -> bool:
        """RFC 7009: revoking a refresh token revokes its grant and the grant's access tokens."""
        with Session(self._engine) as session:
            record = repository.get_refresh_token(session=session, token_hash=digest(token))
            if record is None or record.client_id != client_id:
                return False
            grant_id = record.grant_id
        return self.revoke_grant(grant_id, reason="revocation")

    def is_revoked(self, jti: str) -> bool:
        """Whether the access token ``jti`` is revoked, as seen by this worker's
        :class:`RevocationList` (at most ``REVOCATION_STALENESS`` behind other processes)."""
        return self.revocations.contains(jti)

    def grant_for_jti(self, jti: str) -> Grant | None:
        with Session(self._engine, expire_on_commit=False) as session:
            record = repository.get_access_token_record(session=session, jti=jti)
            if record is None:
                return None
            return repository.get_grant(session=session, grant_id=record.grant_id)

    def grant_and_user_for_jti(self, jti: str) -> tuple[Grant, User] | None:
        """The grant of an access token and its account (one SQL statement), or None."""
        with Session(self._reader, expire_on_commit=False) as session:
            return repository.get_grant_and_user_for_jti(session=session, jti=jti)

    def end_session_grants(self, sid: str) -> list[str]:
        """At logout, revoke the session's grants, except offline ones (``offline_access``)."""
        with Session(self._engine) as session:
            grants = repository.list_active_grants(session=session, sid=sid)
            ids = [g.id for g in grants if "offline_access" not in g.scope.split()]
        for grant_id in ids:
            self.revoke_grant(grant_id, reason="logout")
        return ids

    def user_grant_ids(self, user_id: uuid.UUID, client_id: str | None = None) -> list[str]:
        with Session(self._engine) as session:
            return [g.id for g in repository.list_active_grants(
                session=session, user_id=user_id, client_id=client_id)]

    def purge(self) -> int:
        with Session(self._engine) as session:
            count = repository.purge_expired(session=session, now=utcnow())
            session.commit()
            return count


def token_summary(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in ("client_id", "scope", "sub") if k in data}
