"""Authorization codes, grants (token families), refresh-token rotation and revocation.

* Codes live in the key-value store for ``code_lifetime`` seconds and are taken atomically:
  a second use finds the "used" marker and revokes the whole grant (RFC 6749 §4.1.2,
  RFC 9700 §4.5).
* Refresh tokens are stored as SHA-256 and rotated on every use; presenting a rotated token
  again revokes the family (RFC 9700 §4.14.2).
* JWT access tokens are revoked by ``jti`` (a revocation list consulted by introspection).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from idp import repository
from idp.models import AccessTokenRecord, Grant, RefreshToken
from plateforme.audit import AuditRecord, append
from plateforme.clock import utcnow
from plateforme.kv import KeyValueStore

log = logging.getLogger(__name__)

USED_CODE_MEMORY = 24 * 3600


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
        self._store = store
        self._code_lifetime = code_lifetime
        self._refresh_lifetime = refresh_token_lifetime

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
        """Persist, in one transaction, the grant (first time), the access token's ``jti`` and
        the refresh token's hash."""
        now = utcnow()
        with Session(self._engine) as session:
            grant = repository.get_grant(session=session, grant_id=grant_id)
            if grant is None and code is not None:
                grant = Grant(
                    id=grant_id, client_id=client_id, user_id=uuid.UUID(code.user_id),
                    sid=code.sid, scope=code.scope, auth_time=code.auth_time, acr=code.acr,
                    amr=json.dumps(code.amr),
                    actor_id=uuid.UUID(code.actor_id) if code.actor_id else None,
                    mandate_id=uuid.UUID(code.mandate_id) if code.mandate_id else None,
                )
                session.add(grant)
                session.flush()
            session.add(AccessTokenRecord(
                jti=access_jti, grant_id=grant_id, client_id=client_id, scope=scope,
                expires_at=datetime.fromtimestamp(access_exp, UTC),
            ))
            if refresh_token:
                session.add(RefreshToken(
                    token_hash=digest(refresh_token), grant_id=grant_id, client_id=client_id,
                    scope=scope, expires_at=now + timedelta(seconds=self._refresh_lifetime),
                ))
            session.commit()

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
            append(session, AuditRecord(
                action="token.revoke_grant", actor=actor, target=grant.client_id,
                details={"grant": grant_id, "reason": reason, "access_tokens": len(jtis)},
            ))
            session.commit()
        for jti in jtis:
            self._store.set(f"idp:revoked:{jti}", "1", ttl=3600)
        return True

    def revoke_access_token(self, jti: str, exp: int) -> None:
        from idp.models import RevokedToken

        with Session(self._engine) as session:
            if session.get(RevokedToken, jti) is None:
                session.add(RevokedToken(jti=jti, expires_at=datetime.fromtimestamp(exp, UTC)))
                session.commit()
        self._store.set(f"idp:revoked:{jti}", "1", ttl=max(1, exp - int(utcnow().timestamp())))

    def revoke_refresh_token(self, token: str, client_id: str) -> bool:
        """RFC 7009: revoking a refresh token revokes its grant and the grant's access tokens."""
        with Session(self._engine) as session:
            record = repository.get_refresh_token(session=session, token_hash=digest(token))
            if record is None or record.client_id != client_id:
                return False
            grant_id = record.grant_id
        return self.revoke_grant(grant_id, reason="revocation")

    def is_revoked(self, jti: str) -> bool:
        if self._store.get(f"idp:revoked:{jti}"):
            return True
        # One statement outside a transaction: no BEGIN/ROLLBACK round trips for a read.
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return repository.is_jti_revoked_conn(conn=conn, jti=jti)

    def grant_for_jti(self, jti: str) -> Grant | None:
        with Session(self._engine, expire_on_commit=False) as session:
            record = repository.get_access_token_record(session=session, jti=jti)
            if record is None:
                return None
            return repository.get_grant(session=session, grant_id=record.grant_id)

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
