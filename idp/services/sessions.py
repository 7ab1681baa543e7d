"""Single sign-on sessions, kept in the key-value store so that every process shares them.

A session is identified by ``sid`` (a random value, also the ID token's ``sid`` claim). The
browser holds it in an HttpOnly cookie. Each session remembers the clients it signed in to, for
back-channel logout.

A person acting for someone else (a mandatary signed in « pour <nom> », see
``idp.services.mandates``) gets, at each client, a *delegated* session of its own inside their
SSO session: its own ``sid`` (what the client sees in the ID token and in the logout token),
recorded in :attr:`SSOSession.delegations`. Revoking the mandate then names only that ``sid``:
the mandatary's own session at the same client survives.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field

from plateforme.kv import KeyValueStore


@dataclass
class SSOSession:
    sid: str
    user_id: str
    auth_time: int
    acr: str
    amr: list[str]
    created_at: int
    last_seen: int
    address: str | None = None
    user_agent: str | None = None
    clients: list[str] = field(default_factory=list)
    # Delegated sessions: {"sid", "client", "mandate", "user" (the mandator's id)}.
    delegations: list[dict[str, str]] = field(default_factory=list)

    @property
    def uid(self) -> uuid.UUID:
        return uuid.UUID(self.user_id)


class SessionStore:
    """CRUD of SSO sessions in the key-value store, with absolute and idle expiry."""

    def __init__(self, store: KeyValueStore, *, lifetime: int, idle_timeout: int) -> None:
        self._store = store
        self._lifetime = lifetime
        self._idle = idle_timeout

    def _key(self, sid: str) -> str:
        return f"idp:session:{sid}"

    def _index(self, user_id: str) -> str:
        return f"idp:user-sessions:{user_id}"

    def _delegated_key(self, sid: str) -> str:
        return f"idp:delegated-session:{sid}"

    def create(
        self, *, user_id: uuid.UUID, acr: str, amr: list[str], address: str | None,
        user_agent: str | None,
    ) -> SSOSession:
        now = int(time.time())
        session = SSOSession(
            sid=secrets.token_urlsafe(32), user_id=str(user_id), auth_time=now, acr=acr, amr=amr,
            created_at=now, last_seen=now, address=address, user_agent=(user_agent or "")[:200],
        )
        self._save(session)
        self._store.sadd(self._index(session.user_id), session.sid, ttl=self._lifetime)
        return session

    def key(self, sid: str | None) -> str | None:
        """The store key of session ``sid`` (None for a value that cannot be a ``sid``), for
        a caller that reads it with other keys in one round trip (then :meth:`loaded`)."""
        return self._key(sid) if sid and len(sid) <= 100 else None

    def get(self, sid: str | None) -> SSOSession | None:
        key = self.key(sid)
        return self.loaded(self._store.get(key)) if key is not None else None

    def loaded(self, raw: str | None) -> SSOSession | None:
        """The session stored as ``raw`` (read at :meth:`key`), with the expiry checks and
        the ``last_seen`` refresh of :meth:`get`."""
        if raw is None:
            return None
        session = SSOSession(**json.loads(raw))
        now = int(time.time())
        if now - session.created_at > self._lifetime or now - session.last_seen > self._idle:
            self.end(session)
            return None
        if now - session.last_seen > 60:
            session.last_seen = now
            self._save(session)
        return session

    def add_client(self, session: SSOSession, client_id: str) -> None:
        if client_id not in session.clients:
            session.clients.append(client_id)
            self._save(session)

    def remove_client(self, session: SSOSession, client_id: str) -> None:
        """Forget a client (the person withdrew its authorisation from the account console)."""
        if client_id in session.clients:
            session.clients.remove(client_id)
            self._save(session)

    def delegate(self, session: SSOSession, *, client_id: str, mandate_id: str,
                 mandator_id: str) -> str:
        """The ``sid`` of the delegated session for this mandate at this client, created the
        first time (a fresh random value, never the SSO session's own ``sid``)."""
        for entry in session.delegations:
            if entry["client"] == client_id and entry["mandate"] == mandate_id:
                return entry["sid"]
        sid = secrets.token_urlsafe(32)
        session.delegations.append({"sid": sid, "client": client_id, "mandate": mandate_id,
                                    "user": mandator_id})
        self._save(session)
        self._store.set(self._delegated_key(sid), session.sid, ttl=self._remaining(session))
        return sid

    def is_alive(self, sid: str | None) -> bool:
        """Whether ``sid`` names a live SSO session, or a delegated session inside one."""
        if not sid or len(sid) > 100:
            return False
        if self.get(sid) is not None:
            return True
        parent = self._store.get(self._delegated_key(sid))
        if parent is None:
            return False
        session = self.get(parent)
        return session is not None and any(d["sid"] == sid for d in session.delegations)

    def reauthenticate(self, session: SSOSession, *, acr: str, amr: list[str]) -> None:
        """The person authenticated again in this session (re-authentication, step-up): new
        ``auth_time``, ``acr`` and ``amr``; the ``sid`` and its clients are kept."""
        session.auth_time = int(time.time())
        session.acr = acr
        session.amr = list(amr)
        self._save(session)

    def end(self, session: SSOSession) -> None:
        self._store.delete(self._key(session.sid))
        for entry in session.delegations:
            self._store.delete(self._delegated_key(entry["sid"]))
        self._store.srem(self._index(session.user_id), session.sid)

    def for_user(self, user_id: uuid.UUID) -> list[SSOSession]:
        sessions = []
        for sid in self._store.smembers(self._index(str(user_id))):
            session = self.get(sid)
            if session is None:
                self._store.srem(self._index(str(user_id)), sid)
            else:
                sessions.append(session)
        return sessions

    def _remaining(self, session: SSOSession) -> int:
        return max(1, session.created_at + self._lifetime - int(time.time()))

    def _save(self, session: SSOSession) -> None:
        self._store.set(self._key(session.sid), json.dumps(asdict(session)),
                        ttl=self._remaining(session))
