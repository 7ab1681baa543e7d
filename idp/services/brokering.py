"""Accounts signed in through an upstream identity provider (FranceConnect): reconciliation,
creation and linking. The protocol side (redirects, tokens, signatures) is in
:mod:`idp.oauth2.upstream`; this module only decides which account an upstream identity is.

Rules (docs/franceconnect.md):

1. An identity already linked (upstream issuer and ``sub``) signs in to its account; its
   civil status is refreshed from the upstream (it is the authority on it).
2. Otherwise the candidates are the account whose six civil-status fields (birth name, given
   names, gender, birthdate, birthplace, birth country) all equal the upstream's, and the
   account holding the upstream email address. **Never is an account linked on the email
   address alone, nor without its owner signing in to it** (password, and second factor when
   the account has one): the web layer then calls :meth:`BrokeringService.link`, which
   refuses when a civil-status field already on the account differs from the upstream's.
3. Without a candidate, a new account is created from the upstream identity (no password).

Once linked, the civil-status fields are marked verified (``civil_status_verified_at``) and
the profile page no longer lets the person change them.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from idp import repository
from idp.models import FederatedIdentity, User
from plateforme.audit import AuditJournal, AuditRecord, append
from plateforme.clock import utcnow
from plateforme.errors import Conflict, NotFound

log = logging.getLogger(__name__)

CIVIL_STATUS_FIELDS = ("family_name", "given_name", "gender", "birthdate", "birthplace",
                       "birthcountry")
CIVIL_STATUS_LABELS = {
    "family_name": "nom de naissance", "given_name": "prénoms", "gender": "sexe",
    "birthdate": "date de naissance", "birthplace": "lieu de naissance",
    "birthcountry": "pays de naissance",
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CODE = re.compile(r"^[0-9A-Za-z]{0,10}$")


def normalise(value: str | None) -> str:
    """Compare names as a clerk would: case, accents, hyphens and repeated spaces ignored."""
    text = unicodedata.normalize("NFKD", value or "")
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return " ".join(text.replace("-", " ").replace("'", " ").split())


@dataclass(frozen=True)
class CivilStatus:
    """The six civil-status fields as the upstream asserted them, and its email address."""

    family_name: str
    given_name: str
    gender: str
    birthdate: str
    birthplace: str
    birthcountry: str
    email: str | None = None

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> CivilStatus:
        """Read the upstream's claims; every field is required and bounded.

        Raises:
            ValueError: a field is missing or malformed.
        """
        values = {}
        for name in CIVIL_STATUS_FIELDS:
            value = claims.get(name)
            if not isinstance(value, str):
                if name == "birthplace" and value is None and claims.get("birthcountry") != "99100":
                    value = ""  # born abroad: FranceConnect sends no birthplace
                else:
                    raise ValueError(f"missing {name}")
            values[name] = value.strip()
        if not values["family_name"] or not values["given_name"] or len(
                values["family_name"]) > 100 or len(values["given_name"]) > 100:
            raise ValueError("names")
        if values["gender"] not in ("female", "male"):
            raise ValueError("gender")
        if not _DATE.match(values["birthdate"]):
            raise ValueError("birthdate")
        if not _CODE.match(values["birthplace"]) or not _CODE.match(values["birthcountry"]):
            raise ValueError("birthplace/birthcountry")
        email = claims.get("email")
        email = email.strip().lower() if isinstance(email, str) and "@" in email and len(
            email) <= 320 else None
        return cls(**values, email=email)

    def mismatches(self, user: User) -> list[str]:
        """The civil-status fields already on ``user`` that differ from these. An account
        usually holds only the first given name(s): « Angela » agrees with « Angela Claire
        Louise » (the leading names), « Claire » does not."""
        different = []
        for name in CIVIL_STATUS_FIELDS:
            held = normalise(getattr(user, name))
            asserted = normalise(getattr(self, name))
            if not held or held == asserted:
                continue
            if name == "given_name" and asserted.split()[:len(held.split())] == held.split():
                continue
            different.append(name)
        return different

    def matches(self, user: User) -> bool:
        """All six fields equal (an empty birthplace, born abroad, equals an empty one)."""
        return all(normalise(getattr(user, name)) == normalise(getattr(self, name))
                   for name in CIVIL_STATUS_FIELDS)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Reconciliation:
    """What the upstream identity is here: a linked account (sign in), candidate accounts
    to sign in to before linking, or nothing (create an account)."""

    user: User | None = None
    candidate: User | None = None
    reason: str = ""  # "civil_status" or "email" for a candidate


class LinkRefused(Exception):
    """The account's civil status contradicts the upstream's: not linked."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(", ".join(fields))
        self.fields = fields

    @property
    def message(self) -> str:
        labels = ", ".join(CIVIL_STATUS_LABELS[f] for f in self.fields)
        return ("Ce compte ne peut pas être relié à votre identité FranceConnect : "
                f"les informations suivantes ne correspondent pas ({labels}).")


class BrokeringService:
    """Reconcile, create and link accounts for upstream identities."""

    def __init__(self, engine: Any, journal: AuditJournal) -> None:
        self._engine = engine
        self._journal = journal

    def reconcile(self, issuer: str, subject: str, civil: CivilStatus, *,
                  address: str | None = None, request_id: str | None = None) -> Reconciliation:
        with Session(self._engine, expire_on_commit=False) as session:
            link = repository.get_federated_identity(session=session, issuer=issuer,
                                                     subject=subject)
            if link is not None:
                user = repository.get_user(session=session, user_id=link.user_id)
                if user is None:  # pragma: no cover - the link is deleted with the account
                    raise NotFound("compte introuvable")
                link.last_login_at = utcnow()
                self._apply(user, civil)
                session.add_all([link, user])
                append(session, AuditRecord(
                    action="franceconnect.login", actor=str(user.id), address=address,
                    request_id=request_id, details={"issuer": issuer}))
                session.commit()
                return Reconciliation(user=user)
            for user in repository.list_users_born(session=session, birthdate=civil.birthdate):
                if civil.matches(user):
                    return Reconciliation(candidate=user, reason="civil_status")
            if civil.email:
                user = repository.get_user_by_email(session=session, email=civil.email)
                if user is not None:
                    return Reconciliation(candidate=user, reason="email")
        return Reconciliation()

    def create_account(self, issuer: str, subject: str, civil: CivilStatus, *,
                       address: str | None = None, request_id: str | None = None) -> User:
        """A new account from the upstream identity, linked to it, without password.

        Raises:
            Conflict: the email address belongs to another account (it must be linked by
                signing in to it), or the identity was linked meanwhile.
        """
        if not civil.email:
            raise Conflict("FranceConnect n'a pas transmis d'adresse électronique")
        user = User(email=civil.email, email_verified=False)
        self._apply(user, civil)
        with Session(self._engine, expire_on_commit=False) as session:
            if repository.get_user_by_email(session=session, email=civil.email) is not None:
                raise Conflict("un compte existe déjà pour cette adresse")
            session.add(user)
            session.flush()
            session.add(FederatedIdentity(issuer=issuer, subject=subject, user_id=user.id,
                                          last_login_at=utcnow()))
            append(session, AuditRecord(
                action="user.create", actor=str(user.id), target=str(user.id), address=address,
                request_id=request_id, details={"via": "franceconnect", "issuer": issuer}))
            try:
                session.commit()
            except IntegrityError as exc:
                raise Conflict("compte déjà créé") from exc
        return user

    def link(self, user_id: uuid.UUID | str, issuer: str, subject: str, civil: CivilStatus, *,
             address: str | None = None, request_id: str | None = None) -> User:
        """Link an account its owner just signed in to. Its civil status becomes the
        upstream's, verified.

        Raises:
            LinkRefused: a civil-status field of the account differs (journaled).
            Conflict: the account or the upstream identity is already linked elsewhere.
        """
        uid = uuid.UUID(str(user_id))
        with Session(self._engine, expire_on_commit=False) as session:
            user = repository.get_user(session=session, user_id=uid)
            if user is None:
                raise NotFound("compte introuvable")
            different = civil.mismatches(user)
            if different:
                append(session, AuditRecord(
                    action="franceconnect.link", actor=str(uid), target=str(uid),
                    address=address, request_id=request_id, outcome="failure",
                    reason="civil_status_mismatch", details={"fields": different}))
                session.commit()
                raise LinkRefused(different)
            if any(link.issuer == issuer for link in repository.list_federated_identities(
                    session=session, user_id=uid)):
                raise Conflict("ce compte est déjà relié à une autre identité FranceConnect")
            self._apply(user, civil)
            session.add(user)
            session.add(FederatedIdentity(issuer=issuer, subject=subject, user_id=uid,
                                          last_login_at=utcnow()))
            append(session, AuditRecord(
                action="franceconnect.link", actor=str(uid), target=str(uid), address=address,
                request_id=request_id, details={"issuer": issuer}))
            try:
                session.commit()
            except IntegrityError as exc:
                raise Conflict("identité FranceConnect déjà reliée") from exc
        return user

    def is_linked(self, user_id: uuid.UUID | str) -> bool:
        with Session(self._engine) as session:
            return bool(repository.list_federated_identities(
                session=session, user_id=uuid.UUID(str(user_id))))

    @staticmethod
    def _apply(user: User, civil: CivilStatus) -> None:
        for name in CIVIL_STATUS_FIELDS:
            setattr(user, name, getattr(civil, name) or None)
        user.civil_status_verified_at = utcnow()
        user.updated_at = utcnow()
