"""Signing keys: creation, rotation with overlap, the published JWKS.

Rotation follows the "publish before sign" rule: there is always a ``next`` key, published in
the JWKS but not yet signing. ``rotate`` promotes it to ``active``, demotes the active key to
``retiring`` (still published until every token it signed has expired) and creates a new
``next`` key. Relying parties that cached the JWKS therefore already know the new key.

Several processes share the keys through the database. Each caches its view for
``CACHE_SECONDS``; every change (ensure, rotate, retire) also writes a new random stamp to the
key-value store (Redis in production), and signing compares that stamp with the one its view
was loaded under — one KV GET per signature, or per token response inside
:meth:`KeyService.one_stamp` (its access token and ID token) — so a process never signs with
a key another process had demoted or retired when the signature (or the response) began: it
reloads first. Verification and the published JWKS use the time-bounded cache only.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography.fernet import InvalidToken
from joserfc.jwk import Key, KeySet
from sqlalchemy.engine import Engine
from sqlmodel import Session

from idp import repository
from idp.keys import SUPPORTED_ALGS, KeyCipher, generate_key, load_private, public_jwk
from idp.models import SigningKey
from plateforme.audit import AuditRecord, append
from plateforme.clock import Clock, SystemClock
from plateforme.kv import KeyValueStore

log = logging.getLogger(__name__)

# How long a worker may use its cached view of the keys before reading them again.
CACHE_SECONDS = 2.0
# The key-value store entry changed by every key change (a random stamp, not a counter: a
# flushed store can never bring back a stamp a worker already holds).
VERSION_KEY = "idp:keys:version"
VERSION_TTL = 30 * 24 * 3600
_UNKNOWN = object()  # the store did not answer: fall back to the time-bounded cache
# Inside KeyService.one_stamp(): the stamp read by the first signature of the block (empty
# until then), which the block's other signatures reuse.
_block_stamp: ContextVar[list[object] | None] = ContextVar("signing_key_stamp", default=None)


class UnreadableKeys(RuntimeError):
    """The stored private keys do not decrypt with this instance's ``MC_SECRET_KEY``: every
    signature would fail. Raised at start-up, so that such an instance never serves."""


@dataclass(frozen=True)
class KeyView:
    """A consistent snapshot: signing keys per algorithm and the published JWKS bytes."""

    signing: dict[str, Key]
    public: dict[str, Any]
    jwks_bytes: bytes
    verify_set: KeySet
    loaded_at: float
    version: str | None = None


class KeyService:
    """Owns the signing keys. Thread-safe; shared by the whole application."""

    def __init__(
        self, engine: Engine, cipher: KeyCipher, *, max_token_lifetime: int,
        clock: Clock | None = None, store: KeyValueStore | None = None,
    ) -> None:
        self._engine = engine
        self._store = store
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
        """Create the missing keys (one active and one next per algorithm). Returns new kids.

        Raises :class:`UnreadableKeys` when an existing active or next key does not decrypt
        with this instance's secret key (an instance of the deployment started with another
        ``MC_SECRET_KEY``): it would answer every token request with an error."""
        created: list[str] = []
        with Session(self._engine) as session:
            existing = repository.list_signing_keys(session=session, statuses=["active", "next"])
            for key in existing:
                try:
                    self._cipher.decrypt(key.private_jwk)
                except InvalidToken:
                    raise UnreadableKeys(
                        f"MC_SECRET_KEY ne déchiffre pas la clé de signature {key.kid} "
                        "enregistrée dans la base : toutes les instances d'un déploiement "
                        "doivent avoir la même clé secrète") from None
            for alg in SUPPORTED_ALGS:
                statuses = {k.status for k in existing if k.alg == alg}
                for status in ("active", "next"):
                    if status not in statuses:
                        created.append(self._create(session, alg, status).kid)
            session.commit()
        self._changed()
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
        self._changed()
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
        self._changed()
        return key

    def list_keys(self) -> list[SigningKey]:
        with Session(self._engine, expire_on_commit=False) as session:
            self._retire_expired(session)
            session.commit()
            return list(repository.list_signing_keys(session=session))

    # -- queries (hot path) ---------------------------------------------------------------

    def view(self) -> KeyView:
        """The keys, at most ``CACHE_SECONDS`` old (verification, JWKS)."""
        view = self._view
        if view is not None and time.monotonic() - view.loaded_at < CACHE_SECONDS:
            return view
        with self._lock:
            view = self._view
            if view is not None and time.monotonic() - view.loaded_at < CACHE_SECONDS:
                return view
            self._view = view = self._load(self._read_version())
            return view

    def invalidate(self) -> None:
        self._view = None

    @contextmanager
    def one_stamp(self) -> Iterator[None]:
        """Within the block (one token response: access token, ID token), the store's stamp
        is read once, by the first signature, and reused by the others: the keys are those
        current when the block's first signature began, as if the whole response had been
        signed at that instant."""
        token = _block_stamp.set([])
        try:
            yield
        finally:
            _block_stamp.reset(token)

    def signing_key(self, alg: str) -> Key:
        """The active key of ``alg``, never one another process has since demoted or
        retired: the view is reloaded when the store's stamp differs from the one it was
        loaded under, or when it has no active key of ``alg``."""
        view = self.view()
        block = _block_stamp.get()
        if block is None:
            version = self._read_version()
        elif block:
            version = block[0]
        else:
            version = self._read_version()
            block.append(version)
        if (version is not _UNKNOWN and version != view.version) or alg not in view.signing:
            with self._lock:
                current = self._view
                if current is not None and current.version == version and current is not view:
                    view = current  # another thread just reloaded under this stamp
                else:
                    self._view = view = self._load(version)
        return view.signing[alg]

    def jwks(self) -> dict[str, Any]:
        return self.view().public

    # -- internals ------------------------------------------------------------------------

    def _read_version(self) -> object:
        if self._store is None:
            return _UNKNOWN
        try:
            return self._store.get(VERSION_KEY)
        except Exception:  # noqa: BLE001 - signing keeps working on the time-bounded cache
            log.warning("key version unreadable; using the %.0f s key cache", CACHE_SECONDS,
                        exc_info=True)
            return _UNKNOWN

    def _changed(self) -> None:
        """After a committed change: drop this process's view and tell the others."""
        self.invalidate()
        if self._store is None:
            return
        try:
            self._store.set(VERSION_KEY, secrets.token_hex(12), ttl=VERSION_TTL)
        except Exception:  # noqa: BLE001 - the change is committed; others catch up in 2 s
            log.warning("key version not published; other processes reload within %.0f s",
                        CACHE_SECONDS, exc_info=True)

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

    def _load(self, version: object) -> KeyView:
        """Read the keys. ``version`` is the store's stamp read *before* this read, so a
        change committed meanwhile leaves a stamp that differs, and a later reload."""
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
            version=version if isinstance(version, str) or version is None else None,
        )
