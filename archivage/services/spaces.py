"""Organisations' archive spaces: quota, usage, open or closed (the service catalogue's
contract, see ``archivage.ArchiveSpaces``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from archivage.models import Space
from plateforme.audit import AuditRecord, append
from plateforme.clock import utcnow
from plateforme.errors import Conflict, DomainError, InvalidInput


class SpaceClosed(DomainError):
    status = 403
    title = "Espace d'archives fermé"


class QuotaExceeded(DomainError):
    status = 413
    title = "Quota dépassé"



@dataclass(frozen=True)
class SpaceUsage:
    used_bytes: int
    quota_bytes: int | None
    is_open: bool


def ensure_space(session: Session, organisation: str, default_quota: int | None) -> Space:
    """The organisation's space, created open (with ``default_quota``) on first use."""
    space = session.get(Space, organisation)
    if space is not None:
        return space
    try:
        with session.begin_nested():
            session.add(Space(organisation=organisation, quota_bytes=default_quota))
    except IntegrityError:
        pass  # created meanwhile by a concurrent request
    space = session.get(Space, organisation)
    assert space is not None
    return space


def check_can_deposit(space: Space, size: int) -> None:
    """Refuse early (before any byte is stored) a deposit into a closed or full space."""
    if not space.is_open:
        raise SpaceClosed(f"L'espace d'archives de l'organisation « {space.organisation} » est "
                          "fermé : il n'accepte plus de versement.")
    if space.quota_bytes is not None and space.used_bytes + size > space.quota_bytes:
        raise QuotaExceeded(
            f"Quota dépassé : {space.used_bytes} octets utilisés sur {space.quota_bytes}, "
            f"ce versement en demande {size}.")


def charge(session: Session, organisation: str, size: int) -> None:
    """Add ``size`` to the space's usage in the caller's transaction, atomically checked
    against the quota and the open state (concurrent deposits cannot overshoot)."""
    result = session.execute(text(
        "UPDATE arch_space SET used_bytes = used_bytes + :n, updated_at = :now "
        "WHERE organisation = :o AND is_open = :yes "
        "AND (quota_bytes IS NULL OR used_bytes + :n <= quota_bytes)"),
        {"n": size, "o": organisation, "now": utcnow(), "yes": True})
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return
    space = session.get(Space, organisation)
    assert space is not None
    session.refresh(space)
    check_can_deposit(space, size)
    raise Conflict("L'espace d'archives a changé pendant le versement ; réessayez.")


def release(session: Session, organisation: str, size: int) -> None:
    session.execute(text(
        "UPDATE arch_space SET used_bytes = CASE WHEN used_bytes > :n THEN used_bytes - :n "
        "ELSE 0 END, updated_at = :now WHERE organisation = :o"),
        {"n": size, "o": organisation, "now": utcnow()})


class SpaceService:
    """``set_quota``, ``close_space`` and ``usage``: what the service catalogue calls
    (``organisation`` is the org slug carried in tokens' ``org`` claim)."""

    def __init__(self, engine: Engine, *, default_quota: int | None = None) -> None:
        self._engine = engine
        self._default_quota = default_quota

    def set_quota(self, organisation: str, quota_bytes: int, *, actor: str, reason: str
                  ) -> None:
        """Create the organisation's space or resize it; reopen it if it was closed."""
        if quota_bytes < 0:
            raise InvalidInput("Le quota doit être positif ou nul.", field="quota_bytes")
        if not organisation:
            raise InvalidInput("Organisation manquante.", field="organisation")
        with Session(self._engine, expire_on_commit=False) as session:
            space = ensure_space(session, organisation, quota_bytes)
            before = (space.quota_bytes, space.is_open)
            space.quota_bytes = quota_bytes
            space.is_open = True
            space.updated_at = utcnow()
            session.add(space)
            append(session, AuditRecord(
                action="archives.space.quota", actor=actor, organisation=organisation,
                target=organisation, reason=reason,
                details={"quota_bytes": quota_bytes, "previous_quota": before[0],
                         "was_open": before[1], "used_bytes": space.used_bytes}))
            session.commit()

    def close_space(self, organisation: str, *, actor: str, reason: str) -> None:
        """Block new deposits; what is archived stays under its rules."""
        with Session(self._engine, expire_on_commit=False) as session:
            space = ensure_space(session, organisation, self._default_quota)
            space.is_open = False
            space.updated_at = utcnow()
            session.add(space)
            append(session, AuditRecord(
                action="archives.space.close", actor=actor, organisation=organisation,
                target=organisation, reason=reason, details={"used_bytes": space.used_bytes}))
            session.commit()

    def usage(self, organisation: str) -> SpaceUsage:
        with Session(self._engine, expire_on_commit=False) as session:
            space = session.get(Space, organisation)
            if space is None:
                return SpaceUsage(0, self._default_quota, True)
            return SpaceUsage(space.used_bytes, space.quota_bytes, space.is_open)
