"""Signing keys: creation, rotation with overlap, the published JWKS.

Rotation follows the "publish before sign" rule: there is always a ``next`` key, published in
the JWKS but not yet signing. ``rotate`` promotes it to ``active``, demotes the active key to
``retiring`` (still published until every token it signed has expired) and creates a new
``next`` key. Relying parties that cached the JWKS therefore already know the new key.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from joserfc.jwk import Key, KeySet
from sqlalchemy.engine import Engine
from sqlmodel import Session

from idp import repository
from idp.keys import SUPPORTED_ALGS, KeyCipher, generate_key, load_private, public_jwk
from idp.models import SigningKey
from plateforme.audit import AuditRecord, append
from plateforme.clock import Clock, SystemClock

# How long a worker may use its cached view of the keys before reading them again.
CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class KeyView:
    """A consistent snapshot: signing keys per algorithm and the published JWKS bytes."""

    signing: dict[str, Key]
    public: dict[str, Any]
    jwks_bytes: bytes
    verify_set: KeySet
    loaded_at: float


class KeyService:
    """Owns the signing keys. Thread-safe; shared by the whole application."""

    def __init__(
        self, engine: Engine, cipher: KeyCipher, *, max_token_lifetime: int,
        clock: Clock | None = None,
    ) -> None:
        self._engine = engine
        self._cipher = cipher
        self._max_token_lifetime = max_token_lifetime
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._view: KeyView | None = None
        # Imported private keys by kid, with the ciphertext they came from: a reload that
        # finds the same keys reuses them (an RSA private key import costs ~40 ms of CPU,
        # with the GIL held, in OpenSSL's key check).
        self._imported: dict[str, tuple[str, Key]] = {}

    # -- commands -------------------------------------------------------------------------

    def ensure_keys(self) -> list[str]:
        """Create the missing keys (one active and one next per algorithm). Returns new kids."""
        created: list[str] = []
        with Session(self._engine) as session:
            existing = repository.list_signing_keys(session=session, statuses=["active", "next"])
            for alg in SUPPORTED_ALGS:
                statuses = {k.status for k in existing if k.alg == alg}
                for status in ("active", "next"):
                    if status not in statuses:
                        created.append(self._create(session, alg, status).kid)
            session.commit()
        self.invalidate()
        return created

    def rotate(self, alg: str | None = None, *, actor: str | None = None,
               reason: str | None = None) -> list[SigningKey]:
        """Promote ``next`` to ``active`` for each algorithm (or one), keeping the old key
        published for the longest token lifetime. Returns the keys now active."""
        now = self._clock.now()
        activated: list[SigningKey] = []
        with Session(self._engine, expire_on_commit=False) as session:
            keys = repository.list_signing_keys(session=session, statuses=["active", "next"])
            for a in [alg] if alg else list(SUPPORTED_ALGS):
                if a not in SUPPORTED_ALGS:
                    raise ValueError(f"algorithme inconnu : {a}")
                for key in keys:
                    if key.alg == a and key.status == "active":
                        key.status = "retiring"
                        key.retire_after = now + timedelta(seconds=self._max_token_lifetime + 60)
                        session.add(key)
                nxt = next((k for k in keys if k.alg == a and k.status == "next"), None)
                if nxt is None:
                    nxt = self._create(session, a, "next")
                nxt.status = "active"
                nxt.activated_at = now
                session.add(nxt)
                activated.append(nxt)
                self._create(session, a, "next")
            self._retire_expired(session)
            append(session, AuditRecord(
                action="key.rotate", actor=actor, reason=reason,
                target=",".join(k.kid for k in activated),
                details={"active": {k.alg: k.kid for k in activated}}))
            session.commit()
        self.invalidate()
        return activated

    def retire(self, kid: str, *, actor: str | None = None,
               reason: str | None = None) -> SigningKey:
        """Stop publishing a retiring key now (its remaining tokens become unverifiable)."""
        with Session(self._engine, expire_on_commit=False) as session:
            key = session.get(SigningKey, kid)
            if key is None:
                raise LookupError(kid)
            if key.status in ("active", "next"):
                raise ValueError("seule une clé en retrait peut être retirée")
            key.status = "retired"
            session.add(key)
            append(session, AuditRecord(action="key.retire", actor=actor, reason=reason,
                                        target=kid, details={"alg": key.alg}))
            session.commit()
        self.invalidate()
        return key

    def list_keys(self) -> list[SigningKey]:
        with Session(self._engine, expire_on_commit=False) as session:
            self._retire_expired(session)
            session.commit()
            return list(repository.list_signing_keys(session=session))

    # -- queries (hot path) ---------------------------------------------------------------

    def view(self) -> KeyView:
        view = self._view
        if view is not None and time.monotonic() - view.loaded_at < CACHE_SECONDS:
            return view
        with self._lock:
            view = self._view
            if view is not None and time.monotonic() - view.loaded_at < CACHE_SECONDS:
                return view
            self._view = view = self._load()
            return view

    def invalidate(self) -> None:
        self._view = None

    def signing_key(self, alg: str) -> Key:
        return self.view().signing[alg]

    def jwks(self) -> dict[str, Any]:
        return self.view().public

    # -- internals ------------------------------------------------------------------------

    def _create(self, session: Session, alg: str, status: str) -> SigningKey:
        key = generate_key(alg)
        record = SigningKey(
            kid=key.kid or key.thumbprint(), alg=alg, status=status,
            private_jwk=self._cipher.encrypt(key.as_dict(private=True)),
            public_jwk=json.dumps(public_jwk(key)),
            activated_at=self._clock.now() if status == "active" else None,
        )
        session.add(record)
        session.flush()
        return record

    def _retire_expired(self, session: Session) -> None:
        now = self._clock.now()
        for key in repository.list_signing_keys(session=session, statuses=["retiring"]):
            retire_after = key.retire_after
            if retire_after is not None and retire_after.tzinfo is None:
                retire_after = retire_after.replace(tzinfo=now.tzinfo)
            if retire_after is not None and retire_after <= now:
                key.status = "retired"
                session.add(key)

    def _load(self) -> KeyView:
        now = self._clock.now()
        with Session(self._engine) as session:
            keys = repository.list_signing_keys(
                session=session, statuses=["active", "next", "retiring"]
            )
            signing: dict[str, Key] = {}
            imported: dict[str, tuple[str, Key]] = {}
            published: list[dict[str, Any]] = []
            for key in keys:
                retire_after = key.retire_after
                if retire_after is not None and retire_after.tzinfo is None:
                    retire_after = retire_after.replace(tzinfo=now.tzinfo)
                if key.status == "retiring" and retire_after is not None and retire_after <= now:
                    continue
                published.append(json.loads(key.public_jwk))
                if key.status == "active":
                    cached = self._imported.get(key.kid)
                    if cached is not None and cached[0] == key.private_jwk:
                        private = cached[1]
                    else:
                        private = load_private(self._cipher.decrypt(key.private_jwk))
                    imported[key.kid] = (key.private_jwk, private)
                    signing[key.alg] = private
        if set(signing) != set(SUPPORTED_ALGS):
            raise RuntimeError(
                "signing keys missing: run `martinique-connect keys rotate` or `db upgrade`"
            )
        self._imported = imported
        public = {"keys": published}
        return KeyView(
            signing=signing,
            public=public,
            jwks_bytes=json.dumps(public, separators=(",", ":")).encode(),
            verify_set=KeySet.import_key_set(public),  # type: ignore[arg-type]
            loaded_at=time.monotonic(),
        )
