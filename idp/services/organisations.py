"""Organisations of the CUP, the roles people hold in them, and invitations."""

from __future__ import annotations

import builtins
import csv
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from idp.models import Invitation, Membership, Organisation, User
from idp.roles import ALL_ROLES, ORGANISATION_KINDS, PLATFORM_ORGANISATION, PLATFORM_ROLES
from plateforme.audit import AuditRecord, append
from plateforme.clock import utcnow
from plateforme.errors import Conflict, InvalidInput, NotFound

SEED_CSV = Path(__file__).resolve().parent.parent / "data" / "organisations.csv"
INVITATION_DAYS = 7


@dataclass(frozen=True)
class RoleGrant:
    organisation: str
    organisation_name: str
    role: str


@dataclass(frozen=True)
class Affiliation:
    """What a resource server needs about a person: one organisation and the roles."""

    org: str | None
    roles: list[str]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class OrganisationService:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- organisations --------------------------------------------------------------------

    def seed(self, path: Path = SEED_CSV) -> int:
        """Create or update the organisations listed in the CSV (idempotent)."""
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        populations: dict[str, int] = {}
        for row in rows:
            if row["epci"] and row["population"]:
                populations[row["epci"]] = populations.get(row["epci"], 0) + int(row["population"])
        commune_total = sum(int(r["population"]) for r in rows
                            if r["kind"] == "commune" and r["population"])
        changed = 0
        with Session(self._engine) as session:
            for row in rows:
                if row["kind"] not in ORGANISATION_KINDS:
                    raise InvalidInput(f"type d'organisation inconnu : {row['kind']}")
                population = int(row["population"]) if row["population"] else None
                if population is None and row["kind"] == "epci":
                    population = populations.get(row["slug"])
                if population is None and row["kind"] == "ctm":
                    population = commune_total
                org = session.exec(
                    select(Organisation).where(Organisation.slug == row["slug"])
                ).first() or Organisation(slug=row["slug"], name=row["name"], kind=row["kind"])
                org.name = row["name"]
                org.kind = row["kind"]
                org.insee = row["insee"] or None
                org.population = population
                org.population_source = row["population_source"] or None
                org.parent_slug = row["epci"] or None
                session.add(org)
                changed += 1
            session.commit()
        return changed

    def list(self, kind: str | None = None) -> list[Organisation]:
        with Session(self._engine, expire_on_commit=False) as session:
            query = select(Organisation).order_by(col(Organisation.kind), col(Organisation.name))
            if kind:
                query = query.where(Organisation.kind == kind)
            return list(session.exec(query).all())

    def get(self, slug: str) -> Organisation:
        with Session(self._engine, expire_on_commit=False) as session:
            org = session.exec(select(Organisation).where(Organisation.slug == slug)).first()
        if org is None:
            raise NotFound(f"organisation inconnue : {slug}")
        return org

    def create(self, *, slug: str, name: str, kind: str, insee: str | None = None,
               actor: str | None = None) -> Organisation:
        if kind not in ORGANISATION_KINDS:
            raise InvalidInput(f"type d'organisation inconnu : {kind}", field="kind")
        with Session(self._engine, expire_on_commit=False) as session:
            if session.exec(select(Organisation).where(Organisation.slug == slug)).first():
                raise Conflict(f"l'organisation {slug} existe déjà")
            org = Organisation(slug=slug, name=name, kind=kind, insee=insee)
            session.add(org)
            append(session, AuditRecord(action="organisation.create", actor=actor,
                                        organisation=slug, target=slug))
            session.commit()
        return org

    # -- roles ----------------------------------------------------------------------------

    @staticmethod
    def check_role(org: Organisation, role: str) -> None:
        if role not in ALL_ROLES:
            raise InvalidInput(f"rôle inconnu : {role}", field="role")
        if role in PLATFORM_ROLES and org.slug != PLATFORM_ORGANISATION:
            raise InvalidInput(f"le rôle {role} ne se détient qu'à la CTM", field="role")

    def grant(self, user_id: uuid.UUID, org_slug: str, role: str, *, actor: str | None = None,
              reason: str | None = None) -> Membership:
        org = self.get(org_slug)
        self.check_role(org, role)
        with Session(self._engine, expire_on_commit=False) as session:
            if session.get(User, user_id) is None:
                raise NotFound("compte introuvable")
            existing = session.exec(select(Membership).where(
                Membership.user_id == user_id, Membership.organisation_id == org.id,
                Membership.role == role)).first()
            if existing is not None:
                return existing
            membership = Membership(user_id=user_id, organisation_id=org.id, role=role,
                                    granted_by=actor)
            session.add(membership)
            append(session, AuditRecord(
                action="membership.grant", actor=actor, organisation=org.slug,
                target=str(user_id), reason=reason, details={"role": role}))
            session.commit()
        return membership

    def revoke(self, user_id: uuid.UUID, org_slug: str, role: str, *, actor: str | None = None,
               reason: str | None = None) -> None:
        org = self.get(org_slug)
        with Session(self._engine) as session:
            membership = session.exec(select(Membership).where(
                Membership.user_id == user_id, Membership.organisation_id == org.id,
                Membership.role == role)).first()
            if membership is None:
                raise NotFound("cette personne ne détient pas ce rôle")
            session.delete(membership)
            append(session, AuditRecord(
                action="membership.revoke", actor=actor, organisation=org.slug,
                target=str(user_id), reason=reason, details={"role": role}))
            session.commit()

    def roles_of(self, user_id: uuid.UUID) -> builtins.list[RoleGrant]:
        with Session(self._engine) as session:
            rows = session.exec(
                select(Membership, Organisation)
                .where(Membership.user_id == user_id,
                       Membership.organisation_id == Organisation.id)
                .order_by(col(Organisation.name), col(Membership.role))
            ).all()
            return [RoleGrant(o.slug, o.name, m.role) for m, o in rows]

    def members(self, org_slug: str) -> builtins.list[tuple[User, str]]:
        org = self.get(org_slug)
        with Session(self._engine, expire_on_commit=False) as session:
            rows = session.exec(
                select(User, Membership).where(Membership.organisation_id == org.id,
                                               Membership.user_id == User.id)
                .order_by(col(User.email))
            ).all()
            return [(u, m.role) for u, m in rows]

    def affiliation(self, user_id: uuid.UUID, org_hint: str | None = None) -> Affiliation:
        """The organisation a person acts for (the hinted one if they belong to it, else their
        first non-CTM organisation, else the CTM) and their roles there, plus platform
        roles."""
        grants = self.roles_of(user_id)
        if not grants:
            return Affiliation(None, [])
        orgs = list(dict.fromkeys(g.organisation for g in grants))
        if org_hint in orgs:
            org = org_hint
        else:
            others = [o for o in orgs if o != PLATFORM_ORGANISATION]
            org = others[0] if others else orgs[0]
        roles = {g.role for g in grants if g.organisation == org}
        roles |= {g.role for g in grants if g.role in PLATFORM_ROLES}
        return Affiliation(org, sorted(roles))

    # -- invitations ----------------------------------------------------------------------

    def invite(self, email: str, org_slug: str, role: str, *, actor: str | None = None
               ) -> tuple[Invitation, str]:
        """Create an invitation; returns it and the one-time token to send by email."""
        org = self.get(org_slug)
        self.check_role(org, role)
        token = secrets.token_urlsafe(32)
        invitation = Invitation(
            token_hash=hashlib.sha256(token.encode()).hexdigest(), email=email.strip().lower(),
            organisation_id=org.id, role=role, invited_by=actor,
            expires_at=utcnow() + timedelta(days=INVITATION_DAYS),
        )
        with Session(self._engine, expire_on_commit=False) as session:
            session.add(invitation)
            append(session, AuditRecord(
                action="membership.invite", actor=actor, organisation=org.slug,
                target=invitation.email, details={"role": role}))
            session.commit()
        return invitation, token

    def accept(self, token: str, user_id: uuid.UUID) -> RoleGrant:
        """Accept an invitation (single use, before expiry, by the invited address only)."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        with Session(self._engine, expire_on_commit=False) as session:
            invitation = session.exec(
                select(Invitation).where(Invitation.token_hash == digest)).first()
            user = session.get(User, user_id)
            if (invitation is None or invitation.accepted_at is not None
                    or _aware(invitation.expires_at) <= utcnow()):
                raise NotFound("invitation inconnue, déjà utilisée ou expirée")
            if user is None or user.email != invitation.email:
                raise InvalidInput("cette invitation a été envoyée à une autre adresse")
            org = session.get(Organisation, invitation.organisation_id)
            assert org is not None
            invitation.accepted_at = utcnow()
            session.add(invitation)
            exists = session.exec(select(Membership).where(
                Membership.user_id == user_id, Membership.organisation_id == org.id,
                Membership.role == invitation.role)).first()
            if exists is None:
                session.add(Membership(user_id=user_id, organisation_id=org.id,
                                       role=invitation.role, granted_by=invitation.invited_by))
            append(session, AuditRecord(
                action="membership.accept", actor=str(user_id), organisation=org.slug,
                target=str(user_id), details={"role": invitation.role}))
            session.commit()
            return RoleGrant(org.slug, org.name, invitation.role)
