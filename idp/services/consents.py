"""Consent: which scopes a person granted to which client (remembered per client)."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from idp import repository
from idp.models import Consent
from plateforme.audit import AuditRecord, append
from plateforme.clock import utcnow
from plateforme.db import reader
from plateforme.errors import NotFound


class ConsentService:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._reader = reader(engine)

    def covers(self, user_id: uuid.UUID, client_id: str, scope: str) -> bool:
        """True when a remembered consent includes every requested scope."""
        with Session(self._reader) as session:
            consent = repository.get_consent(session=session, user_id=user_id, client_id=client_id)
        return consent is not None and set(scope.split()) <= set(consent.scope.split())

    def record(
        self, user_id: uuid.UUID, client_id: str, scope: str, *, implied: bool,
        address: str | None = None, request_id: str | None = None,
    ) -> None:
        # Two sessions of one person consenting at the same moment both try to insert the
        # row: the loser retries once and merges its scopes into the winner's row.
        for attempt in range(2):
            try:
                self._record(user_id, client_id, scope, implied=implied, address=address,
                             request_id=request_id)
                return
            except IntegrityError:
                if attempt:
                    raise

    def _record(
        self, user_id: uuid.UUID, client_id: str, scope: str, *, implied: bool,
        address: str | None, request_id: str | None,
    ) -> None:
        with Session(self._engine) as session:
            granted = repository.consented_scope(session=session, user_id=user_id,
                                                 client_id=client_id)
            scopes = set(scope.split()) | (set(granted.split()) if granted is not None else set())
            merged = " ".join(sorted(scopes))
            repository.save_consent(session=session, user_id=user_id, client_id=client_id,
                                    scope=merged, implied=implied, granted_at=utcnow(),
                                    exists=granted is not None)
            append(session, AuditRecord(
                action="consent.implied" if implied else "consent.grant", actor=str(user_id),
                target=client_id, address=address, request_id=request_id,
                details={"scope": merged},
            ))
            session.commit()

    def revoke(self, user_id: uuid.UUID, client_id: str, *, actor: str | None = None,
               reason: str | None = None) -> None:
        with Session(self._engine) as session:
            consent = repository.get_consent(session=session, user_id=user_id, client_id=client_id)
            if consent is None:
                raise NotFound("aucun consentement pour ce service")
            session.delete(consent)
            append(session, AuditRecord(action="consent.revoke", actor=actor or str(user_id),
                                        target=client_id, reason=reason))
            session.commit()

    def list(self, user_id: uuid.UUID) -> list[Consent]:
        with Session(self._engine, expire_on_commit=False) as session:
            return list(repository.list_consents(session=session, user_id=user_id))
