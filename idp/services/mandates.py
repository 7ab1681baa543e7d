"""Mandates: a person (the mandator, A) lets another (the mandatary, B) act for them.

* Origins: ``self`` (A creates it in the account console), ``relationship`` (the collectivity
  records a parent of a minor child — the child may have no sign-in of its own — or a legal
  guardian), ``mediator`` (an accredited digital mediator — the ``mediator`` role in an
  organisation — at a desk with A present; A reads out a one-time code sent to A's address,
  and the mandate stays ``pending`` until it is given).
* A mandate names the clients it covers (none: every client that accepts delegation) and the
  scopes (none: ``openid profile email``), and runs from ``starts_at`` to ``ends_at``
  (one year at most). A revokes it at any time; the caller (the provider) then revokes the
  delegated grants and tells their clients (back-channel logout).
* Every change is journaled with the mandator as ``target`` so that A sees it in their
  activity, and B (actor or mandatary) in theirs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session

from idp import repository
from idp.models import Mandate, User
from plateforme.audit import AuditJournal, AuditRecord, append
from plateforme.clock import utcnow
from plateforme.errors import Forbidden, InvalidInput, NotFound

ORIGINS = ("self", "relationship", "mediator")
RELATIONSHIPS = ("parent", "guardian")
DEFAULT_SCOPES = ("openid", "profile", "email")
DELEGABLE_SCOPES = ("openid", "profile", "email", "phone", "address")
MAX_DURATION = timedelta(days=366)
CODE_LIFETIME = timedelta(minutes=15)
CODE_ATTEMPTS = 5
MEDIATOR_ROLE = "mediator"
MINOR_EMAIL_DOMAIN = "mineur.invalid"  # RFC 2606: an address that can never receive mail


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def is_active(mandate: Mandate, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (mandate.status == "active" and _aware(mandate.starts_at) <= now
            < _aware(mandate.ends_at))


def allows_client(mandate: Mandate, client_id: str) -> bool:
    clients = mandate.client_list()
    return not clients or client_id in clients


def limit_scope(mandate: Mandate, scope: str) -> str:
    """The requested scopes the mandate allows (RFC 8693 §2.1: never more)."""
    allowed = set(mandate.scope_list() or DEFAULT_SCOPES)
    return " ".join(s for s in dict.fromkeys((scope or "").split()) if s in allowed)


@dataclass(frozen=True)
class MandateTerms:
    """What a mandate allows: clients (empty: every client accepting delegation), scopes,
    and until when."""

    clients: tuple[str, ...]
    scopes: tuple[str, ...]
    ends_at: datetime
    starts_at: datetime | None = None

    def check(self) -> None:
        now = utcnow()
        starts = self.starts_at or now
        if _aware(self.ends_at) <= max(now, _aware(starts)):
            raise InvalidInput("La date de fin doit être dans le futur.", field="ends_at")
        if _aware(self.ends_at) - _aware(starts) > MAX_DURATION:
            raise InvalidInput("Une procuration dure un an au plus.", field="ends_at")
        unknown = [s for s in self.scopes if s not in DELEGABLE_SCOPES]
        if unknown:
            raise InvalidInput(f"portée non délégable : {', '.join(unknown)}", field="scopes")


def _code_hash(mandate_id: uuid.UUID, code: str) -> str:
    return hashlib.sha256(f"{mandate_id}:{code}".encode()).hexdigest()


class MandateService:
    """Create, confirm, list and revoke mandates; say which ones a mandatary may use now."""

    def __init__(self, engine: Any, journal: AuditJournal) -> None:
        self._engine = engine
        self._journal = journal

    # -- creation -------------------------------------------------------------------------

    def _new(self, session: Session, *, mandator: User, mandatary: User, origin: str,
             terms: MandateTerms, created_by: str | None, relationship: str | None = None,
             status: str = "active") -> Mandate:
        terms.check()
        if mandator.id == mandatary.id:
            raise InvalidInput("On ne peut pas se donner procuration à soi-même.",
                               field="mandatary")
        mandate = Mandate(
            mandator_id=mandator.id, mandatary_id=mandatary.id, origin=origin,
            relationship=relationship, clients=json.dumps(list(terms.clients)),
            scopes=json.dumps(list(terms.scopes or DEFAULT_SCOPES)),
            starts_at=terms.starts_at or utcnow(), ends_at=terms.ends_at, status=status,
            created_by=created_by,
        )
        session.add(mandate)
        return mandate

    def create_self(self, mandator_id: uuid.UUID | str, mandatary_email: str,
                    terms: MandateTerms, *, address: str | None = None,
                    request_id: str | None = None) -> Mandate:
        """A, in the account console, names B by B's account address."""
        with Session(self._engine, expire_on_commit=False) as session:
            mandator = self._user(session, mandator_id)
            mandatary = repository.get_user_by_email(
                session=session, email=mandatary_email.strip().lower())
            if mandatary is None or mandatary.locked:
                raise InvalidInput("Aucun compte Martinique Connect n'utilise cette adresse.",
                                   field="mandatary")
            mandate = self._new(session, mandator=mandator, mandatary=mandatary, origin="self",
                                terms=terms, created_by=str(mandator.id))
            self._audit(session, "mandate.create", actor=str(mandator.id), mandate=mandate,
                        address=address, request_id=request_id)
            session.commit()
        return mandate

    def record_relationship(self, mandator_id: uuid.UUID | str | None,
                            mandatary_id: uuid.UUID | str, relationship: str,
                            terms: MandateTerms, *, actor: str | None,
                            reason: str | None = None, document: str | None = None,
                            minor: dict[str, str | None] | None = None) -> Mandate:
        """The collectivity records a verified relationship (parent of a minor child, legal
        guardian): the mandate is active at once. ``actor`` is the operator, ``document``
        the reference of the verified proof (livret de famille, jugement…), journaled.
        With ``minor`` (``given_name``, ``family_name``, ``birthdate``) instead of
        ``mandator_id``, the child's record is created in the same transaction."""
        if relationship not in RELATIONSHIPS:
            raise InvalidInput(f"lien inconnu : {relationship}", field="relationship")
        with Session(self._engine, expire_on_commit=False) as session:
            if minor is not None:
                mandator = self._minor(session, minor, actor=actor)
            else:
                mandator = self._user(session, mandator_id or "")
            mandate = self._new(
                session, mandator=mandator,
                mandatary=self._user(session, mandatary_id), origin="relationship",
                terms=terms, created_by=actor, relationship=relationship)
            self._audit(session, "mandate.create", actor=actor, mandate=mandate, reason=reason,
                        document=document)
            session.commit()
        return mandate

    def _minor(self, session: Session, minor: dict[str, str | None], *,
               actor: str | None) -> User:
        given_name = (minor.get("given_name") or "").strip()
        family_name = (minor.get("family_name") or "").strip()
        if not given_name or not family_name:
            raise InvalidInput("Indiquez le prénom et le nom de l'enfant.", field="name")
        user = User(email=f"{uuid.uuid4().hex}@{MINOR_EMAIL_DOMAIN}", email_verified=False,
                    given_name=given_name, family_name=family_name,
                    birthdate=minor.get("birthdate") or None)
        session.add(user)
        append(session, AuditRecord(action="user.create", actor=actor, target=str(user.id),
                                    details={"kind": "minor"}))
        return user

    def create_minor(self, *, given_name: str, family_name: str, birthdate: str | None,
                     actor: str | None) -> User:
        """A minor child's record, without address nor password (it never signs in; a parent
        acts for it under a ``relationship`` mandate)."""
        with Session(self._engine, expire_on_commit=False) as session:
            user = self._minor(session, {"given_name": given_name, "family_name": family_name,
                                         "birthdate": birthdate}, actor=actor)
            session.commit()
        return user

    def start_mediation(self, mediator_id: uuid.UUID | str, mandator_email: str,
                        terms: MandateTerms, *, accredited: bool, address: str | None = None,
                        request_id: str | None = None) -> tuple[Mandate, User, str]:
        """A mediator starts a mandate for the person in front of them: ``pending`` until the
        person reads out the code sent to their address. Returns the mandate, the person and
        the code (to be mailed by the caller, never shown to the mediator)."""
        if not accredited:
            raise Forbidden("Seul un médiateur numérique habilité peut recevoir une "
                            "procuration au guichet.")
        with Session(self._engine, expire_on_commit=False) as session:
            mediator = self._user(session, mediator_id)
            mandator = repository.get_user_by_email(session=session,
                                                    email=mandator_email.strip().lower())
            if mandator is None or mandator.locked:
                raise InvalidInput("Aucun compte Martinique Connect n'utilise cette adresse.",
                                   field="mandator")
            mandate = self._new(session, mandator=mandator, mandatary=mediator,
                                origin="mediator", terms=terms, created_by=str(mediator.id),
                                status="pending")
            code = f"{secrets.randbelow(1_000_000):06d}"
            session.flush()
            mandate.confirmation_hash = _code_hash(mandate.id, code)
            mandate.confirmation_expires_at = utcnow() + CODE_LIFETIME
            self._audit(session, "mandate.request", actor=str(mediator.id), mandate=mandate,
                        address=address, request_id=request_id)
            session.commit()
        return mandate, mandator, code

    def confirm_mediation(self, mandate_id: uuid.UUID | str, mediator_id: uuid.UUID | str,
                          code: str, *, address: str | None = None,
                          request_id: str | None = None) -> Mandate:
        """The code the person read out: the mandate becomes active. Five wrong codes, or
        an expired one, cancel it."""
        with Session(self._engine, expire_on_commit=False) as session:
            mandate = repository.get_mandate(session=session, mandate_id=uuid.UUID(str(mandate_id)))
            if (mandate is None or mandate.status != "pending"
                    or str(mandate.mandatary_id) != str(mediator_id)):
                raise NotFound("demande de procuration introuvable")
            expired = (mandate.confirmation_expires_at is None
                       or _aware(mandate.confirmation_expires_at) <= utcnow())
            good = not expired and hmac.compare_digest(
                mandate.confirmation_hash or "", _code_hash(mandate.id, code.strip()))
            if not good:
                mandate.confirmation_attempts += 1
                if expired or mandate.confirmation_attempts >= CODE_ATTEMPTS:
                    mandate.status = "cancelled"
                    mandate.confirmation_hash = None
                session.add(mandate)
                self._audit(session, "mandate.confirm", actor=str(mediator_id),
                            mandate=mandate, outcome="failure",
                            reason="expired" if expired else "wrong_code", address=address,
                            request_id=request_id)
                session.commit()
                raise InvalidInput(
                    "Ce code a expiré : recommencez la demande." if expired or
                    mandate.status == "cancelled" else "Ce code n'est pas le bon.",
                    field="code")
            mandate.status = "active"
            mandate.confirmation_hash = None
            session.add(mandate)
            self._audit(session, "mandate.confirm", actor=str(mediator_id), mandate=mandate,
                        address=address, request_id=request_id)
            session.commit()
        return mandate

    # -- revocation -----------------------------------------------------------------------

    def revoke(self, mandate_id: uuid.UUID | str, by: uuid.UUID | str, *,
               as_operator: bool = False, address: str | None = None,
               request_id: str | None = None, reason: str | None = None) -> Mandate:
        """The mandator withdraws the mandate (only them; or an operator of the collectivity,
        ``as_operator``, when a recorded relationship ends). Returns it; the caller ends the
        delegated grants (:meth:`idp.services.Provider.revoke_mandate`)."""
        with Session(self._engine, expire_on_commit=False) as session:
            mandate = repository.get_mandate(session=session,
                                             mandate_id=uuid.UUID(str(mandate_id)))
            if mandate is None or (str(mandate.mandator_id) != str(by) and not as_operator):
                raise NotFound("procuration introuvable")
            if mandate.status in ("active", "pending"):
                mandate.status = "revoked"
                mandate.revoked_at = utcnow()
                mandate.revoked_by = str(by)
                session.add(mandate)
                self._audit(session, "mandate.revoke", actor=str(by), mandate=mandate,
                            address=address, request_id=request_id, reason=reason)
                session.commit()
        return mandate

    # -- queries --------------------------------------------------------------------------

    def get(self, mandate_id: uuid.UUID | str | None) -> Mandate | None:
        try:
            uid = uuid.UUID(str(mandate_id))
        except ValueError:
            return None
        with Session(self._engine, expire_on_commit=False) as session:
            return repository.get_mandate(session=session, mandate_id=uid)

    def usable(self, mandatary_id: uuid.UUID | str, client_id: str) -> list[Mandate]:
        """The mandates B may use now at this client."""
        with Session(self._engine, expire_on_commit=False) as session:
            mandates = repository.list_mandates(
                session=session, mandatary_id=uuid.UUID(str(mandatary_id)), status="active")
        now = utcnow()
        return [m for m in mandates if is_active(m, now) and allows_client(m, client_id)]

    def usable_mandate(self, mandate_id: str, mandatary_id: uuid.UUID | str,
                       client_id: str) -> Mandate | None:
        mandate = self.get(mandate_id)
        if (mandate is None or str(mandate.mandatary_id) != str(mandatary_id)
                or not is_active(mandate) or not allows_client(mandate, client_id)):
            return None
        return mandate

    def token_allowed(self, jti: str) -> bool:
        """Whether the mandate behind a delegated access token (one carrying ``act``) still
        allows it now: active and not past its end. One query; the caller asks only for
        delegated tokens. A revoked mandate's tokens are also on the revocation list; an
        expired mandate's are refused here, at once, without waiting for their ``exp``."""
        with Session(self._engine, expire_on_commit=False) as session:
            mandate = repository.get_token_mandate(session=session, jti=jti)
        return mandate is not None and is_active(mandate)

    def recent(self, limit: int = 200) -> list[Mandate]:
        """Every mandate, newest first (the operators' console)."""
        with Session(self._engine, expire_on_commit=False) as session:
            return list(repository.list_mandates(session=session))[:limit]

    def given(self, mandator_id: uuid.UUID | str) -> list[Mandate]:
        with Session(self._engine, expire_on_commit=False) as session:
            return list(repository.list_mandates(session=session,
                                                 mandator_id=uuid.UUID(str(mandator_id))))

    def received(self, mandatary_id: uuid.UUID | str) -> list[Mandate]:
        with Session(self._engine, expire_on_commit=False) as session:
            return list(repository.list_mandates(session=session,
                                                 mandatary_id=uuid.UUID(str(mandatary_id))))

    def grant_ids(self, mandate_id: uuid.UUID) -> list[tuple[str, str, str | None]]:
        """The delegated grants still active: (grant id, client id, sid)."""
        with Session(self._engine) as session:
            return [(g.id, g.client_id, g.sid) for g in repository.list_mandate_grants(
                session=session, mandate_id=mandate_id)]

    def record_use(self, mandate: Mandate, client_id: str, *, address: str | None,
                   request_id: str | None) -> None:
        """B signed in to a client for A: in both activity logs and the journal."""
        self._journal.record(AuditRecord(
            action="delegation.login", actor=str(mandate.mandatary_id),
            target=str(mandate.mandator_id), address=address, request_id=request_id,
            details={"mandate": str(mandate.id), "client": client_id}))

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _user(session: Session, user_id: uuid.UUID | str) -> User:
        user = repository.get_user(session=session, user_id=uuid.UUID(str(user_id)))
        if user is None:
            raise NotFound("compte introuvable")
        return user

    @staticmethod
    def _audit(session: Session, action: str, *, actor: str | None, mandate: Mandate,
               outcome: str = "success", reason: str | None = None,
               address: str | None = None, request_id: str | None = None,
               document: str | None = None) -> None:
        details: dict[str, Any] = {
            "mandate": str(mandate.id), "mandatary": str(mandate.mandatary_id),
            "origin": mandate.origin, "clients": mandate.client_list(),
            "scopes": mandate.scope_list(), "ends_at": _aware(mandate.ends_at).isoformat()}
        if document:
            details["document"] = document
        append(session, AuditRecord(
            action=action, actor=actor, target=str(mandate.mandator_id), outcome=outcome,
            reason=reason, address=address, request_id=request_id, details=details))
