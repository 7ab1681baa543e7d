"""Reading units (strict organisation isolation), downloads, sharing and rule changes.

An organisation sees its own units and those shared with it (a share on a unit covers what
lies below it). A unit another organisation can't see is answered "not found", never
"forbidden": its existence is not disclosed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, BinaryIO

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from archivage import logbook
from archivage.config import ArchivesSettings
from archivage.identifiers import ark
from archivage.interfaces import OrganisationDirectory
from archivage.models import DataObject, LogbookEvent, Rule, Share, Unit, UnitRule
from archivage.repository import (
    children,
    is_shared_with,
    objects_of,
    search_units,
    shares_of,
)
from archivage.schemas import Actor, RuleChange, ShareRequest
from archivage.services import rules as rules_service
from archivage.services.deposits import require_writer
from plateforme.audit import AuditRecord, append
from plateforme.blobs import ReplicatedBlobs
from plateforme.clock import utcnow
from plateforme.errors import Forbidden, InvalidInput, NotFound

MAX_SHARE_DAYS = 366 * 10


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def closed_until(unit: Unit, access: str, today: date) -> date | None:
    """Until when the unit's content stays closed to a reader (Code du patrimoine L213-2):
    ``None`` when it may be read. The producing organisation (``owner``) keeps access to its
    own records; an organisation it is shared with waits for the end of the communicability
    delay (a share is not a dérogation, L213-3). An access rule of unlimited duration closes
    the content to them for good (``date.max``)."""
    if access == "owner" or unit.access_rule is None:
        return None
    if unit.access_end is None:
        return date.max
    return unit.access_end if unit.access_end > today else None


@dataclass(frozen=True)
class UnitView:
    unit: Unit
    access: str  # "owner" | "shared"
    objects: Sequence[DataObject]
    ark: str

    def as_dict(self) -> dict[str, Any]:
        u = self.unit
        return {
            "id": u.id, "ark": self.ark, "organisation": u.organisation, "access": self.access,
            "level": u.level, "parent": u.parent_id, "title": u.title,
            "description": u.description, "producer": u.producer,
            "start_date": _d(u.start_date), "end_date": _d(u.end_date),
            "keywords": json.loads(u.keywords), "classification": u.classification,
            "language": u.language, "document_type": u.document_type,
            "status": u.status, "deposit": u.deposit_id,
            "created_at": aware(u.created_at).isoformat(),
            "eliminated_at": aware(u.eliminated_at).isoformat() if u.eliminated_at else None,
            "rules": {"appraisal_rule": u.appraisal_rule, "appraisal_end": _d(u.appraisal_end),
                      "final_action": u.final_action, "access_rule": u.access_rule,
                      "access_end": _d(u.access_end), "on_hold": u.on_hold,
                      "blocked": json.loads(u.blocked)},
            "objects": [object_dict(o) for o in self.objects],
            "communicable": closed_until(u, self.access, utcnow().date()) is None,
        }


def _d(value: date | None) -> str | None:
    return value.isoformat() if value else None


def object_dict(o: DataObject) -> dict[str, Any]:
    return {"id": o.id, "filename": o.filename, "size": o.size, "media_type": o.media_type,
            "format_id": o.format_id, "sha512": o.sha512, "sha256": o.sha256,
            "destroyed_at": aware(o.destroyed_at).isoformat() if o.destroyed_at else None}


def share_dict(s: Share) -> dict[str, Any]:
    return {"id": s.id, "unit_id": s.unit_id, "owner": s.owner, "organisation": s.grantee,
            "until": aware(s.until).isoformat(), "created_by": s.created_by,
            "created_at": aware(s.created_at).isoformat(),
            "revoked_at": aware(s.revoked_at).isoformat() if s.revoked_at else None,
            "active": s.revoked_at is None and aware(s.until) > utcnow()}


@dataclass(frozen=True)
class Download:
    obj: DataObject
    stream: BinaryIO


class UnitService:
    def __init__(self, engine: Engine, blobs: ReplicatedBlobs, *, config: ArchivesSettings,
                 organisations: OrganisationDirectory | None = None) -> None:
        self._engine = engine
        self._blobs = blobs
        self._config = config
        self._organisations = organisations

    def ark(self, unit_id: str) -> str:
        return ark(self._config.naan, unit_id)

    def _reader(self, actor: Actor) -> str:
        if not actor.organisation:
            raise Forbidden("Ce jeton n'agit pour aucune organisation.")
        return actor.organisation

    def _visible(self, session: Session, actor: Actor, unit_id: str) -> tuple[Unit, str]:
        organisation = self._reader(actor)
        unit = session.get(Unit, unit_id)
        if unit is not None:
            if unit.organisation == organisation:
                return unit, "owner"
            if is_shared_with(session=session, unit=unit, organisation=organisation,
                              now=utcnow()):
                return unit, "shared"
        raise NotFound("Unité d'archives introuvable.")

    def _owned(self, session: Session, actor: Actor, unit_id: str) -> Unit:
        unit, access = self._visible(session, actor, unit_id)
        if access != "owner":
            raise NotFound("Unité d'archives introuvable.")
        return unit

    def get(self, actor: Actor, unit_id: str) -> UnitView:
        with Session(self._engine, expire_on_commit=False) as session:
            unit, access = self._visible(session, actor, unit_id)
            return UnitView(unit, access, objects_of(session=session, unit_id=unit.id),
                            self.ark(unit.id))

    def children(self, actor: Actor, unit_id: str) -> list[Unit]:
        with Session(self._engine, expire_on_commit=False) as session:
            self._visible(session, actor, unit_id)
            return list(children(session=session, unit_id=unit_id))

    def search(self, actor: Actor, **filters: Any) -> list[Unit]:
        organisation = self._reader(actor)
        with Session(self._engine, expire_on_commit=False) as session:
            return list(search_units(session=session, organisation=organisation,
                                     now=utcnow(), **filters))

    def logbook(self, actor: Actor, unit_id: str) -> list[LogbookEvent]:
        with Session(self._engine, expire_on_commit=False) as session:
            unit = self._owned(session, actor, unit_id)
            return logbook.unit_events(session, unit.id)

    def open_content(self, actor: Actor, unit_id: str, object_id: str) -> Download:
        """The file's stream; the access is in the logbook (and the audit journal) before a
        byte is sent."""
        with Session(self._engine, expire_on_commit=False) as session:
            unit, access = self._visible(session, actor, unit_id)
            obj = session.get(DataObject, object_id)
            if obj is None or obj.unit_id != unit.id:
                raise NotFound("Fichier introuvable.")
            if obj.destroyed_at is not None:
                raise NotFound("Ce fichier a été détruit (élimination visée) ; seules ses "
                               "métadonnées sont conservées.")
            self.require_communicable(session, actor, unit, access)
            stream = self._blobs.open(obj.blob_key)
            logbook.append(session, "access", organisation=unit.organisation, unit_id=unit.id,
                           object_id=obj.id, agent=actor.label,
                           detail={"by_organisation": actor.organisation, "access": access})
            append(session, AuditRecord(
                action="archives.download", actor=actor.label,
                organisation=actor.organisation, target=self.ark(unit.id),
                address=actor.address,
                details={"object": obj.id, "owner": unit.organisation, "access": access}))
            session.commit()
            return Download(obj, stream)

    def require_communicable(self, session: Session, actor: Actor, unit: Unit, access: str
                             ) -> None:
        """Refuse (and audit) reading the content of a unit still under its communicability
        delay to anyone but its producer."""
        until = closed_until(unit, access, utcnow().date())
        if until is None:
            return
        append(session, AuditRecord(
            action="archives.download", actor=actor.label, organisation=actor.organisation,
            target=self.ark(unit.id), address=actor.address, outcome="refused",
            reason="non communicable", details={"owner": unit.organisation,
                                                "access_rule": unit.access_rule}))
        session.commit()
        raise Forbidden(
            "Document non communicable à votre organisation avant le "
            f"{until.strftime('%d/%m/%Y')} (délai de communicabilité, Code du patrimoine "
            "L213-2) ; ses métadonnées restent consultables." if until != date.max else
            "Document non communicable à votre organisation (règle de communicabilité sans "
            "terme, Code du patrimoine L213-2) ; ses métadonnées restent consultables.")

    # -- sharing -------------------------------------------------------------------------

    def share(self, actor: Actor, unit_id: str, request: ShareRequest) -> Share:
        organisation = require_writer(actor)
        until = aware(request.until)
        now = utcnow()
        grantee = request.organisation.strip()
        with Session(self._engine, expire_on_commit=False) as session:
            unit = self._owned(session, actor, unit_id)
            if grantee == organisation:
                raise InvalidInput("On ne partage pas une unité avec sa propre organisation.",
                                   field="organisation")
            if self._organisations is not None and not self._organisations.exists(grantee):
                raise InvalidInput(f"Organisation « {grantee} » inconnue.",
                                   field="organisation")
            if until <= now:
                raise InvalidInput("La date de fin du partage doit être dans le futur.",
                                   field="until")
            if (until - now).days > MAX_SHARE_DAYS:
                raise InvalidInput("Un partage dure au plus dix ans.", field="until")
            share = Share(unit_id=unit.id, owner=organisation, grantee=grantee, until=until,
                          created_by=actor.label)
            session.add(share)
            session.flush()
            logbook.append(session, "share", organisation=organisation, unit_id=unit.id,
                           agent=actor.label,
                           detail={"share": share.id, "grantee": grantee,
                                   "until": until.isoformat(), "reason": request.reason})
            append(session, AuditRecord(
                action="archives.share", actor=actor.label, organisation=organisation,
                target=self.ark(unit.id), address=actor.address, reason=request.reason,
                details={"share": share.id, "grantee": grantee, "until": until.isoformat()}))
            session.commit()
            return share

    def shares(self, actor: Actor, unit_id: str) -> list[Share]:
        with Session(self._engine, expire_on_commit=False) as session:
            unit = self._owned(session, actor, unit_id)
            return list(shares_of(session=session, unit_id=unit.id))

    def revoke_share(self, actor: Actor, share_id: str, *, reason: str | None = None) -> Share:
        organisation = require_writer(actor)
        with Session(self._engine, expire_on_commit=False) as session:
            share = session.get(Share, share_id)
            if share is None or share.owner != organisation:
                raise NotFound("Partage introuvable.")
            if share.revoked_at is None:
                share.revoked_at = utcnow()
                share.revoked_by = actor.label
                session.add(share)
                logbook.append(session, "share revocation", organisation=organisation,
                               unit_id=share.unit_id, agent=actor.label,
                               detail={"share": share.id, "grantee": share.grantee,
                                       "reason": reason})
                append(session, AuditRecord(
                    action="archives.share.revoke", actor=actor.label,
                    organisation=organisation, target=self.ark(share.unit_id),
                    address=actor.address, reason=reason,
                    details={"share": share.id, "grantee": share.grantee}))
                session.commit()
            return share

    # -- rules -----------------------------------------------------------------------------

    def own_rules(self, actor: Actor, unit_id: str) -> list[UnitRule]:
        """The rules set on the unit itself (not those it inherits), for its owner."""
        with Session(self._engine, expire_on_commit=False) as session:
            unit = self._owned(session, actor, unit_id)
            return list(session.exec(select(UnitRule).where(col(UnitRule.unit_id) == unit.id)
                                     .order_by(col(UnitRule.category))).all())

    def change_rules(self, actor: Actor, unit_id: str, change: RuleChange) -> UnitView:
        """Set the unit's own rules and blocked categories (with a reason); the effective
        rules of the unit and everything below it are recomputed."""
        organisation = require_writer(actor)
        unknown = set(change.block) - set(rules_service.CATEGORIES)
        if unknown:
            raise InvalidInput("Catégories inconnues : " + ", ".join(sorted(unknown)),
                               field="block")
        with Session(self._engine, expire_on_commit=False) as session:
            unit = self._owned(session, actor, unit_id)
            if unit.status != "active":
                raise InvalidInput("Cette unité a été éliminée.")
            before = UnitView(unit, "owner", [], "").as_dict()["rules"]
            keep = {self._category(session, a.rule_id) for a in change.rules}
            session.execute(delete(UnitRule).where(
                col(UnitRule.unit_id) == unit.id, col(UnitRule.category).notin_(keep)))
            applied = rules_service.assign(session, unit, change.rules, utcnow().date())
            unit.blocked = json.dumps(sorted(set(change.block)))
            session.add(unit)
            session.flush()
            rules_service.recompute(session, unit)
            after = UnitView(unit, "owner", [], "").as_dict()["rules"]
            logbook.append(session, "modification", organisation=organisation,
                           unit_id=unit.id, agent=actor.label,
                           detail={"rules": applied, "before": before, "after": after,
                                   "reason": change.reason})
            append(session, AuditRecord(
                action="archives.rules.change", actor=actor.label, organisation=organisation,
                target=self.ark(unit.id), address=actor.address, reason=change.reason,
                details={"before": before, "after": after}))
            session.commit()
            return UnitView(unit, "owner", objects_of(session=session, unit_id=unit.id),
                            self.ark(unit.id))

    @staticmethod
    def _category(session: Session, rule_id: str) -> str:
        rule = session.get(Rule, rule_id)
        if rule is None:
            raise InvalidInput(f"Règle « {rule_id} » absente du référentiel.", field="rules")
        return rule.rule_type
